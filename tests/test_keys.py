"""Client values can never break the key layout."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.documents import valid_slug
from monitor.presence import document_group
from realtime import keys
from realtime.presence import Held


@given(st.text(min_size=1, max_size=50))
def test_encoded_values_never_contain_the_separator(value: str) -> None:
    encoded = keys.encode(value)
    assert keys.SEP not in encoded
    assert keys.decode(encoded) == value


@given(st.text(min_size=1, max_size=40), st.sampled_from(["view", "edit", "review"]))
def test_presence_tokens_round_trip(slug: str, phase: str) -> None:
    held = Held(slug, phase)
    assert Held.from_token(held.token) == held


def test_prefixes_do_not_overlap() -> None:
    # "a" must not match "a#b"'s items, nor "a%23b"'s.
    assert keys.presence_pk("a#b", "c1").rpartition("#")[0] != keys.presence_pk("a", "c1").rpartition("#")[0]
    assert not any(pk.startswith(keys.presence_pks("a", keys.MAX_ROOM_SHARDS)[0][:-1] + "#") for pk in keys.presence_pks("a#b", keys.MAX_ROOM_SHARDS))
    assert document_group("a#b") != document_group("a%23b")
    assert keys.group_key("document", document_group("a#b/c")) == "a#b/c"


@pytest.mark.parametrize("bad", [None, 5, "", "x" * 257, "a\u0000b", "a\nb", "\ud800"])
def test_invalid_slugs(bad) -> None:
    with pytest.raises(keys.InvalidKey):
        valid_slug(bad)


def test_unicode_and_separators_are_fine() -> None:
    for slug in ("a#b", "über/straße", "50%", "a b", "emoji-🎉"):
        assert valid_slug(slug) == slug


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_a_state_partitions_notes_sort_before_its_entries(one: str, other: str) -> None:
    """A subscribe reads the entries alone (`sk > STATE_ENTRIES_AFTER`), never the notes."""
    assert keys.state_note_sk(one) < keys.STATE_ENTRIES_AFTER < keys.state_sk(other)
