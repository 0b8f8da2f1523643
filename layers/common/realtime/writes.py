"""Writes through the socket: `create`, `update` and `delete` frames on a binding's stream.

Like Channels 1's inbound binding: the frame is checked against the binding (its
`writable` fields, the model's types, the key, the version), `has_permission` decides,
and PynamoDB writes the item. The change then reaches every permitted subscriber, the
writer included, through the table's stream like a write from any other AWS service.
A refused write changes nothing. Answers: `bad_request` (shape), `unauthenticated`
(anonymous), `forbidden` (`has_permission`), `not_found`, `conflict` (the `version` is
not the stored one: optimistic locking with the model's `VersionAttribute`), or an
`ack` carrying the item's `pk` and new `version`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pynamodb.attributes import (
    Attribute,
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    NumberSetAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    VersionAttribute,
)
from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, UpdateError

from realtime import keys, protocol
from realtime.auth import Identity
from realtime.bindings import CREATE, DELETE, UPDATE, Binding
from realtime.protocol import ProtocolError, Request

if TYPE_CHECKING:
    from realtime.connections import Connection
    from realtime.publishing import Changes

CONDITION_FAILED = "ConditionalCheckFailedException"


@dataclass(frozen=True)
class Write:
    """A write frame, validated."""

    action: str
    data: Mapping[str, Any]
    key: tuple[Any, ...] = ()  # hash (and range) key values, for update and delete
    version: int | None = None


def _typed(attr: Attribute[Any], value: Any, name: str) -> Any:
    """`value` (from JSON) as `attr` stores it, or ValueError."""
    if isinstance(attr, (UnicodeAttribute,)):
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string")
        return value
    if isinstance(attr, BooleanAttribute):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false")
        return value
    if isinstance(attr, NumberAttribute) and not isinstance(attr, VersionAttribute):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number")
        return value
    if isinstance(attr, (UnicodeSetAttribute, NumberSetAttribute)):
        member = str if isinstance(attr, UnicodeSetAttribute) else (int, float)
        if not isinstance(value, list) or not all(isinstance(v, member) and not isinstance(v, bool) for v in value):
            raise ValueError(f"{name} must be a list of {'strings' if member is str else 'numbers'}")
        return set(value)
    if isinstance(attr, ListAttribute):
        if not isinstance(value, list):
            raise ValueError(f"{name} must be a list")
        return value
    if isinstance(attr, MapAttribute):
        if not isinstance(value, dict):
            raise ValueError(f"{name} must be an object")
        return value
    raise ValueError(f"{name} cannot be written through the socket")


class WriteAction:
    """One of `create`, `update`, `delete` on one binding (an `Action` for the router)."""

    def __init__(self, binding: Binding[Any], action: str) -> None:
        self.binding = binding
        self.action = action

    # ---- validation: the frame's shape, before anything is read ------------------------------

    def parse(self, request: Request) -> Write:
        fields = request.fields
        binding = self.binding
        if not binding.writable:
            raise request.fail(protocol.FORBIDDEN, f"{binding.name} takes no writes through the socket")
        data: Mapping[str, Any] = {}
        if self.action in (CREATE, UPDATE):
            raw = fields.get("data")
            if not isinstance(raw, dict):
                raise request.fail(protocol.BAD_REQUEST, "data must be an object")
            allowed = binding.writable if self.action == CREATE else tuple(
                f for f in binding.writable if f not in binding.key_names)
            unknown = sorted(set(raw) - set(allowed))
            if unknown:
                raise request.fail(protocol.BAD_REQUEST,
                                   f"{', '.join(repr(u[:64]) for u in unknown)} may not be written; "
                                   f"{self.action} takes {', '.join(allowed) or 'nothing'}")
            if not raw:
                raise request.fail(protocol.BAD_REQUEST, "data names no field")
            attributes = binding.attributes
            try:
                data = {name: _typed(attributes[name], value, name) for name, value in raw.items()}
                binding.validate(self.action, data)
            except ValueError as exc:
                raise request.fail(protocol.BAD_REQUEST, str(exc)) from None
        key: tuple[Any, ...] = ()
        version: int | None = None
        if self.action in (UPDATE, DELETE):
            key = self._key(request)
            if binding.version_name is not None:
                version = fields.get("version")
                if isinstance(version, bool) or not isinstance(version, int) or version < 1:
                    raise request.fail(protocol.BAD_REQUEST, "version must be a positive integer")
        return Write(self.action, data, key, version)

    def _key(self, request: Request) -> tuple[Any, ...]:
        names = self.binding.key_names
        pk = request.fields.get("pk")
        if len(names) == 1:
            values = [pk]
        elif isinstance(pk, dict) and set(pk) == set(names):
            values = [pk[name] for name in names]
        else:
            raise request.fail(protocol.BAD_REQUEST, f"pk must be an object with {' and '.join(names)}")
        attributes = self.binding.attributes
        try:
            for name, value in zip(names, values):
                _typed(attributes[name], value, f"pk {name}" if len(names) > 1 else "pk")
                if isinstance(value, str):
                    keys.valid_key(value, f"pk {name}" if len(names) > 1 else "pk")
        except (ValueError, keys.InvalidKey) as exc:
            raise request.fail(protocol.BAD_REQUEST, str(exc)) from None
        return tuple(values)

    # ---- the write ---------------------------------------------------------------------------

    def run(self, connection: Connection, write: Write, request: Request, changes: Changes) -> dict[str, Any]:
        if connection.anonymous:
            raise request.fail(protocol.UNAUTHENTICATED, "sign in to write")
        identity = Identity(connection.user_id, connection.name)
        if write.action == CREATE:
            return self._create(identity, write, request)
        instance = self._get(write.key, request)
        if not self.binding.has_permission(identity, write.action, instance):
            raise request.fail(protocol.FORBIDDEN, f"you may not {write.action} this {self.binding.wire_model}")
        version_name = self.binding.version_name
        if version_name is not None and getattr(instance, version_name) != write.version:
            raise self._conflict(request)
        try:
            if write.action == UPDATE:
                attributes = self.binding.attributes
                instance.update(actions=[attributes[name].set(value) for name, value in write.data.items()])
            else:
                instance.delete()
        except (UpdateError, DeleteError) as exc:
            if exc.cause_response_code != CONDITION_FAILED:
                raise
            self._get(write.key, request)  # gone meanwhile: not_found; else someone wrote first
            raise self._conflict(request) from None
        return self._answer(instance, deleted=write.action == DELETE)

    def _create(self, identity: Identity, write: Write, request: Request) -> dict[str, Any]:
        binding = self.binding
        instance = binding.model(**dict(write.data))
        binding.prepare(identity, instance)
        try:
            for name in binding.key_names:
                value = getattr(instance, name)
                if value is None:
                    raise ValueError(f"{name} is required")
                if isinstance(value, str):
                    keys.valid_key(value, name)
        except (ValueError, keys.InvalidKey) as exc:
            raise request.fail(protocol.BAD_REQUEST, str(exc)) from None
        if not binding.has_permission(identity, CREATE, instance):
            raise request.fail(protocol.FORBIDDEN, f"you may not create this {binding.wire_model}")
        hash_name = binding.key_names[0]
        try:
            instance.save(condition=binding.attributes[hash_name].does_not_exist())
        except PutError as exc:
            if exc.cause_response_code != CONDITION_FAILED:
                raise
            raise request.fail(protocol.CONFLICT, f"that {binding.wire_model} exists already") from None
        return self._answer(instance)

    def _get(self, key: tuple[Any, ...], request: Request) -> Any:
        try:
            return self.binding.model.get(*key, consistent_read=True)
        except DoesNotExist:
            raise request.fail(protocol.NOT_FOUND, f"no such {self.binding.wire_model}") from None

    def _conflict(self, request: Request) -> ProtocolError:
        return request.fail(protocol.CONFLICT, "version is not the stored one; read it again")

    def _answer(self, instance: Any, *, deleted: bool = False) -> dict[str, Any]:
        answer: dict[str, Any] = {"pk": self.binding.pk(instance)}
        version_name = self.binding.version_name
        if version_name is not None and not deleted:
            answer["version"] = getattr(instance, version_name)
        return answer


def write_actions(binding: Binding[Any]) -> dict[str, WriteAction]:
    return {action: WriteAction(binding, action) for action in (CREATE, UPDATE, DELETE)}
