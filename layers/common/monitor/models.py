"""The bound tables' items: documents (written by other AWS services) and their comments.

Documents come from writers this application does not control, so the attributes its
read rule depends on (`visibility`, `owner`, `readers`) read whatever was stored without
failing, and a shape the rule does not expect reads as the safe case: see
`monitor.documents.DocumentBinding.audience`.
"""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import Attribute, UnicodeAttribute, VersionAttribute
from pynamodb.constants import LIST

from realtime.models import Model

#: What a string attribute reads as when something else was stored: never a valid value.
MALFORMED = "\x00malformed"


class StoredString(UnicodeAttribute):
    """A string another writer may have stored as another type: that reads as `MALFORMED`."""

    def get_value(self, value: dict[str, Any]) -> Any:
        stored = value.get("S")
        return stored if isinstance(stored, str) else MALFORMED


class UserIds(Attribute[list[str]]):
    """User ids as a list of strings (or a string set). Any other shape reads as nobody."""

    attr_type = LIST

    def get_value(self, value: dict[str, Any]) -> Any:
        return value

    def serialize(self, value: list[str]) -> list[dict[str, str]]:
        return [{"S": user} for user in value]

    def deserialize(self, value: dict[str, Any]) -> list[str]:
        if isinstance(value.get("SS"), list):
            entries = value["SS"]
        elif isinstance(value.get("L"), list) and all(isinstance(v, dict) and set(v) == {"S"} for v in value["L"]):
            entries = [v["S"] for v in value["L"]]
        else:
            return []
        return [user for user in entries if isinstance(user, str)] if all(isinstance(u, str) for u in entries) else []


class Document(Model):
    class Meta:
        table_name: str | None = None  # from DOCUMENTS_TABLE, set when the binding is bound

    slug = UnicodeAttribute(hash_key=True)
    title = UnicodeAttribute(null=True)
    abstract = UnicodeAttribute(null=True)
    image = UnicodeAttribute(null=True)
    visibility = StoredString(null=True)
    owner = StoredString(null=True)
    readers = UserIds(null=True)


class Comment(Model):
    class Meta:
        table_name: str | None = None  # from COMMENTS_TABLE

    document = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)
    author = UnicodeAttribute()
    body = UnicodeAttribute()
    created_at = UnicodeAttribute()
    version = VersionAttribute()
