"""How deeply a JSON text nests, measured before it is parsed.

orjson serialises about 254 levels and jsonschema-rs converts about 255; anything deeper that got
in would fail later, when a span or a cache entry is written. So request bodies (the HTTP layer)
and model answers (the engine) are both measured here, before a value is ever built from them.
"""

from __future__ import annotations

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
    if b"\\\\" in text:
        text = text.replace(b"\\\\", b"")
    if b'\\"' in text:
        text = text.replace(b'\\"', b"")
    skeleton = text.translate(None, _OTHER_BYTES).replace(b'""', b"")
    if b'"' in skeleton:
        skeleton = b"".join(skeleton.split(b'"')[::2])
    return max(accumulate(array("b", skeleton.translate(_BRACKET_STEPS))), default=0)
