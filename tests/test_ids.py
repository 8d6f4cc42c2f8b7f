"""Span ids are well-formed version-4 UUIDs and do not repeat."""

import uuid

from taskgate.ids import new_id


def test_ids_are_version_4_uuids_in_canonical_form() -> None:
    for _ in range(1000):
        text = new_id()
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_ids_do_not_repeat() -> None:
    assert len({new_id() for _ in range(10_000)}) == 10_000
