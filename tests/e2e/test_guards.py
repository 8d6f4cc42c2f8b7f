"""Guards end to end over the fake providers: findings x actions x input/output x streamed/not, on
the v3 call and the compat chat completions, asserting from the fake's request log what the provider
actually received, and from the span events what was recorded (kinds and positions, never text)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from tests.fakes.provider import Behaviour, FakeProvider
from tests.harness import ServerProcess
from tests.http_client import Reply, get, post, sse_events

MODEL = "openai/gpt-4o-mini"
FAKE_MODEL = "gpt-4o-mini"


@dataclass(frozen=True)
class Case:
    name: str
    raw: str  # the sensitive text itself
    placeholder: str  # what redaction turns it into (the first of its label in a call)
    guard: dict[str, Any]  # a v3 GuardrailConfig without its action
    header: str | None  # the compat X-Opper-Guard-* value; None: compat cannot express it


FINDINGS = [
    Case("email", "jane.doe@example.com", "[EMAIL_1]", {"type": "pii"}, "pii"),
    Case("card", "4111 1111 1111 1111", "[CARD_1]", {"type": "pii"}, "pii"),
    Case("aws_key", "AKIAIOSFODNN7EXAMPLE", "[SECRET_1]", {"type": "secrets"}, "secrets"),
    Case("pattern", "ORD-123456", "[PATTERN_1]", {"type": "custom_patterns", "custom_patterns": [r"ORD-\d{6}"]}, None),
]
ACTIONS = ("flag", "block", "redact")
DIRECTIONS = ("input", "output")
SURFACES = ("v3", "compat")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Answer:
    status: int
    text: str  # the answer's text as the caller got it (streamed: the deltas joined)
    guards: list[dict[str, Any]]  # v3 meta.guards or the compat stream's last chunk (empty for compat JSON)
    error: Any  # the error body, or the stream's error chunk
    reply: Reply


def call(server: ServerProcess, surface: str, text: str, guard: dict[str, Any], headers: dict[str, str],
         stream: bool) -> Answer:
    if surface == "v3":
        body = {"name": unique("guarded"), "input": text, "model": MODEL, "guard": guard, "stream": stream}
        reply = post(f"{server.url}/v3/call", body)
    else:
        body = {"model": MODEL, "messages": [{"role": "user", "content": text}], "stream": stream}
        reply = post(f"{server.url}/v3/compat/chat/completions", body, headers=headers)
    if reply.status != 200:
        return Answer(reply.status, "", [], reply.json(), reply)
    if not stream:
        data = reply.json()
        if surface == "v3":
            return Answer(200, data["data"], data["meta"]["guards"], None, reply)
        return Answer(200, data["choices"][0]["message"]["content"], [], None, reply)
    text_out, guards, error = "", [], None
    for event in sse_events(reply):
        if event == "[DONE]":
            continue
        chunk = json.loads(event)
        if surface == "v3":
            if chunk.get("type") == "content":
                text_out += chunk["delta"]
            elif chunk.get("type") == "error":
                error = chunk
            elif "meta" in chunk:
                guards = chunk["meta"]["guards"]
        elif "error" in chunk:
            error = chunk
        else:
            if chunk["choices"]:
                text_out += chunk["choices"][0]["delta"].get("content") or ""
            guards = chunk.get("guards", guards)
    return Answer(200, text_out, guards, error, reply)


def sent_to_provider(fake: FakeProvider) -> str:
    return json.dumps([request.json for request in fake.requests])


MATRIX = [
    pytest.param(case, action, direction, stream, surface,
                 id=f"{surface}-{case.name}-{action}-{direction}-{'stream' if stream else 'call'}")
    for surface in SURFACES for case in FINDINGS for action in ACTIONS for direction in DIRECTIONS
    for stream in (False, True) if not (surface == "compat" and case.header is None)
]


@pytest.mark.parametrize(("case", "action", "direction", "stream", "surface"), MATRIX)
def test_guard_matrix(server: ServerProcess, fake: FakeProvider, case: Case, action: str, direction: str,
                      stream: bool, surface: str) -> None:
    guard = {direction: [{**case.guard, "action": action}]}
    headers = {f"X-Opper-Guard-{direction.capitalize()}": case.header or "", "X-Opper-Guard-Action": action}
    if direction == "input":
        prompt = f"Please file {case.raw} for me."
        fake.script(FAKE_MODEL, Behaviour(text=f"Filed {case.placeholder} as asked, all done now."))
    else:
        prompt = "What should I file?"
        fake.script(FAKE_MODEL, Behaviour(text=f"You should file {case.raw} today, and nothing else at all."))
    answer = call(server, surface, prompt, guard, headers, stream)
    provider_saw = sent_to_provider(fake)

    if direction == "input":
        if action == "block":
            assert answer.status == 400 and answer.error["type"] == "GuardBlockedError"
            assert answer.error["error"]["details"]["findings"][0]["kind"] == (
                case.name if case.name != "pattern" else "pattern_0")
            assert fake.requests == []  # no provider call at all
            return
        assert answer.status == 200
        if action == "redact":
            assert case.raw not in provider_saw and case.placeholder in provider_saw
            assert answer.text == f"Filed {case.raw} as asked, all done now."  # the echo restored
        else:
            assert case.raw in provider_saw
            assert answer.text == f"Filed {case.placeholder} as asked, all done now."
    else:
        assert case.raw not in provider_saw
        expected = f"You should file {case.raw} today, and nothing else at all."
        if action == "block":
            if not stream:
                assert answer.status == 400 and answer.error["type"] == "GuardBlockedError"
                return
            assert answer.status == 200 and answer.error is not None  # an error chunk ends the stream
            assert case.raw not in answer.reply.body.decode() and case.raw[:8] not in answer.text
            assert "blocked" in json.dumps(answer.error)
            return
        assert answer.status == 200
        assert answer.text == (expected if action == "flag" else expected.replace(case.raw, case.placeholder))
    if surface == "compat" and not stream:
        assert answer.reply.headers["x-opper-guard-flagged"] == "true"
        kind = case.name
        assert f"{direction}/{case.guard['type']}/{kind}=1" in answer.reply.headers["x-opper-guard-findings"]
        return
    if surface == "compat" and direction == "input":
        assert answer.reply.headers["x-opper-guard-flagged"] == "true"
    [report] = answer.guards
    assert report["direction"] == direction and report["action"] == action and report["flagged"] is True
    assert [finding["kind"] for finding in report["findings"]] == [
        case.name if case.name != "pattern" else "pattern_0"]
    assert case.raw not in json.dumps(answer.guards)


def test_structured_output_is_screened_value_by_value(server: ServerProcess, fake: FakeProvider) -> None:
    schema = {"type": "object", "properties": {"contact": {"type": "string"}, "note": {"type": "string"}},
              "required": ["contact", "note"]}
    fake.script(FAKE_MODEL, Behaviour(json={"contact": "jane.doe@example.com", "note": "call [EMAIL_1]"}))
    reply = post(f"{server.url}/v3/call", {
        "name": unique("structured"), "input": "x", "model": MODEL, "output_schema": schema,
        "guard": {"output": [{"type": "pii", "action": "redact", "replacement": "<redacted>"}]}})
    assert reply.status == 200
    assert reply.json()["data"] == {"contact": "<redacted>", "note": "call [EMAIL_1]"}
    [report] = reply.json()["meta"]["guards"]
    assert report["findings"] == [{"kind": "email", "where": "data.contact", "start": 0, "end": 20}]


def test_structured_stream_restores_input_placeholders(server: ServerProcess, fake: FakeProvider) -> None:
    schema = {"type": "object", "properties": {"to": {"type": "string"}}, "required": ["to"]}
    fake.script(FAKE_MODEL, Behaviour(json={"to": "[EMAIL_1]"}))
    reply = post(f"{server.url}/v3/call/stream", {
        "name": unique("structured-stream"), "input": "mail jane.doe@example.com", "model": MODEL,
        "output_schema": schema, "guard": {"input": [{"type": "pii", "action": "redact"}]}})
    assert reply.status == 200
    chunks = [json.loads(e) for e in sse_events(reply) if e != "[DONE]"]
    streamed = "".join(c["delta"] for c in chunks if c.get("type") == "content")
    assert json.loads(streamed) == {"to": "jane.doe@example.com"}
    assert chunks[-1]["data"] == {"to": "jane.doe@example.com"}
    assert "jane.doe" not in sent_to_provider(fake)


def test_tool_arguments_get_the_originals_back(server: ServerProcess, fake: FakeProvider) -> None:
    tool = {"type": "function", "function": {"name": "send_mail", "parameters": {"type": "object"}}}
    for stream in (False, True):
        fake.script(FAKE_MODEL, Behaviour(tool_calls=[("send_mail", {"to": "[EMAIL_1]"})]))
        reply = post(f"{server.url}/v3/compat/chat/completions", {
            "model": MODEL, "stream": stream, "tools": [tool],
            "messages": [{"role": "user", "content": "mail jane.doe@example.com"}]},
            headers={"X-Opper-Guard-Input": "pii", "X-Opper-Guard-Action": "redact"})
        assert reply.status == 200
        if stream:
            arguments = "".join(
                call["function"].get("arguments", "")
                for e in sse_events(reply) if e != "[DONE]"
                for choice in json.loads(e)["choices"] for call in choice["delta"].get("tool_calls", []))
        else:
            arguments = reply.json()["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
        assert json.loads(arguments) == {"to": "jane.doe@example.com"}
    assert "jane.doe" not in sent_to_provider(fake)


def test_tool_results_are_screened_before_the_provider(server: ServerProcess, fake: FakeProvider) -> None:
    messages = [
        {"role": "user", "content": "who?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "card 4111 1111 1111 1111, key AKIAIOSFODNN7EXAMPLE"},
    ]
    reply = post(f"{server.url}/v3/compat/chat/completions", {"model": MODEL, "messages": messages},
                 headers={"X-Opper-Guard-Input": "pii,secrets", "X-Opper-Guard-Action": "redact"})
    assert reply.status == 200
    sent = fake.requests[-1].json["messages"][-1]["content"]
    assert sent == "card [CARD_1], key [SECRET_1]"


def test_an_anthropic_upstream_gets_the_redacted_text_too(server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("claude-haiku-4-5", Behaviour(text="ok [EMAIL_2]"))  # the instructions come first
    reply = post(f"{server.url}/v3/call", {
        "name": unique("anthropic"), "input": "jane.doe@example.com", "model": "anthropic/claude-haiku-4-5",
        "instructions": "Contact the owner, ops@example.org",
        "guard": {"input": [{"type": "pii", "action": "redact"}]}})
    assert reply.status == 200 and reply.json()["data"] == "ok jane.doe@example.com"
    saw = sent_to_provider(fake)
    assert "@example" not in saw and "[EMAIL_1]" in saw and "[EMAIL_2]" in saw


def test_no_raw_finding_reaches_the_provider_under_redact_or_block(server: ServerProcess, fake: FakeProvider) -> None:
    """Every finding, in every part of a conversation the provider receives, under every input
    rule that must keep it away: the fake's whole request log holds none of them."""
    raws = [case.raw for case in FINDINGS] + ["+46 70 123 45 67", "DE89 3704 0044 0532 0130 00", "536-90-4399",
                                              "192.168.10.254", "postgres://app:hunter2@db"]
    text = " and ".join(raws)
    no_pattern = text.replace("ORD-123456", "")  # compat headers have no way to carry a pattern
    rules = [{"type": "pii"}, {"type": "secrets"}, {"type": "custom_patterns", "custom_patterns": [r"ORD-\d{6}"]}]
    for action in ("redact", "block"):
        for stream in (False, True):
            guard = {"input": [{**rule, "action": action} for rule in rules]}
            v3 = post(f"{server.url}/v3/call", {"name": unique("leak"), "input": {"note": text}, "model": MODEL,
                                                "instructions": f"Context: {text}", "guard": guard, "stream": stream})
            compat = post(f"{server.url}/v3/compat/chat/completions", {
                "model": MODEL, "stream": stream, "messages": [
                    {"role": "system", "content": no_pattern},
                    {"role": "user", "content": [{"type": "text", "text": no_pattern}]},
                    {"role": "assistant", "content": None, "tool_calls": [{
                        "id": "c", "type": "function",
                        "function": {"name": "f", "arguments": json.dumps({"q": no_pattern})}}]},
                    {"role": "tool", "tool_call_id": "c", "content": no_pattern}]},
                headers={"X-Opper-Guard-Input": "pii,secrets", "X-Opper-Guard-Action": action})
            assert (v3.status, compat.status) == ((200, 200) if action == "redact" else (400, 400))
    saw = sent_to_provider(fake)
    assert len(fake.requests) == 4
    leaked = [raw for raw in [*raws, "hunter2"] if raw in saw or json.dumps(raw)[1:-1] in saw]
    assert leaked == []


def test_findings_are_guardrail_span_events(any_server: ServerProcess, fake: FakeProvider) -> None:
    reply = post(f"{any_server.url}/v3/compat/chat/completions", {
        "model": MODEL,
        "messages": [{"role": "user", "content": "mail jane.doe@example.com, key AKIAIOSFODNN7EXAMPLE"}]},
        headers={"X-Opper-Guard-Input": "pii,secrets", "X-Opper-Guard-Action": "redact"})
    assert reply.status == 200
    events = get(f"{any_server.url}/v3/spans/{reply.headers['x-opper-span-id']}/events?kind=guardrail").json()["data"]
    assert sorted((e["data"]["type"], e["data"]["kind"], e["data"]["start"], e["data"]["end"]) for e in events) == [
        ("pii", "email", 5, 25), ("secrets", "aws_key", 31, 51)]
    assert all(e["kind"] == "guardrail" and e["data"]["where"] == "messages[0].content" for e in events)
    assert "jane.doe" not in json.dumps(events) and "AKIA" not in json.dumps(events)

    blocked = post(f"{any_server.url}/v3/call", {
        "name": unique("blocked"), "input": "key AKIAIOSFODNN7EXAMPLE", "model": MODEL,
        "guard": {"input": [{"type": "secrets", "action": "block"}]}})
    assert blocked.status == 400
    traces = get(f"{any_server.url}/v3/traces?limit=5").json()["data"]
    assert traces  # the blocked call is recorded, and its finding is an event of its span
    found = []
    for trace in traces:
        found += get(f"{any_server.url}/v3/traces/{trace['id']}/events?kind=guardrail").json()["data"]
    recorded = {(e["data"]["type"], e["data"]["kind"], e["data"]["action"]) for e in found}
    assert ("secrets", "aws_key", "block") in recorded


# ---- hostile

@pytest.mark.parametrize(("guard", "fragment"), [
    ({"input": [{"type": "toxicity"}]}, "must be one of pii, secrets, custom_patterns"),
    ({"input": [{"type": "pii", "action": "shout"}]}, "must be one of flag, block, redact"),
    ({"input": [{"type": "custom_patterns", "custom_patterns": [r"(a)\1"]}]}, "linear time"),
    ({"input": [{"type": "custom_patterns", "custom_patterns": [r"((a{100}){100}){100}"]}]}, "linear time"),
    ({"input": [{"type": "custom_patterns", "custom_patterns": ["a"] * 1000}]}, "at most 32"),
    ({"input": [{"type": "custom_patterns", "custom_patterns": ["a" * 100_000]}]}, "longer than 512"),
    ({"input": [{"type": "custom_patterns", "custom_patterns": [{"x": 1}]}]}, "must be a string"),
    ({"input": [{"type": "pii", "model": "openai/gpt-4o"}]}, "not supported"),
    ({"input": [{"type": "pii"}] * 1000}, "guard"),
    ({"input": "pii"}, "guard"),
    ("pii", "guard"),
])
def test_bad_guards_are_400s_before_any_provider_call(server: ServerProcess, fake: FakeProvider, guard: Any,
                                                       fragment: str) -> None:
    reply = post(f"{server.url}/v3/call", {"name": unique("bad-guard"), "input": "x", "model": MODEL, "guard": guard})
    assert reply.status == 400, reply.body
    assert fragment in reply.json()["error"]["message"]
    assert fake.requests == []


@pytest.mark.parametrize(("headers", "fragment"), [
    ({"X-Opper-Guard-Input": "toxicity"}, "must be one of"),
    ({"X-Opper-Guard-Output": "pii", "X-Opper-Guard-Action": "shout"}, "X-Opper-Guard-Action"),
    ({"X-Opper-Guard-Action": "block"}, "needs X-Opper-Guard-Input"),
    ({"X-Opper-Guard-Input": ",".join(["pii"] * 100)}, "at most 16"),
])
def test_bad_guard_headers_are_400s(server: ServerProcess, fake: FakeProvider, headers: dict[str, str],
                                    fragment: str) -> None:
    for stream in (False, True):
        reply = post(f"{server.url}/v3/compat/chat/completions",
                     {"model": MODEL, "stream": stream, "messages": [{"role": "user", "content": "x"}]},
                     headers=headers)
        assert reply.status == 400 and fragment in reply.json()["error"]["message"]
    assert fake.requests == []


def test_a_catastrophic_pattern_over_a_big_input_answers_quickly(server: ServerProcess, fake: FakeProvider) -> None:
    """`(a+)+$` would take exponential time in a backtracking engine; here it takes linear time."""
    reply = post(f"{server.url}/v3/call", {
        "name": unique("redos"), "input": "a" * 200_000 + "!", "model": MODEL, "timeout": 10,
        "guard": {"input": [{"type": "custom_patterns", "action": "flag",
                             "custom_patterns": [r"(a+)+$", r"(a|aa)+$", r"(.*a){20}"]}]}})
    assert reply.status == 200
    assert reply.json()["meta"]["guards"][0]["flagged"] is True  # `(.*a){20}` matches


def test_calls_without_guards_are_unchanged(server: ServerProcess, fake: FakeProvider) -> None:
    fake.script(FAKE_MODEL, Behaviour(text="mail jane.doe@example.com"))
    reply = post(f"{server.url}/v3/call", {"name": unique("plain"), "input": "jane.doe@example.com", "model": MODEL})
    assert reply.json()["data"] == "mail jane.doe@example.com" and reply.json()["meta"]["guards"] == []
    assert "jane.doe@example.com" in sent_to_provider(fake)
    compat = post(f"{server.url}/v3/compat/chat/completions",
                  {"model": MODEL, "messages": [{"role": "user", "content": "x"}]})
    assert not any(name.startswith("x-opper-guard") for name in compat.headers)


def test_a_held_back_misfit_is_asked_again_and_never_sent(server: ServerProcess, fake: FakeProvider) -> None:
    """With output guards a stream holds back its last stretch: an answer that misfits the schema
    while all of it is still held back is asked again, as a call would be, and none of it is sent."""
    schema = {"type": "object", "properties": {"to": {"type": "string"}}, "required": ["to"]}
    fake.script(FAKE_MODEL, Behaviour(text="not json, jane.doe@example.com"), Behaviour(json={"to": "ops"}))
    reply = post(f"{server.url}/v3/call/stream", {
        "name": unique("reask"), "input": "x", "model": MODEL, "output_schema": schema,
        "guard": {"output": [{"type": "pii", "action": "flag"}]}})
    chunks = [json.loads(e) for e in sse_events(reply) if e != "[DONE]"]
    assert "".join(c["delta"] for c in chunks if c.get("type") == "content") == '{"to":"ops"}'
    assert chunks[-1]["data"] == {"to": "ops"} and len(fake.requests) == 2


def test_function_paths_take_guards_too(server: ServerProcess, fake: FakeProvider) -> None:
    name = unique("fn-guarded")
    guard = {"input": [{"type": "secrets", "action": "redact"}], "output": [{"type": "pii", "action": "redact"}]}
    fake.script(FAKE_MODEL, Behaviour(text="Stored [SECRET_1] for jane.doe@example.com, as you asked me to."),
                Behaviour(text="Stored [SECRET_1] again."))
    for path in ("call", "stream"):
        reply = post(f"{server.url}/v3/functions/{name}/{path}",
                     {"input": "keep AKIAIOSFODNN7EXAMPLE", "model": MODEL, "guard": guard})
        assert reply.status == 200
        text = reply.json()["data"] if path == "call" else "".join(
            chunk["delta"] for chunk in map(json.loads, sse_events(reply)[:-1]) if chunk.get("type") == "content")
        assert "AKIAIOSFODNN7EXAMPLE" in text and "jane.doe" not in text
    assert "AKIA" not in sent_to_provider(fake)
