"""Bindings: a table's changes, live on a stream, and writes to it through the socket.

A `Binding` is this engine's Django Channels `WebsocketBinding`: a declaration, not
code to write. It names a PynamoDB `model` (and the environment variable holding its
table), the `stream` its events go out on (`name`), the `fields` a client may see,
`group_names(instance)` (the groups that hear of a change), the read rule `audience`
(who may read an item) and `has_permission` for writes arriving on the socket. The
table's DynamoDB stream feeds the notifier (`realtime.notifier`), which turns each
record into per-recipient `create`/`update`/`delete` events; writes from the socket
(`realtime.writes`) go through the table and its stream like any other write, so they
look the same to every subscriber.

The read rule produces an `Audience` rather than answering for one identity at a time:
the decision then travels with pages delivered later from the fan-out queue and stays
the same for every page of one record. `readable_by(instance, identity)` asks it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pynamodb.attributes import Attribute, VersionAttribute

from realtime.audience import Audience
from realtime.broadcast import BroadcastReport
from realtime.config import ConfigurationError
from realtime.models import Model
from realtime.streams import Stream

if TYPE_CHECKING:
    from realtime.auth import Identity
    from realtime.services import Services

M = TypeVar("M", bound=Model)
CREATE, UPDATE, DELETE = "create", "update", "delete"
WRITE_ACTIONS = (CREATE, UPDATE, DELETE)


def jsonable(value: Any) -> Any:
    """A DynamoDB value as JSON: sets become sorted lists, binary base64, numbers int or float."""
    if isinstance(value, (set, frozenset)):
        return sorted((jsonable(v) for v in value), key=repr)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if hasattr(value, "as_dict"):  # a MapAttribute instance
        return jsonable(value.as_dict())
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@dataclass(frozen=True)
class Change(Generic[M]):
    """One stream record of a bound table, as model instances (None: absent)."""

    binding: Binding[M]
    seq: str
    old: M | None
    new: M | None

    @property
    def key_values(self) -> dict[str, Any]:
        instance = self.new if self.new is not None else self.old
        assert instance is not None
        return self.binding.key_values(instance)


class Binding(Stream, Generic[M]):
    """Declare: `model`, `table_variable`, `name` (the stream), `fields`; override
    `group_names`, `audience` and, for writes through the socket, `writable` and
    `has_permission`."""

    #: The PynamoDB model. Its `Meta.table_name` is set from `table_variable` when bound.
    model: ClassVar[type[Model]]
    #: The environment variable holding the table's name.
    table_variable: ClassVar[str]
    #: `model` on the wire (default: the model's class name, lower case).
    model_name: ClassVar[str] = ""
    #: The attributes a client may see. Nothing else ever leaves the server.
    fields: ClassVar[tuple[str, ...]] = ()
    #: The attributes a client may set through the socket (create and update).
    writable: ClassVar[tuple[str, ...]] = ()
    #: Binding events are for signed-in users (a connection subscribes anonymously only if set).
    anonymous: ClassVar[bool] = False

    # ---- the declaration ---------------------------------------------------------------

    def group_names(self, instance: M) -> Iterable[str]:
        """The groups that hear of a change to `instance` (default: this stream's group)."""
        return [self.name]

    def audience(self, instance: M) -> Audience:
        """Who may read `instance`: the one place this model's read rule lives."""
        return Audience.members()

    def readable_by(self, instance: M, identity: Identity) -> bool:
        return self.audience(instance).allows(identity.user_id)

    def has_permission(self, identity: Identity, action: str, instance: M) -> bool:
        """May `identity` `create`, `update` or `delete` `instance` through the socket?
        For a create, `instance` is the item about to be written. Default: no writes."""
        return False

    def prepare(self, identity: Identity, instance: M) -> None:
        """Set the attributes the server decides on a create (ids, author, timestamps)."""

    def validate(self, action: str, data: Mapping[str, Any]) -> None:
        """Raise `ValueError` for data the model's types accept but the binding does not
        (a body too long); it is answered `bad_request`."""

    def changed(self, change: Change[M]) -> BroadcastReport:
        """Called after a change's notifications went out: state streams derived from
        this table (a list, a roster) broadcast what it means for them."""
        return BroadcastReport()

    # ---- the engine's side -------------------------------------------------------------

    def bind(self, services: Services) -> None:
        super().bind(services)
        table = services.environment.get(self.table_variable, "")
        if not table:
            raise ConfigurationError(f"{type(self).__name__}: {self.table_variable} is not set")
        meta = self.model.Meta
        meta.table_name = table
        meta.region = services.settings.region
        # PynamoDB keeps one connection (and botocore client, with the endpoint of the moment)
        # per model class; the tests and the local stack point the same class at another
        # endpoint, table or region between builds. Binding happens once per container.
        self.model._connection = None
        unknown = [f for f in (*self.fields, *self.writable) if f not in self.attributes]
        if unknown:
            raise ConfigurationError(f"{type(self).__name__}: {', '.join(unknown)} not attributes of "
                                     f"{self.model.__name__}")

    @property
    def table(self) -> str:
        return str(self.model.Meta.table_name)

    @property
    def wire_model(self) -> str:
        return self.model_name or self.model.__name__.lower()

    @property
    def attributes(self) -> dict[str, Attribute[Any]]:
        return self.model.get_attributes()

    @property
    def key_names(self) -> tuple[str, ...]:
        """The hash key's attribute name, then the range key's when there is one."""
        attrs = self.attributes.items()
        hashes = [name for name, attr in attrs if attr.is_hash_key]
        ranges = [name for name, attr in attrs if attr.is_range_key]
        return (*hashes, *ranges)

    @property
    def version_name(self) -> str | None:
        names = [name for name, attr in self.attributes.items() if isinstance(attr, VersionAttribute)]
        return names[0] if names else None

    def load(self, image: Mapping[str, Any] | None) -> M | None:
        """A typed item or stream image as an instance, through PynamoDB's deserialisation
        (a bound `realtime.models.Model` leaves out what it cannot read)."""
        return self.model.from_raw_data(dict(image)) if image else None

    def key_values(self, instance: M) -> dict[str, Any]:
        return {name: jsonable(getattr(instance, name)) for name in self.key_names}

    def pk(self, instance: M) -> Any:
        """The key on the wire: the hash key's value, or `{hash: ..., range: ...}`."""
        values = self.key_values(instance)
        return values[self.key_names[0]] if len(self.key_names) == 1 else values

    def data(self, instance: M) -> dict[str, Any]:
        """The whitelisted fields of `instance` that are set."""
        data = {}
        for name in self.fields:
            value = getattr(instance, name, None)
            if value is not None:
                data[name] = jsonable(value)
        return data

    def event(self, action: str, instance: M, data: Mapping[str, Any], seq: str, cursor: str | None = None) -> bytes:
        """A notification frame: `{"action", "model", "pk", "data", "seq"}` on this stream (and
        its history `cursor` beside the payload when the stream keeps history)."""
        return self.frame({"action": action, "model": self.wire_model, "pk": self.pk(instance),
                           "data": dict(data), "seq": seq}, cursor)

    def actions(self) -> Mapping[str, Any]:
        from realtime.writes import write_actions

        return write_actions(self)

