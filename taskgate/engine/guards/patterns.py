"""The caller's own patterns (`custom_patterns`), run by RE2.

A caller's regex runs on the server, so it must not be able to stall it. RE2 matches in time
linear in the text, whatever the pattern (`(a+)+$` included), and refuses what it cannot match
that way (backreferences, lookaround): such a pattern is a 400, as is one whose compiled program
would exceed MAX_PROGRAM_BYTES, or more patterns, or longer ones, than the bounds below allow. The
scan itself is also bounded: the call's patterns have SCAN_SECONDS over all its text, and a call
whose text takes longer is refused (400) rather than left to hold a worker.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taskgate.engine.guards.findings import Finding
from taskgate.errors import BadRequestError

if TYPE_CHECKING:
    import re2

CUSTOM_PATTERNS = "custom_patterns"
MAX_PATTERNS = 32
MAX_PATTERN_CHARS = 512
MAX_PROGRAM_BYTES = 1 << 20
SCAN_SECONDS = 1.0



@functools.cache
def _options() -> Any:
    """RE2's options; the library (2.5 MB) is loaded by the first call with custom patterns."""
    import re2

    options = re2.Options()
    options.max_mem = MAX_PROGRAM_BYTES
    options.log_errors = False
    return options


class PatternScanTimeoutError(BadRequestError):
    code = "guard_pattern_timeout"


def compile_patterns(patterns: list[str], where: str) -> tuple[re2._Regexp, ...]:
    """The caller's patterns compiled, or a 400 naming the first that cannot be used."""
    if not patterns:
        raise BadRequestError(f"{where}.custom_patterns must list at least one pattern for type custom_patterns")
    if len(patterns) > MAX_PATTERNS:
        raise BadRequestError(f"{where}.custom_patterns may hold at most {MAX_PATTERNS} patterns")
    import re2

    compiled = []
    for index, pattern in enumerate(patterns):
        here = f"{where}.custom_patterns[{index}]"
        if not isinstance(pattern, str) or not pattern:
            raise BadRequestError(f"{here} must be a non-empty string")
        if len(pattern) > MAX_PATTERN_CHARS:
            raise BadRequestError(f"{here} is longer than {MAX_PATTERN_CHARS} characters")
        try:
            regex = re2.compile(pattern, _options())
        except re2.error as exc:
            reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
            raise BadRequestError(f"{here} is not a pattern this server runs in linear time (RE2 syntax, no "
                                  f"backreferences or lookaround, a compiled size within bounds): {reason}") from exc
        if regex.search("") is not None:
            raise BadRequestError(f"{here} matches the empty string, so it would match everywhere")
        compiled.append(regex)
    return tuple(compiled)


@dataclass(slots=True)
class PatternScanner:
    """One call's compiled patterns and what is left of its scanning time."""

    patterns: tuple[re2._Regexp, ...]
    seconds_left: float = SCAN_SECONDS

    def scan(self, text: str) -> list[Finding]:
        started = time.perf_counter()
        findings = [Finding(CUSTOM_PATTERNS, f"pattern_{index}", *match.span())
                    for index, pattern in enumerate(self.patterns) for match in pattern.finditer(text)]
        self.seconds_left -= time.perf_counter() - started
        if self.seconds_left < 0:
            raise PatternScanTimeoutError(f"custom_patterns took longer than {SCAN_SECONDS} s over this call's text")
        return findings
