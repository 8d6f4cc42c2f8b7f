"""Span and trace ids: random version-4 UUIDs without a system call each.

`uuid.uuid4()` reads the OS entropy source on every call, which costs tens of microseconds in
sandboxed kernels; ids need uniqueness, not secrecy, so a seeded PRNG serves.
"""

from __future__ import annotations

import random
import uuid

_random = random.Random()


def new_id() -> str:
    return str(uuid.UUID(int=_random.getrandbits(128), version=4))
