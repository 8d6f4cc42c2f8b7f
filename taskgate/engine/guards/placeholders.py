"""Stable placeholders for redacted text, and putting the originals back.

Within one call the same text always gets the same placeholder (`[EMAIL_1]`), so the model can
still tell two people apart, and refer to them: a placeholder it echoes is replaced by the
original in the answer, which therefore reads as if nothing had been hidden, while the provider
never saw it. Placeholders are plain ASCII in brackets, which models copy faithfully and which
need no escaping inside JSON text.
"""

from __future__ import annotations

import re

import orjson

from taskgate.engine.guards.findings import Finding
from taskgate.engine.guards.kinds import PII

_SECRET_LABEL = {"secrets": "SECRET", "custom_patterns": "PATTERN"}
_LABELS = ("EMAIL", "PHONE", "CARD", "IBAN", "NATIONAL_ID", "IP_ADDRESS", "PERSON_NAME", "SECRET", "PATTERN")
PLACEHOLDER = re.compile(r"\[(?:" + "|".join(_LABELS) + r")_\d{1,6}\]")
PARTIAL_PLACEHOLDER = re.compile(r"\[[A-Z_0-9]{0,20}")  # what a stream may have sent of one so far
LONGEST_PLACEHOLDER = 22


def label(finding: Finding) -> str:
    return finding.kind.upper() if finding.type == PII else _SECRET_LABEL[finding.type]


class Placeholders:
    """One call's placeholders and the originals they stand for."""

    __slots__ = ("_counts", "_originals", "_placeholders")

    def __init__(self) -> None:
        self._placeholders: dict[str, str] = {}  # original -> placeholder
        self._originals: dict[str, str] = {}  # placeholder -> original
        self._counts: dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self._originals)

    def of(self, finding: Finding, original: str) -> str:
        placeholder = self._placeholders.get(original)
        if placeholder is None:
            name = label(finding)
            count = self._counts[name] = self._counts.get(name, 0) + 1
            placeholder = self._placeholders[original] = f"[{name}_{count}]"
            self._originals[placeholder] = original
        return placeholder

    def restore(self, text: str, json_text: bool = False) -> str:
        """`text` with every placeholder of this call replaced by its original; in JSON text, the
        original escaped as a JSON string's content."""
        if not self._originals or "[" not in text:
            return text

        def original(match: re.Match[str]) -> str:
            found = self._originals.get(match.group())
            if found is None:
                return match.group()
            return orjson.dumps(found).decode()[1:-1] if json_text else found

        return PLACEHOLDER.sub(original, text)
