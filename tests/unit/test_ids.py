"""Ids are well-formed version-7 UUIDs: time-ordered, and never repeated, even across a fork."""

import os
import time
import uuid

import pytest

from taskgate.ids import new_id


def test_ids_are_version_7_uuids_in_canonical_form() -> None:
    for _ in range(1000):
        text = new_id()
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 7 and parsed.variant == uuid.RFC_4122


def test_ids_carry_the_time_they_were_made() -> None:
    before = time.time_ns() // 1_000_000
    made = uuid.UUID(new_id()).int >> 80
    after = time.time_ns() // 1_000_000
    assert before <= made <= after


def test_later_ids_sort_later() -> None:
    """What keeps inserts at the end of the id and trace-id indexes."""
    earlier = [new_id() for _ in range(100)]
    time.sleep(0.002)
    later = [new_id() for _ in range(100)]
    assert max(earlier) < min(later)


def test_ids_do_not_repeat() -> None:
    assert len({new_id() for _ in range(10_000)}) == 10_000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its ids and leave at once
        os.close(read_end)
        os.write(write_end, " ".join(new_id() for _ in range(50)).encode())
        os._exit(0)
    os.close(write_end)
    parents = {new_id() for _ in range(50)}
    with os.fdopen(read_end, "rb") as pipe:
        childs = set(pipe.read().decode().split())
    os.waitpid(pid, 0)
    assert len(childs) == 50 and not childs & parents
