"""Hostile values in otherwise valid requests, against a real `taskgate serve`: each gets a clear 4xx
with the JSON error body, never a 500, a silent loss or a request the upstream should not see.

Covers issue 13's findings 4 (numeric path parts and offsets), 5 (a span answered with an id is a
stored span), 6 (v2 name length) and 7 (extra_headers, cache ttl, span times), and the bounds on
names, ids and headers.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess
from tests.http_client import Reply, request

BEYOND_64_BITS = str(2**64)
ARABIC_ONE = "\u0661"  # a digit to `int()` and `str.isdigit()`, not to SQL
TOO_LONG_ID = "s" * 256


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def assert_error(reply: Reply, status: int, *words: str) -> dict[str, Any]:
    """A JSON error body of `status` whose message has each of `words` (case ignored)."""
    assert reply.status == status, reply.body
    assert reply.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = reply.json()
    assert body["error"]["message"] == body["detail"]
    for word in words:
        assert word.lower() in body["detail"].lower(), body["detail"]
    return body


def v2_call(server: ServerProcess, **fields: Any) -> Reply:
    return request("POST", f"{server.url}/v2/call", {"name": unique("bounds"), "input": "hi", **fields})


def with_function(server: ServerProcess) -> str:
    """The URL of a new stored function (adding an example creates it)."""
    url = f"{server.url}/v3/functions/{quote(unique('bounded'), safe='')}"
    assert request("POST", f"{url}/examples", {"input": "x", "output": "y"}).status == 200
    return url


# ---- extra_headers (finding 7)

@pytest.mark.parametrize("headers", [
    {"X-Trace": "abc\r\nX-Injected: 1"},
    {"X-Trace": "abc\nX-Injected: 1"},
    {"X-Trace": "a\x00b"},
    {"X-Trace\r\nX-Injected": "1"},
    {"bad name": "x"},
    {"Authorization": "Bearer someone-elses-key"},
    {"authorization": "Bearer someone-elses-key"},
    {"x-api-key": "someone-elses-key"},
    {"api-key": "someone-elses-key"},
    {"Host": "internal.example"},
    {"Content-Length": "0"},
    {"Transfer-Encoding": "chunked"},
    {"Connection": "close"},
    {"Keep-Alive": "timeout=5"},
    {"Upgrade": "h2c"},
    {"TE": "trailers"},
    {"Trailer": "X-Late"},
    {"Proxy-Authorization": "Basic eA=="},
], ids=repr)
def test_extra_headers_that_could_break_or_hijack_the_upstream_request_are_refused(
        server: ServerProcess, fake: FakeProvider, headers: dict[str, str]) -> None:
    model = {"name": "openai/gpt-4o-mini", "extra_headers": headers}
    assert_error(v2_call(server, model=model), 400, "extra_headers")
    compat = request("POST", f"{server.url}/v3/compat/chat/completions",
                     {"model": model, "messages": [{"role": "user", "content": "hi"}]})
    assert_error(compat, 400, "extra_headers")
    assert fake.requests == []  # nothing reached the upstream


def test_extra_headers_are_bounded_in_count_and_size(server: ServerProcess, fake: FakeProvider) -> None:
    for headers in ({f"X-H{i}": "v" for i in range(33)}, {"X-Big": "v" * 8193}, {"X-" + "n" * 300: "v"}):
        assert_error(v2_call(server, model={"name": "openai/gpt-4o-mini", "extra_headers": headers}), 400)
    assert fake.requests == []


def test_allowed_extra_headers_reach_the_upstream_beside_the_servers_own_credentials(
        server: ServerProcess, fake: FakeProvider) -> None:
    headers = {"X-Trace": "abc\tdef", "OpenAI-Organization": "org-1"}
    assert v2_call(server, model={"name": "openai/gpt-4o-mini", "extra_headers": headers}).status == 200
    sent = fake.requests[-1].headers
    assert sent["x-trace"] == "abc\tdef" and sent["openai-organization"] == "org-1"
    assert sent["authorization"] == "Bearer sk-fake"


# ---- invocation.cache.ttl (finding 7)

def test_a_cache_ttl_beyond_a_year_is_refused(server: ServerProcess, fake: FakeProvider) -> None:
    assert_error(v2_call(server, configuration={"invocation.cache.ttl": 10**15}), 422, "invocation.cache.ttl")
    assert fake.requests == []
    year = v2_call(server, configuration={"invocation.cache.ttl": 365 * 24 * 3600})
    assert year.status == 200 and not year.json()["cached"]


# ---- span times (finding 7) and spans the store cannot hold (finding 5)

@pytest.mark.parametrize("prefix", ["/v3", "/v2"])
def test_a_span_that_ends_before_it_starts_is_refused(server: ServerProcess, prefix: str) -> None:
    spans = f"{server.url}{prefix}/spans"
    inverted = {"name": "s", "start_time": "2030-01-01T00:00:10Z", "end_time": "2030-01-01T00:00:09Z"}
    assert_error(request("POST", spans, inverted), 400, "end_time")
    offsets = {"name": "s", "start_time": "2030-01-01T02:00:00+02:00", "end_time": "2030-01-01T00:30:00Z"}
    assert request("POST", spans, offsets).status == 200  # 00:00 UTC to 00:30 UTC: in order

    created = request("POST", spans, {"name": "s", "start_time": "2030-01-01T00:00:10Z"})
    assert created.status == 200
    one = f"{spans}/{created.json().get('data', created.json())['id']}"
    assert_error(request("PATCH", one, {"end_time": "2030-01-01T00:00:09Z"}), 400, "end_time")  # vs the stored start
    assert request("PATCH", one, {"end_time": "2030-01-01T00:00:11Z"}).status == 200
    assert_error(request("PATCH", one, {"start_time": "2030-01-01T00:00:12Z"}), 400, "start_time")  # vs the stored end
    assert request("GET", one).json()["end_time"].startswith("2030-01-01T00:00:11")


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_span_the_store_cannot_hold_is_refused_not_answered_and_lost(server: ServerProcess, moment: str) -> None:
    span_id = unique("unstorable")
    reply = request("POST", f"{server.url}/v3/spans", {"id": span_id, "name": "s", "start_time": moment})
    assert_error(reply, 400, "start_time")
    assert request("GET", f"{server.url}/v3/spans/{span_id}").status == 404


# ---- numbers that reach SQL, and numeric path parts (finding 4)

@pytest.mark.parametrize("revision", ["²", ARABIC_ONE, "+1", "1_0", "0", BEYOND_64_BITS, "9" * 5000])
def test_revision_ids_are_ascii_digits_within_the_column(server: ServerProcess, revision: str) -> None:
    url = with_function(server)
    assert_error(request("GET", f"{url}/revisions/{quote(revision)}"), 400, "revision id")
    assert_error(request("POST", f"{url}/revisions/{quote(revision)}/revert"), 400, "revision id")
    assert request("GET", f"{url}/revisions/1").status == 200


@pytest.mark.parametrize("path", ["/v3/functions", "/v3/traces", "/v3/models", "{function}/examples"])
@pytest.mark.parametrize("offset", [BEYOND_64_BITS, str(2**63), str(2**31), "²", ARABIC_ONE, "-1"])
def test_offsets_are_ascii_digits_within_the_column(server: ServerProcess, path: str, offset: str) -> None:
    url = server.url + path if path.startswith("/") else path.format(function=with_function(server))
    assert_error(request("GET", f"{url}?offset={quote(offset)}"), 400, "offset")
    assert request("GET", f"{url}?offset={2**31 - 1}").status == 200


# ---- names, ids and headers are bounded (finding 6 and the "Bounds everywhere")

def test_a_v2_function_name_is_bounded_like_v3(server: ServerProcess, fake: FakeProvider) -> None:
    assert_error(request("POST", f"{server.url}/v2/call", {"name": "n" * 1024 * 1024, "input": "hi"}), 422, "name")
    assert_error(request("POST", f"{server.url}/v2/call", {"name": "n" * 257, "input": "hi"}), 422, "name")
    assert fake.requests == []
    assert request("POST", f"{server.url}/v2/call", {"name": unique("n" * 240), "input": "hi"}).status == 200


def test_function_names_in_v3_paths_are_bounded(server: ServerProcess) -> None:
    name = "n" * 257
    for method, suffix in [("GET", ""), ("DELETE", ""), ("GET", "/revisions"), ("GET", "/examples"),
                           ("POST", "/call")]:
        body = {"input": "x"} if method == "POST" else None
        assert_error(request(method, f"{server.url}/v3/functions/{name}{suffix}", body), 400, "name")


def test_compat_name_and_parent_headers_are_bounded(server: ServerProcess, fake: FakeProvider) -> None:
    url = f"{server.url}/v3/compat/chat/completions"
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    assert_error(request("POST", url, body, headers={"X-Opper-Name": "n" * 257}), 400, "X-Opper-Name")
    assert_error(request("POST", url, body, headers={"X-Opper-Parent-Span-Id": TOO_LONG_ID}), 400,
                 "X-Opper-Parent-Span-Id")
    assert_error(request("POST", url, {**body, "parent_span_id": TOO_LONG_ID}), 400, "parent_span_id")
    assert fake.requests == []


def test_parent_span_ids_are_bounded_in_every_dialect(server: ServerProcess, fake: FakeProvider) -> None:
    assert_error(v2_call(server, parent_span_id=TOO_LONG_ID), 422, "parent_span_id")
    assert_error(v2_call(server, parent_span_id="a\nb"), 422, "parent_span_id")
    assert_error(request("POST", f"{server.url}/v3/call", {"name": unique("p"), "input": "x",
                                                             "parent_span_id": TOO_LONG_ID}), 400, "parent_span_id")
    assert_error(request("POST", f"{server.url}/v3/spans", {"name": "s", "parent_id": TOO_LONG_ID}), 400, "parent_id")
    assert fake.requests == []


@pytest.mark.parametrize("path", ["/v3/spans/{id}", "/v2/spans/{id}", "/v3/traces/{id}"])
def test_span_and_trace_ids_in_paths_are_bounded(server: ServerProcess, path: str) -> None:
    url = server.url + path.format(id=TOO_LONG_ID)
    assert_error(request("GET", url), 400, "id")
    assert_error(request("DELETE", url), 400, "id")
    if "spans" in path:
        assert_error(request("PATCH", url, {"name": "x"}), 400, "id")


def test_model_names_are_bounded(server: ServerProcess, fake: FakeProvider) -> None:
    long_name = "openai/" + "m" * 250
    assert_error(v2_call(server, model=long_name), 400, "model")
    assert_error(v2_call(server, model={"name": long_name}), 400, "model")
    assert fake.requests == []


def test_example_tags_fit_the_column(server: ServerProcess) -> None:
    url = with_function(server)
    assert_error(request("POST", f"{url}/examples", {"input": "x", "output": "y", "tag": "t" * 101}), 400, "tag")
    assert request("POST", f"{url}/examples", {"input": "x", "output": "y", "tag": "t" * 100}).status == 200
