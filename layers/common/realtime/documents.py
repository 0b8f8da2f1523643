"""Documents: the items other AWS services write, and who may read them.

A document is readable by everyone when public (the default when `visibility` is
absent), else only by its owner and its readers. The same rule is applied to the
table's items and to the stream's old and new images.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from realtime.dynamo import from_item

PUBLIC, PRIVATE = "public", "private"


@dataclass(frozen=True)
class Document:
    slug: str
    title: str = ""
    visibility: str = PUBLIC
    owner: str | None = None
    readers: frozenset[str] = field(default_factory=frozenset)
    fields: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def public(self) -> bool:
        return self.visibility != PRIVATE

    def readable_by(self, user_id: str | None) -> bool:
        if self.public:
            return True
        return user_id is not None and (user_id == self.owner or user_id in self.readers)

    def whitelisted(self, names: tuple[str, ...]) -> dict[str, Any]:
        """The fields a client may see: only those named, never owner or readers unless named."""
        return {name: self.fields[name] for name in names if name in self.fields}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Document:
        """From a typed DynamoDB item or stream image."""
        values = from_item(item)
        readers = values.get("readers") or ()
        if isinstance(readers, str):
            readers = (readers,)
        visibility = values.get("visibility")
        return cls(
            slug=str(values.get("slug", "")),
            title=str(values.get("title", "")),
            visibility=visibility if isinstance(visibility, str) and visibility else PUBLIC,
            owner=values.get("owner") if isinstance(values.get("owner"), str) else None,
            readers=frozenset(r for r in readers if isinstance(r, str)),
            fields=values,
        )


class Documents:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def get(self, slug: str) -> Document | None:
        item = self.client.get_item(TableName=self.table, Key={"slug": {"S": slug}}, ConsistentRead=True).get("Item")
        return Document.from_item(item) if item else None

    def all(self) -> Iterator[Document]:
        """Every document, with a paginated Scan (the one place a Scan is the right tool)."""
        kwargs: dict[str, Any] = {"TableName": self.table}
        while True:
            response = self.client.scan(**kwargs)
            for item in response.get("Items", []):
                yield Document.from_item(item)
            if not response.get("LastEvaluatedKey"):
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
