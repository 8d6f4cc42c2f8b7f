"""Odd unicode in names, ids, tags, data and paths, and caller `extra_headers` that try to take over
the upstream request.

The lines drawn here:
- a lone surrogate is not text: refused wherever it appears;
- an identifier (a function name, a span or trace id) with a control character (NUL, CR/LF, ESC, DEL,
  C1) is refused: it would be stored under, logged as or looked up by something else;
- any other unicode in an identifier, and any unicode at all in free-form data, is refused or stored
  exactly as sent (read back, it compares equal);
- a path that percent-decodes to something that is not UTF-8 text is refused, never stored mangled;
- `extra_headers` may not set credentials, Host, framing or hop-by-hop headers, and a CR/LF/NUL in a
  header name or value is refused: in every case with nothing sent upstream.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.hostile import (
    BODY_ENDPOINTS,
    CHAT_EP,
    FUNCTION_PATH,
    MARK,
    V2_CALL_EP,
    V3_CALL_EP,
    V3_SPAN_EP,
    Endpoint,
    Probe,
    with_extra,
    with_raw,
)
from tests.http_client import Reply

pytestmark = pytest.mark.timeout(60)

SERVER_ENV: dict[str, str] = {}
MODEL = "openai/gpt-4o-mini"

LONE_SURROGATES = {
    "high": b'"\\ud800"',
    "low": b'"\\udfff"',
    "high-inside": b'"a\\ud800b"',
    "reversed-pair": b'"\\udc00\\ud800"',
}
CONTROLS = {
    "nul": "a\u0000b",
    "newline": "a\nb",
    "carriage-return": "a\rb",
    "crlf-log-line": "a\r\nlevel=ERROR forged=1",
    "escape": "a\u001b[31mred",
    "delete": "a\u007fb",
    "c1-next-line": "a\u0085b",
}
ODD_TEXT = {
    "rtl-override": "evil\u202egnp.exe",
    "zero-width": "a\u200bb\u200d",
    "emoji": "\U0001f98a-\U0001f3f3\ufe0f\u200d\U0001f308",
    "combining": "e\u0301\u0301\u0301",
    "bom-inside": "\ufeffname",
    "line-separator": "a\u2028b",
    "noncharacter": "a\uffffb",
    "private-use": "a\ue000b",
    "astral": "\U0002070e\U00020731",
    "fullwidth": "\uff4e\uff41\uff4d\uff45",
    "slash": "a/b",
    "dots": "..",
    "percent": "100%25",
}


# ----- lone surrogates


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS, ids=str)
@pytest.mark.parametrize("surrogate", sorted(LONE_SURROGATES))
def test_a_lone_surrogate_anywhere_is_refused(probe: Probe, endpoint: Endpoint, surrogate: str) -> None:
    probe.refused(probe.send(endpoint.method, endpoint.path, raw=with_extra(endpoint, LONE_SURROGATES[surrogate])))


SURROGATE_FIELDS = {  # where -> (endpoint, a body with MARK where the surrogate goes)
    "v2-call:name": (V2_CALL_EP, {**V2_CALL_EP.body, "name": MARK}),
    "v2-call:input": (V2_CALL_EP, {**V2_CALL_EP.body, "input": {"text": MARK}}),
    "v3-call:name": (V3_CALL_EP, {**V3_CALL_EP.body, "name": MARK}),
    "v3-span:name": (V3_SPAN_EP, {"name": MARK}),
    "v3-span:id": (V3_SPAN_EP, {"name": "s", "id": MARK}),
    "v3-span:tags": (V3_SPAN_EP, {"name": "s", "tags": {"t": MARK}}),
    "compat-chat:content": (CHAT_EP, {**CHAT_EP.body, "messages": [{"role": "user", "content": MARK}]}),
}


@pytest.mark.parametrize("where", sorted(SURROGATE_FIELDS))
def test_a_lone_surrogate_in_a_field_is_refused(probe: Probe, where: str) -> None:
    endpoint, template = SURROGATE_FIELDS[where]
    probe.refused(probe.send(endpoint.method, endpoint.path, raw=with_raw(template, LONE_SURROGATES["high"])))


# ----- identifiers: where a name or id is given, and how it is read back


def _function_name(probe: Probe, name: str) -> str:
    return str(probe.readable(f"/v3/functions/{quote(name, safe='')}")["name"])


def _span_id(probe: Probe, span_id: str) -> str:
    return str(probe.readable(f"/v3/spans/{quote(span_id, safe='')}")["id"])


def _give_v2_name(probe: Probe, name: str) -> Reply:
    return probe.send("POST", "/v2/call", {"name": name, "input": "hello"})


def _give_v3_name(probe: Probe, name: str) -> Reply:
    return probe.send("POST", "/v3/call", {"name": name, "input": "hello"})


def _give_path_name(probe: Probe, name: str) -> Reply:
    return probe.send("POST", f"/v3/functions/{quote(name, safe='')}/examples", {"input": "q", "output": "a"})


def _give_span_id(probe: Probe, span_id: str) -> Reply:
    return probe.send("POST", "/v3/spans", {"name": "s", "id": span_id})


def _give_trace_id(probe: Probe, trace_id: str) -> Reply:
    return probe.send("POST", "/v3/spans", {"name": "s", "trace_id": trace_id})


def _trace_id(probe: Probe, trace_id: str) -> str:
    return str(probe.readable(f"/v3/traces/{quote(trace_id, safe='')}")["id"])


IDENTIFIERS = {  # name -> (send it, read it back by the value sent)
    "v2-function-name": (_give_v2_name, _function_name),
    "v3-function-name": (_give_v3_name, _function_name),
    "v3-function-path": (_give_path_name, _function_name),
    "span-id": (_give_span_id, _span_id),
    "trace-id": (_give_trace_id, _trace_id),
}


@pytest.mark.parametrize("where", sorted(IDENTIFIERS))
@pytest.mark.parametrize("control", sorted(CONTROLS))
def test_an_identifier_with_a_control_character_is_refused(probe: Probe, where: str, control: str) -> None:
    give, _ = IDENTIFIERS[where]
    probe.refused(give(probe, CONTROLS[control]))


@pytest.mark.parametrize("where", sorted(IDENTIFIERS))
@pytest.mark.parametrize("odd", sorted(ODD_TEXT))
def test_an_identifier_with_odd_unicode_is_refused_or_kept_exactly(probe: Probe, where: str, odd: str) -> None:
    give, read_back = IDENTIFIERS[where]
    value = f"hostile-{ODD_TEXT[odd]}"
    reply = give(probe, value)
    if reply.status >= 300:
        probe.refused(reply)
        return
    assert reply.status == 200, f"answered {reply.status}: {reply.body[:300]!r}"
    assert read_back(probe, value) == value


# ----- free-form data: anything that is text is kept exactly


ALL_TEXT = {**CONTROLS, **ODD_TEXT}


@pytest.mark.parametrize("text", sorted(ALL_TEXT))
def test_text_in_span_data_is_refused_or_kept_exactly(probe: Probe, text: str) -> None:
    value = ALL_TEXT[text]
    sent = {"name": f"span {value}", "input": {value: value}, "output": [value], "error": value,
            "tags": {value: value}, "metadata": {value: value}}
    reply = probe.send("POST", "/v3/spans", sent)
    if reply.status >= 300:
        probe.refused(reply)
        return
    stored = probe.readable(f"/v3/spans/{reply.json()['data']['id']}")
    assert {key: stored[key] for key in sent} == sent


@pytest.mark.parametrize("text", sorted(ALL_TEXT))
def test_text_in_an_example_is_refused_or_kept_exactly(probe: Probe, text: str) -> None:
    value = ALL_TEXT[text]
    reply = probe.send("POST", f"{FUNCTION_PATH}/examples", {"input": value, "output": {value: value}, "tag": value})
    if reply.status >= 300:
        probe.refused(reply)
        return
    listed = probe.readable(f"{FUNCTION_PATH}/examples?limit=200&tag={quote(value, safe='')}")["examples"]
    assert [(item["input"], item["output"], item["tag"]) for item in listed] == [(value, {value: value}, value)]


@pytest.mark.parametrize("text", sorted(ALL_TEXT))
def test_text_in_a_function_prompt_is_refused_or_kept_exactly(probe: Probe, text: str) -> None:
    source = f"Answer {ALL_TEXT[text]} briefly."
    reply = probe.send("PUT", FUNCTION_PATH, {"source": source})
    if reply.status >= 300:
        probe.refused(reply)
        return
    assert probe.readable(FUNCTION_PATH)["source"] == source


# ----- paths that do not decode to text

BAD_ENCODINGS = {
    "invalid-utf8": "%ff%fe",
    "overlong-slash": "%c0%af",
    "encoded-surrogate": "%ed%a0%80",
    "truncated-sequence": "%e2%82",
    "nul": "a%00b",
    "crlf": "a%0d%0ab",
}
PATH_TEMPLATES = {
    "function-call": ("POST", "/v3/functions/{}/call", {"input": "hello"}),
    "function-examples": ("POST", "/v3/functions/{}/examples", {"input": "q", "output": "a"}),
    "function-get": ("GET", "/v3/functions/{}", None),
    "span-get": ("GET", "/v3/spans/{}", None),
    "span-patch": ("PATCH", "/v3/spans/{}", {"name": "x"}),
    "trace-get": ("GET", "/v3/traces/{}", None),
}


@pytest.mark.parametrize("template", sorted(PATH_TEMPLATES))
@pytest.mark.parametrize("encoding", sorted(BAD_ENCODINGS))
def test_a_path_that_is_not_text_is_refused(probe: Probe, template: str, encoding: str) -> None:
    """Refused, or not found for a lookup: never stored under a mangled name."""
    method, path, body = PATH_TEMPLATES[template]
    probe.refused(probe.send(method, path.format(BAD_ENCODINGS[encoding]), body))


# ----- extra_headers in the model field

FORBIDDEN_HEADERS = {
    "authorization": ("Authorization", "Bearer stolen"),
    "authorization-lower": ("authorization", "Bearer stolen"),
    "authorization-upper": ("AUTHORIZATION", "Bearer stolen"),
    "proxy-authorization": ("Proxy-Authorization", "Basic c3RvbGVu"),
    "host": ("Host", "evil.example"),
    "content-length": ("Content-Length", "0"),
    "transfer-encoding": ("Transfer-Encoding", "chunked"),
    "connection": ("Connection", "close"),
    "keep-alive": ("Keep-Alive", "timeout=1"),
    "te": ("TE", "trailers"),
    "trailer": ("Trailer", "X-Forged"),
    "upgrade": ("Upgrade", "h2c"),
    "crlf-in-value": ("X-Note", "a\r\nInjected: 1"),
    "lf-in-value": ("X-Note", "a\nInjected: 1"),
    "cr-in-value": ("X-Note", "a\rb"),
    "nul-in-value": ("X-Note", "a\u0000b"),
    "crlf-in-name": ("X-Note\r\nInjected", "1"),
    "space-in-name": ("X Note", "1"),
    "colon-in-name": ("X-Note:", "1"),
    "empty-name": ("", "1"),
    "non-ascii-name": ("X-N\u00f6te", "1"),
    "megabyte-value": ("X-Note", "v" * 1024 * 1024),
}
MODEL_CHAINS = {
    "anthropic": lambda headers: {"name": "anthropic/claude-haiku-4-5", "extra_headers": headers},
    "second-of-chain": lambda headers: [MODEL, {"name": MODEL, "extra_headers": headers}],
}
CALLS = (V2_CALL_EP, V3_CALL_EP, CHAT_EP)


def _header_cases() -> list[Any]:
    """Every header through every dialect; the other providers and chain positions through one."""
    cases = [pytest.param(endpoint, {"name": MODEL, "extra_headers": {name: value}}, id=f"{endpoint}:{header}")
             for endpoint in CALLS for header, (name, value) in sorted(FORBIDDEN_HEADERS.items())]
    cases += [pytest.param(V2_CALL_EP, make({name: value}), id=f"{chain}:{header}")
              for chain, make in MODEL_CHAINS.items() for header, (name, value) in sorted(FORBIDDEN_HEADERS.items())]
    return cases


@pytest.mark.parametrize(("endpoint", "model"), _header_cases())
def test_extra_headers_cannot_take_over_the_upstream_request(probe: Probe, endpoint: Endpoint, model: Any) -> None:
    probe.refused(probe.send(endpoint.method, endpoint.path, {**endpoint.body, "model": model}))


@pytest.mark.parametrize("endpoint", CALLS, ids=str)
def test_anthropic_key_header_cannot_be_replaced(probe: Probe, endpoint: Endpoint) -> None:
    """`x-api-key` is Anthropic's `Authorization`."""
    body = {**endpoint.body, "model": {"name": "anthropic/claude-haiku-4-5", "extra_headers": {"X-Api-Key": "stolen"}}}
    probe.refused(probe.send(endpoint.method, endpoint.path, body))


@pytest.mark.parametrize("endpoint", CALLS, ids=str)
def test_a_harmless_extra_header_reaches_the_upstream(probe: Probe, endpoint: Endpoint) -> None:
    """The control: refusing the headers above must not refuse extra headers as such."""
    body = {**endpoint.body, "model": {"name": MODEL, "extra_headers": {"X-Trace-Tag": "hostile-ok"}}}
    probe.stored(endpoint, probe.send(endpoint.method, endpoint.path, body))
    assert [request.headers.get("x-trace-tag") for request in probe.fake.requests] == ["hostile-ok"]
