"""The base of bound models: PynamoDB's `Model`, reading what other writers stored.

Bound tables are written by other AWS services too, and one of them may store an
attribute with the wrong type. PynamoDB would refuse the whole item; a bound model
leaves that attribute out instead (logged), so one writer's mistake costs a field,
not every notification and snapshot that item appears in. Read rules must therefore
treat a missing attribute as the safe case (see the reference app's documents).
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from pynamodb.models import Model as PynamoModel

logger = logging.getLogger(__name__)
_T = TypeVar("_T", bound="Model")


class Model(PynamoModel):
    @classmethod
    def from_raw_data(cls: type[_T], data: dict[str, Any]) -> _T:
        if data is None:
            raise ValueError("Received no data to construct object")
        clean = dict(data)
        for name, attr in cls.get_attributes().items():
            raw = clean.get(attr.attr_name)
            if not isinstance(raw, dict) or "NULL" in raw:
                continue
            try:
                attr.deserialize(attr.get_value(raw))
            except Exception:  # noqa: BLE001 - every way a value fails to read is the same mistake
                logger.warning("unreadable attribute left out",
                               extra={"model": cls.__name__, "attribute": name, "stored_as": sorted(raw)})
                del clean[attr.attr_name]
        return super().from_raw_data(clean)
