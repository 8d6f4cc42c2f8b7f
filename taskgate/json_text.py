"""Checks on a JSON text that parsing it cannot make: how deeply it nests, and integers orjson
would not read exactly.

orjson serialises about 254 levels and jsonschema-rs converts about 255; anything deeper that got
in would fail later, when a span or a cache entry is written. So request bodies (the HTTP layer)
and model answers (the engine) are both measured here, before a value is ever built from them.
"""

from __future__ import annotations

import re
from array import array
from itertools import accumulate

# Nesting allowed, counted in objects and arrays with the outermost value as level 1. Far beyond
# any real payload (a schema of 30 nested objects is about 60 levels), and half of what orjson
# serialises: a value taken from a body is written again inside wrappers (a span's record, a cache
# key, a few-shot example), and those wrappers need the room.
MAX_JSON_DEPTH = 128
_QUOTES_AND_BRACKETS = b'"[]{}'
_OTHER_BYTES = bytes(sorted(set(range(256)) - set(_QUOTES_AND_BRACKETS)))
_BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # read as signed bytes: +1, -1


def depth_over(text: bytes, limit: int = MAX_JSON_DEPTH) -> int | None:
    """The nesting depth of `text` when it is over `limit`, else None.

    A text with no more than `limit` opening brackets cannot be deeper, and two counts at C speed
    settle nearly every one; the others are measured exactly by `json_depth`, without recursion.
    """
    if text.count(b"[") + text.count(b"{") <= limit:
        return None
    depth = json_depth(text)
    return depth if depth > limit else None


def json_depth(text: bytes) -> int:
    """How deeply the JSON text nests objects and arrays, with C-speed byte operations only.

    Brackets inside strings do not count, so strings are cut out: escaped backslashes and quotes
    are dropped first (every quote left then opens or closes a string), then all but quotes and
    brackets, then adjacent quote pairs (an empty string, or one string's end and the next one's
    start: nothing between them counts), which leaves no quote at all unless a string holds a
    bracket, and then what is between the remaining quote pairs. The brackets left are summed as
    +1/-1 steps and the highest running total is the depth. A 20 KB chat of 60 messages takes
    about 65 µs, four times orjson's parse of it; a list of 1,000 records, about its parse; 10 MB
    of small objects, about a tenth of its parse (bench/request_checks.py (2)).
    """
    skeleton = _without_escapes(text).translate(None, _OTHER_BYTES).replace(b'""', b"")
    if b'"' in skeleton:
        skeleton = b"".join(skeleton.split(b'"')[::2])
    return max(accumulate(array("b", skeleton.translate(_BRACKET_STEPS))), default=0)


def _without_escapes(text: bytes) -> bytes:
    """JSON text without its escaped backslashes and quotes: every quote left opens or closes a string."""
    if b"\\\\" in text:
        text = text.replace(b"\\\\", b"")
    if b'\\"' in text:
        text = text.replace(b'\\"', b"")
    return text


# orjson reads an integer exactly within the signed and unsigned 64-bit ranges; beyond them it
# reads the literal as a float, rounded (2^64 + 1 becomes 1.8446744073709552e19).
EXACT_INTEGERS = range(-(2**63), 2**64)
_DIGIT_MARKS = bytes(48 if byte in b"0123456789" else 32 for byte in range(256))  # a digit -> "0", else " "
_LONG_DIGIT_RUN = b"0" * 19  # the fewest digits of an integer outside that range, -(2^63) - 1
_LONG_INTEGER = re.compile(rb"(?<![\d.eE+-])-?\d{19,}(?![\d.eE])")  # not a fraction's or an exponent's digits


def inexact_integer(text: bytes) -> str | None:
    """The first integer literal of the valid JSON `text` outside `EXACT_INTEGERS` (cut to 30
    characters), or None.

    Such a literal has 19 digits in a row, and one translate and one search at C speed rule that
    out for nearly every text (about 2 µs for a /v2/call of 2 KB, 12 µs for a chat of 21 KB, a
    fortieth of orjson's parse for 10 MB; bench/request_checks.py). A text with such a run (a long
    id in a string, say) has its strings cut out and its literals of 19 digits or more read.
    """
    if _LONG_DIGIT_RUN not in text.translate(_DIGIT_MARKS):
        return None
    outside_strings = b"".join(_without_escapes(text).split(b'"')[::2])
    for literal in _LONG_INTEGER.findall(outside_strings):
        if len(literal) > 21 or int(literal) not in EXACT_INTEGERS:  # 21: a sign and 20 digits, as 2^64 - 1
            return literal[:30].decode() + ("..." if len(literal) > 30 else "")
    return None
