"""What a detector reports: where in a text something sensitive is, and what kind it is.

A finding never holds the matched text: it travels into spans, span events, error bodies and
headers, where only its kind and position may appear (the text is read back from the scanned
string by whoever needs it, for redaction, while the call runs).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple


class Finding(NamedTuple):
    """`text[start:end]` is a `kind` (email, card, aws_key, ...) of the guard `type` (pii, secrets,
    custom_patterns). Immutable, and a tuple rather than a frozen dataclass: a table of numbers
    holds thousands of findings, and a frozen dataclass costs twice as much to make."""

    type: str
    kind: str
    start: int
    end: int


def without_overlaps(findings: Iterable[Finding]) -> list[Finding]:
    """In text order, one finding per stretch of text: where two overlap the earlier wins, and at
    the same start the longer (a card number is not also a phone number)."""
    kept: list[Finding] = []
    for finding in sorted(findings, key=lambda f: (f.start, f.start - f.end)):
        if not kept or finding.start >= kept[-1].end:
            kept.append(finding)
    return kept
