"""Span and trace ids: random version-4 UUIDs without a system call or a UUID object each.

`uuid.uuid4()` reads the OS entropy source on every call, which costs tens of microseconds in
sandboxed kernels, and building a `uuid.UUID` costs several more; ids need uniqueness, not
secrecy, so a seeded PRNG and plain formatting serve.
"""

from __future__ import annotations

import random

_random = random.Random()
_VERSION_MASK = ~(0xF000 << 64) & ~(0xC000 << 48)
_VERSION_BITS = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant


def new_id() -> str:
    digits = f"{(_random.getrandbits(128) & _VERSION_MASK) | _VERSION_BITS:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
