"""One call's guards at work: screening what goes to the provider and what comes back.

Input rules run over every text of the conversation the provider is about to receive (message
content, text parts, tool results, earlier tool-call arguments): `block` refuses the call before
any provider call, `redact` swaps each finding for a placeholder (or the rule's `replacement`),
`flag` only records. Output rules run over the answer once the placeholders the model echoed are
restored: its text, every string of a structured answer, and tool-call arguments.

A streamed answer cannot be taken back, so with output rules each channel (the text, each tool
call's arguments) holds back its last HOLD_CHARS characters, up to a whitespace, until more arrive
or the stream ends: a finding is always seen whole before any of it is sent. Only a channel that
restores placeholders, or has output rules, holds anything back.

Every finding becomes a `Hit`: its rule, kind and position, never its text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taskgate.engine.guards.findings import Finding, without_overlaps
from taskgate.engine.guards.kinds import PII, SECRETS
from taskgate.engine.guards.patterns import PatternScanner
from taskgate.engine.guards.placeholders import LONGEST_PLACEHOLDER, PARTIAL_PLACEHOLDER, Placeholders
from taskgate.engine.guards.spec import BLOCK, REDACT, GuardRule, Guards
from taskgate.engine.task import Result
from taskgate.errors import GuardBlockedError
from taskgate.providers.base import ToolCall

INPUT, OUTPUT = "input", "output"
HOLD_CHARS = 64  # longer than any finding that spans whitespace (a phone number, an IBAN, a name)
MAX_HELD_CHARS = 65536  # a stream without whitespace is released in pieces of this size at most
MAX_HITS = 256  # recorded per call; more would only repeat the point



def _scan_pii(text: str) -> list[Finding]:
    from taskgate.engine.guards.pii_scan import scan_pii  # imported by the first call that guards (kinds.py)

    return scan_pii(text)


def _scan_secrets(text: str) -> list[Finding]:
    from taskgate.engine.guards.secret_scan import scan_secrets

    return scan_secrets(text)


_SCANS: dict[str, Callable[[str], list[Finding]]] = {PII: _scan_pii, SECRETS: _scan_secrets}


@dataclass(frozen=True, slots=True)
class Hit:
    """A finding as recorded: which rule found what kind where, never the text itself."""

    direction: str
    rule: int
    type: str
    kind: str
    action: str
    where: str
    start: int
    end: int

    def public(self) -> dict[str, Any]:
        return {"kind": self.kind, "where": self.where, "start": self.start, "end": self.end}

    def event(self) -> dict[str, Any]:
        """A span event's data."""
        return {"type": self.type, "direction": self.direction, "action": self.action, **self.public()}


@dataclass(frozen=True, slots=True)
class _Found:
    rule: int
    guard: GuardRule
    finding: Finding


class CallGuard:
    """The guards of one call, with its placeholders and everything found so far."""

    def __init__(self, guards: Guards, *, json_output: bool) -> None:
        self._rules = {INPUT: guards.input, OUTPUT: guards.output}
        self._json_output = json_output  # a streamed answer is JSON text (an output schema)
        self._placeholders = Placeholders()
        self._scanners = {(direction, index): PatternScanner(rule.patterns)
                          for direction, rules in self._rules.items()
                          for index, rule in enumerate(rules) if rule.patterns}
        self._channels: dict[str | int, _Channel] = {}
        self.hits: list[Hit] = []
        self.span_id: str | None = None  # the call's span, once it has one: where the hits are stored

    # ---- scanning

    def _found(self, direction: str, text: str) -> list[_Found]:
        found: list[_Found] = []
        for index, rule in enumerate(self._rules[direction]):
            scanner = self._scanners.get((direction, index))
            findings = scanner.scan(text) if scanner is not None else _SCANS[rule.type](text)
            found.extend(_Found(index, rule, finding) for finding in findings
                         if rule.kinds is None or finding.kind in rule.kinds)
        return found

    def _note(self, direction: str, found: list[_Found], where: str, offset: int = 0) -> list[Hit]:
        hits = [Hit(direction, item.rule, item.guard.type, item.finding.kind, item.guard.action, where,
                    offset + item.finding.start, offset + item.finding.end)
                for item in sorted(found, key=lambda item: item.finding.start)]
        self.hits.extend(hits[:max(0, MAX_HITS - len(self.hits))])
        return hits

    def _redact(self, text: str, found: list[_Found]) -> str:
        redacting = {item.finding: item.guard for item in found if item.guard.action == REDACT}
        if not redacting:
            return text
        pieces, position = [], 0
        for finding in without_overlaps(redacting):
            replacement = redacting[finding].replacement
            pieces += [text[position:finding.start],
                       replacement if replacement is not None
                       else self._placeholders.of(finding, text[finding.start:finding.end])]
            position = finding.end
        pieces.append(text[position:])
        return "".join(pieces)

    def _screen(self, direction: str, text: str, where: str, blocked: list[Hit]) -> str:
        """`text` redacted by the direction's rules; what block rules found goes to `blocked`."""
        found = self._found(direction, text)
        if not found:
            return text
        hits = self._note(direction, found, where)
        blocked.extend(hit for hit in hits if hit.action == BLOCK)
        return self._redact(text, found)

    @staticmethod
    def _refuse(direction: str, blocked: list[Hit]) -> None:
        if blocked:
            kinds = sorted({f"{hit.type}/{hit.kind}" for hit in blocked})
            raise GuardBlockedError(f"an {direction} guard blocked the call: found {', '.join(kinds)}",
                                    details={"direction": direction,
                                             "findings": [{"type": hit.type, **hit.public()}
                                                          for hit in blocked[:MAX_HITS]]})

    # ---- input

    def screen_input(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The conversation as the provider may see it; GuardBlockedError if a block rule found anything."""
        if not self._rules[INPUT]:
            return messages
        blocked: list[Hit] = []
        screened = [self._screen_message(message, f"messages[{index}]", blocked)
                    for index, message in enumerate(messages)]
        self._refuse(INPUT, blocked)
        return screened

    def _screen_message(self, message: dict[str, Any], where: str, blocked: list[Hit]) -> dict[str, Any]:
        changed = dict(message)
        content = message.get("content")
        if isinstance(content, str):
            changed["content"] = self._screen(INPUT, content, f"{where}.content", blocked)
        elif isinstance(content, list):
            changed["content"] = [
                {**part, "text": self._screen(INPUT, part["text"], f"{where}.content[{index}].text", blocked)}
                if isinstance(part, dict) and isinstance(part.get("text"), str) else part
                for index, part in enumerate(content)
            ]
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            changed["tool_calls"] = [self._screen_call(call, f"{where}.tool_calls[{index}]", blocked)
                                     for index, call in enumerate(calls)]
        return changed

    def _screen_call(self, call: Any, where: str, blocked: list[Hit]) -> Any:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
            return call
        arguments = self._screen(INPUT, function["arguments"], f"{where}.function.arguments", blocked)
        return {**call, "function": {**function, "arguments": arguments}}

    # ---- output, whole

    def screen_output(self, result: Result, *, scan: bool = True) -> Result:
        """The answer with placeholders restored, then screened by the output rules (unless `scan`
        is False: a stream's channels already did, as it was sent)."""
        scan = scan and bool(self._rules[OUTPUT])
        blocked: list[Hit] = []

        def screen(text: str, where: str, json_text: bool = False) -> str:
            text = self._placeholders.restore(text, json_text)
            return self._screen(OUTPUT, text, where, blocked) if scan else text

        text = screen(result.text, "text") if result.text else result.text
        payload = _walk(result.payload, "data", screen) if result.payload is not None else None
        tools = [ToolCall(call.id, call.name, screen(call.arguments, f"tool_calls[{index}].arguments", True))
                 for index, call in enumerate(result.tool_calls)]
        self._refuse(OUTPUT, blocked)
        # The tokens' log probabilities would tell what the text was before it was restored or redacted.
        return dataclasses.replace(result, text=text, payload=payload, tool_calls=tools, guards=self.reports(),
                                   logprobs=None)

    # ---- output, streamed

    def stream_text(self, text: str) -> str:
        """What of the answer's text may be sent now."""
        return self._channel("text", "text", self._json_output).push(text)

    def stream_tool(self, index: int, arguments: str) -> str:
        """What of tool call `index`'s arguments may be sent now."""
        return self._channel(index, f"tool_calls[{index}].arguments", True).push(arguments)

    def flush_stream(self) -> list[tuple[str | int, str]]:
        """The held back rest of each channel ("text", or a tool index), once the stream has ended."""
        rests = [(key, channel.close()) for key, channel in self._channels.items()]
        return [(key, rest) for key, rest in rests if rest]

    def reset_stream(self) -> None:
        """Forget what an attempt held back: it is asked again, and its answer was never sent."""
        self._channels.clear()

    def _channel(self, key: str | int, where: str, json_text: bool) -> _Channel:
        channel = self._channels.get(key)
        if channel is None:
            channel = self._channels[key] = _Channel(self, where, json_text)
        return channel

    # ---- what was found

    def reports(self) -> list[dict[str, Any]]:
        """One entry per rule, input first: `{type, direction, action, flagged, findings}`."""
        reports = []
        for direction, rules in self._rules.items():
            for index, rule in enumerate(rules):
                findings = [hit.public() for hit in self.hits if hit.direction == direction and hit.rule == index]
                reports.append({"type": rule.type, "direction": direction, "action": rule.action,
                                "flagged": bool(findings), "findings": findings})
        return reports


class _Channel:
    """One streamed channel: restores placeholders as they complete and, with output rules, holds
    back a tail until it is known to hold no partial finding (see the module's docstring)."""

    __slots__ = ("_guard", "_held", "_json_text", "_raw", "_sent", "_where")

    def __init__(self, guard: CallGuard, where: str, json_text: bool) -> None:
        self._guard = guard
        self._where = where
        self._json_text = json_text
        self._raw = ""  # a possible placeholder's start, not yet restored
        self._held = ""  # restored text the output rules have not released
        self._sent = 0  # characters released so far

    def push(self, text: str) -> str:
        restored = self._restored(self._raw + text)
        if not self._guard._rules[OUTPUT]:
            return restored
        self._held += restored
        return self._release(final=False)

    def close(self) -> str:
        restored = self._guard._placeholders.restore(self._raw, self._json_text)
        self._raw = ""
        if not self._guard._rules[OUTPUT]:
            return restored
        self._held += restored
        return self._release(final=True)

    def _restored(self, text: str) -> str:
        placeholders = self._guard._placeholders
        if not placeholders:
            return text
        start = text.rfind("[")
        if start != -1 and len(text) - start < LONGEST_PLACEHOLDER and PARTIAL_PLACEHOLDER.fullmatch(text, start):
            text, self._raw = text[:start], text[start:]
        else:
            self._raw = ""
        return placeholders.restore(text, self._json_text)

    def _release(self, final: bool) -> str:
        guard, held = self._guard, self._held
        found = guard._found(OUTPUT, held)
        blocking = [item for item in found if item.guard.action == BLOCK]
        if blocking:
            blocked = guard._note(OUTPUT, blocking, self._where, self._sent)
            guard._refuse(OUTPUT, blocked)
        cut = len(held)
        if not final:
            limit = len(held) - HOLD_CHARS
            if limit <= 0:
                return ""
            cut = max(held.rfind(" ", 0, limit), held.rfind("\n", 0, limit)) + 1
            if cut == 0 and len(held) > MAX_HELD_CHARS:
                cut = limit
        for item in sorted(found, key=lambda item: -item.finding.start):  # never cut through a finding
            if item.finding.start < cut < item.finding.end:
                cut = item.finding.start
        ready = [item for item in found if item.finding.end <= cut]
        guard._note(OUTPUT, ready, self._where, self._sent)
        released = guard._redact(held[:cut], ready)
        self._held, self._sent = held[cut:], self._sent + cut
        return released


def _walk(value: Any, path: str, screen: Callable[[str, str], str]) -> Any:
    """A structured answer with every string screened (object keys are names, not data)."""
    if isinstance(value, str):
        return screen(value, path)
    if isinstance(value, dict):
        return {key: _walk(item, f"{path}.{key}", screen) for key, item in value.items()}
    if isinstance(value, list):
        return [_walk(item, f"{path}[{index}]", screen) for index, item in enumerate(value)]
    return value
