"""One call's guards (`CallGuard`) without a server: what the provider would get, what the
caller gets back, streamed and not, and how the wire forms are parsed into rules."""

from __future__ import annotations

from typing import Any

import pytest

from taskgate.api.guard_fields import guards_from_body, guards_from_headers
from taskgate.engine.guards import CallGuard, Guards, guard_rule
from taskgate.engine.guards.call import HOLD_CHARS
from taskgate.engine.task import Result
from taskgate.errors import BadRequestError, GuardBlockedError
from taskgate.providers.base import ToolCall

EMAIL, CARD = "jane.doe@example.com", "4111 1111 1111 1111"
KEY = "AKIAIOSFODNN7EXAMPLE"


def guard(input: list[tuple[str, str]] = (), output: list[tuple[str, str]] = (),  # type: ignore[assignment]
          json_output: bool = False, **options: Any) -> CallGuard:
    rules = {direction: tuple(guard_rule(kind, action, "g", **options) for kind, action in pairs)
             for direction, pairs in (("input", input), ("output", output))}
    return CallGuard(Guards(**rules), json_output=json_output)


def result(text: str | None = None, payload: Any = None, tools: list[ToolCall] | None = None) -> Result:
    return Result(span_id="s", trace_id="t", text=text, payload=payload, tool_calls=tools or [])


# ---- input

def test_redact_gives_stable_placeholders_and_restores_what_the_model_echoes() -> None:
    g = guard(input=[("pii", "redact")])
    messages = [{"role": "system", "content": f"Owner: {EMAIL}"},
                {"role": "user", "content": [{"type": "text", "text": f"Mail {EMAIL} and charge {CARD}"},
                                             {"type": "image_url", "image_url": {"url": "data:x"}}]}]
    sent = g.screen_input(messages)
    assert sent[0]["content"] == "Owner: [EMAIL_1]"
    assert sent[1]["content"][0]["text"] == "Mail [EMAIL_1] and charge [CARD_1]"
    assert sent[1]["content"][1] == messages[1]["content"][1]
    assert messages[0]["content"] == f"Owner: {EMAIL}"  # the caller's conversation is left as it was
    answer = g.screen_output(result("Done: wrote [EMAIL_1], charged [CARD_1]; [EMAIL_9] is unknown"))
    assert answer.text == f"Done: wrote {EMAIL}, charged {CARD}; [EMAIL_9] is unknown"
    assert [(h.kind, h.where, h.start, h.end) for h in g.hits] == [
        ("email", "messages[0].content", 7, 27), ("email", "messages[1].content[0].text", 5, 25),
        ("card", "messages[1].content[0].text", 37, 56)]
    [report] = answer.guards
    assert report["type"] == "pii" and report["direction"] == "input" and report["flagged"]
    assert EMAIL not in str(report) and EMAIL not in str([h.event() for h in g.hits])


def test_a_replacement_replaces_every_finding_and_is_never_restored() -> None:
    g = guard(input=[("secrets", "redact")], replacement="<hidden>")
    sent = g.screen_input([{"role": "user", "content": f"key {KEY}"}])
    assert sent[0]["content"] == "key <hidden>"
    assert g.screen_output(result("it was <hidden> [SECRET_1]")).text == "it was <hidden> [SECRET_1]"


def test_tool_results_and_tool_call_arguments_are_input_too() -> None:
    g = guard(input=[("pii", "redact")])
    sent = g.screen_input([
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": f'{{"email": "{EMAIL}"}}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": f"found {CARD}"},
    ])
    assert sent[0]["tool_calls"][0]["function"]["arguments"] == '{"email": "[EMAIL_1]"}'
    assert sent[1]["content"] == "found [CARD_1]"


def test_block_refuses_naming_kinds_and_positions_only() -> None:
    g = guard(input=[("pii", "flag"), ("secrets", "block")])
    with pytest.raises(GuardBlockedError) as raised:
        g.screen_input([{"role": "user", "content": f"{EMAIL} {KEY}"}, {"role": "user", "content": KEY}])
    error = raised.value
    assert error.status == 400 and KEY not in str(error.body())
    assert error.details["findings"] == [
        {"type": "secrets", "kind": "aws_key", "where": "messages[0].content", "start": 21, "end": 41},
        {"type": "secrets", "kind": "aws_key", "where": "messages[1].content", "start": 0, "end": 20}]
    assert {h.kind for h in g.hits} == {"email", "aws_key"}  # the flag rule's finding is recorded too


def test_flag_changes_nothing_and_presets_narrow_the_kinds() -> None:
    g = CallGuard(Guards(input=(guard_rule("pii", "flag", "g", presets=["card"]),)), json_output=False)
    messages = [{"role": "user", "content": f"{EMAIL} {CARD}"}]
    assert g.screen_input(messages) == messages
    assert [h.kind for h in g.hits] == ["card"]


# ---- output

def test_output_rules_walk_a_structured_answer_and_tool_arguments() -> None:
    g = guard(output=[("pii", "redact")])
    answer = g.screen_output(result(payload={"who": {"mail": EMAIL}, "cards": [CARD], "n": 3},
                                    tools=[ToolCall("c1", "pay", f'{{"card": "{CARD}"}}')]))
    assert answer.payload == {"who": {"mail": "[EMAIL_1]"}, "cards": ["[CARD_1]"], "n": 3}
    assert answer.tool_calls[0].arguments == '{"card": "[CARD_1]"}'
    assert [(h.where, h.kind) for h in g.hits] == [("data.who.mail", "email"), ("data.cards[0]", "card"),
                                                    ("tool_calls[0].arguments", "card")]


def test_output_block_refuses_the_answer() -> None:
    g = guard(output=[("secrets", "block")])
    with pytest.raises(GuardBlockedError, match="output guard"):
        g.screen_output(result(f"here is {KEY}"))


def test_restored_text_in_json_is_escaped() -> None:
    g = guard(input=[("custom_patterns", "redact")], patterns=[r'say "\w+"'])
    assert g.screen_input([{"role": "user", "content": 'say "hi"'}])[0]["content"] == "[PATTERN_1]"
    answer = g.screen_output(result(tools=[ToolCall("c", "f", '{"q": "[PATTERN_1]"}')]))
    assert answer.tool_calls[0].arguments == '{"q": "say \\"hi\\""}'


# ---- streamed output

def stream(g: CallGuard, pieces: list[str]) -> str:
    sent = "".join(g.stream_text(piece) for piece in pieces)
    return sent + "".join(rest for _, rest in g.flush_stream())


def test_a_placeholder_split_across_deltas_is_restored() -> None:
    g = guard(input=[("pii", "redact")])
    g.screen_input([{"role": "user", "content": EMAIL}])
    assert g.stream_text("Mail [EMA") == "Mail "
    assert g.stream_text("IL_1") == ""
    assert g.stream_text("] now [X") == f"{EMAIL} now "  # "[X" may begin a placeholder
    assert g.stream_text("y]") == "[Xy]"  # it did not
    assert g.stream_text("[lower") == "[lower"  # "[l" cannot


def test_without_output_rules_nothing_is_held_back() -> None:
    g = guard(input=[("pii", "flag")])
    assert g.stream_text("a [EMAIL_1 b") == "a [EMAIL_1 b"


def test_output_redact_never_sends_part_of_a_finding() -> None:
    g = guard(output=[("pii", "redact")])
    text = "Sure, you can call me on +46 70 123 45 67 or write " + EMAIL + " whenever it suits you. " * 3
    pieces = [text[i:i + 3] for i in range(0, len(text), 3)]
    sent_so_far = ""
    for piece in pieces:
        sent_so_far += g.stream_text(piece)
        assert "+46" not in sent_so_far and "jane" not in sent_so_far
    sent = sent_so_far + "".join(rest for _, rest in g.flush_stream())
    assert sent == text.replace("+46 70 123 45 67", "[PHONE_1]").replace(EMAIL, "[EMAIL_1]")
    assert [(h.kind, h.start, h.end) for h in g.hits] == [("phone", 25, 41), ("email", 51, 71)]


def test_text_is_held_back_only_by_its_last_stretch() -> None:
    g = guard(output=[("pii", "flag")])
    sent = g.stream_text("word " * 40)
    assert 0 < len(sent) <= 200 - HOLD_CHARS
    assert sent + stream(g, ["more"]) == "word " * 40 + "more"


def test_output_block_mid_stream_raises_before_the_finding_is_sent() -> None:
    g = guard(output=[("secrets", "block")])
    assert g.stream_text("fine text " * 10) != ""
    with pytest.raises(GuardBlockedError):
        g.stream_text(f"the key is {KEY[:10]}")
        g.stream_text(f"{KEY[10:]} ok")
    assert g.hits[0].kind == "aws_key" and g.hits[0].start == 111


def test_streamed_tool_arguments_are_restored_per_call() -> None:
    g = guard(input=[("pii", "redact")])
    g.screen_input([{"role": "user", "content": EMAIL}])
    assert g.stream_tool(0, '{"to": "[EMAIL') == '{"to": "'
    assert g.stream_tool(1, '{"x": 1}') == '{"x": 1}'
    assert g.stream_tool(0, '_1]"}') == f'{EMAIL}"}}'


# ---- the wire forms

def test_v3_guard_field() -> None:
    guards = guards_from_body({"input": [{"type": "pii", "action": "redact", "presets": ["email"]}],
                               "output": [{"type": "custom_patterns", "custom_patterns": ["x\\d+"]}]})
    assert guards is not None
    assert [(r.type, r.action, r.kinds) for r in guards.input] == [("pii", "redact", frozenset({"email"}))]
    assert guards.output[0].action == "flag" and len(guards.output[0].patterns) == 1
    assert guards_from_body(None) is None and guards_from_body({"input": []}) is None


@pytest.mark.parametrize(("value", "fragment"), [
    ("pii", "must be an object"),
    ({"inputs": []}, "unknown fields"),
    ({"input": {"type": "pii"}}, "must be a list"),
    ({"input": ["pii"]}, "must be an object"),
    ({"input": [{"type": "toxicity"}]}, "guard.input[0].type must be one of pii, secrets, custom_patterns"),
    ({"input": [{"type": "pii", "action": "shout"}]}, "guard.input[0].action must be one of flag, block, redact"),
    ({"input": [{"type": "pii", "model": "openai/gpt-4o"}]}, "guard.input[0].model is not supported"),
    ({"input": [{"type": "pii", "check": "x"}]}, "check is not supported"),
    ({"input": [{"type": "pii", "applies_to": "x"}]}, "applies_to is not supported"),
    ({"input": [{"type": "pii", "presets": ["dna"]}]}, "unknown pii kinds"),
    ({"input": [{"type": "custom_patterns", "presets": ["x"], "custom_patterns": ["x"]}]}, "only for types"),
    ({"input": [{"type": "pii", "custom_patterns": ["x"]}]}, "only for type custom_patterns"),
    ({"input": [{"type": "custom_patterns"}]}, "must be a list of patterns"),
    ({"input": [{"type": "custom_patterns", "custom_patterns": ["(a)\\1"]}]}, "linear time"),
    ({"input": [{"type": "pii", "replacement": "x"}]}, "only for action redact"),
    ({"input": [{"type": "pii", "action": "redact", "replacement": 3}]}, "replacement must be a string"),
    ({"output": [{"type": "pii"}] * 17}, "at most 16"),
])
def test_bad_guard_fields_are_400s(value: Any, fragment: str) -> None:
    with pytest.raises(BadRequestError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        guards_from_body(value)


def test_compat_headers() -> None:
    guards = guards_from_headers({"x-opper-guard-input": "pii, secrets", "x-opper-guard-action": "block"})
    assert guards is not None and [(r.type, r.action) for r in guards.input] == [("pii", "block"), ("secrets", "block")]
    assert guards_from_headers({"x-opper-guard-output": "pii"}).output[0].action == "flag"  # type: ignore[union-attr]
    assert guards_from_headers({}) is None


@pytest.mark.parametrize(("headers", "fragment"), [
    ({"x-opper-guard-input": "toxicity"}, "a guard type in the X-Opper-Guard-Input header must be one of"),
    ({"x-opper-guard-output": "pii", "x-opper-guard-action": "shout"}, "X-Opper-Guard-Action header must be one of"),
    ({"x-opper-guard-action": "block"}, "needs X-Opper-Guard-Input or X-Opper-Guard-Output"),
    ({"x-opper-guard-input": "pii,,secrets"}, "comma-separated"),
    ({"x-opper-guard-input": "custom_patterns"}, "only a v3 body"),
])
def test_bad_guard_headers_are_400s(headers: dict[str, str], fragment: str) -> None:
    with pytest.raises(BadRequestError, match=fragment):
        guards_from_headers(headers)
