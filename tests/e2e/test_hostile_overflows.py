"""Overflows: integers past 64 bits and below zero, odd digits in numeric path parts, long ids and
names, and megabyte header values. Each is refused by the rule of `tests/hostile.py`, or, for values a
server may keep (a big integer inside a span's free-form input), stored exactly as sent.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from taskgate.server.request_io import MAX_SQL_INT
from tests.hostile import (
    CHAT_EP,
    EMBEDDINGS_EP,
    FUNCTION_PATH,
    MEBIBYTE,
    SPAN,
    V2_CALL_EP,
    V2_SPAN_EP,
    V2_STREAM_EP,
    V3_CALL_EP,
    V3_EXAMPLE_EP,
    V3_FN_CALL_EP,
    V3_SPAN_EP,
    Endpoint,
    Probe,
    dumps,
)

pytestmark = pytest.mark.timeout(60)

SERVER_ENV: dict[str, str] = {}
INT64_MAX = 2**63 - 1
HUGE_INTEGERS = [2**63, 2**64, 10**30, -(2**63) - 1, -(10**30)]
NAME_MB = "n" * MEBIBYTE
LONG_ID = "i" * 300


def _label(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} chars)"


def _params(endpoint: Endpoint, field: str, values: list[Any]) -> list[Any]:
    return [pytest.param(endpoint, {**endpoint.body, field: value}, id=f"{endpoint}:{field}={_label(value)}")
            for value in values]


def _configuration(endpoint: Endpoint, key: str, values: list[Any]) -> list[Any]:
    return [pytest.param(endpoint, {**endpoint.body, "configuration": {key: value}},
                         id=f"{endpoint}:{key}={_label(value)}") for value in values]


BODY_CASES = [
    *[case for endpoint in (V2_CALL_EP, V2_STREAM_EP) for case in (
        _configuration(endpoint, "invocation.cache.ttl", [10**15, INT64_MAX, *HUGE_INTEGERS])
        + _configuration(endpoint, "invocation.structured_generation.max_attempts", [11, 1_000_000, *HUGE_INTEGERS])
    )],
    *_params(CHAT_EP, "max_tokens", [-1, *HUGE_INTEGERS]),
    *_params(CHAT_EP, "max_completion_tokens", [-1, *HUGE_INTEGERS]),
    *_params(CHAT_EP, "seed", HUGE_INTEGERS),
    *_params(CHAT_EP, "top_logprobs", [-1, *HUGE_INTEGERS]),
    *_params(CHAT_EP, "n", HUGE_INTEGERS),
    *_params(EMBEDDINGS_EP, "dimensions", [-1, *HUGE_INTEGERS]),
    *_params(V3_SPAN_EP, "start_time", ["99999-01-01T00:00:00Z", "2024-01-01T00:00:00+25:00"]),
    *_params(V2_CALL_EP, "name", [NAME_MB]),
    *_params(V2_STREAM_EP, "name", [NAME_MB]),
    *_params(V3_CALL_EP, "name", [NAME_MB, "n" * 257]),
    *_params(V2_SPAN_EP, "id", [LONG_ID]),
    *_params(V3_SPAN_EP, "id", [LONG_ID]),
    *_params(V3_SPAN_EP, "trace_id", [LONG_ID]),
    *_params(V3_SPAN_EP, "name", [NAME_MB]),
    *_params(V3_EXAMPLE_EP, "tag", ["t" * MEBIBYTE]),
]


@pytest.mark.parametrize(("endpoint", "body"), BODY_CASES)
def test_an_overflowing_value_is_refused(probe: Probe, endpoint: Endpoint, body: dict[str, Any]) -> None:
    probe.refused(probe.send(endpoint.method, endpoint.path, body))


PARENT_CASES = [
    *_params(V2_CALL_EP, "parent_span_id", [LONG_ID]),
    *_params(V3_CALL_EP, "parent_span_id", [LONG_ID]),
    *_params(CHAT_EP, "parent_span_id", [LONG_ID]),
    *_params(V3_SPAN_EP, "parent_id", [LONG_ID]),
]


@pytest.mark.parametrize(("endpoint", "body"), PARENT_CASES)
def test_a_long_parent_id_is_refused(probe: Probe, endpoint: Endpoint, body: dict[str, Any]) -> None:
    """No span can have this id, so 404 is as right as 400."""
    probe.refused(probe.send(endpoint.method, endpoint.path, body))


# Times whose UTC instant falls outside the calendar (year 0, year 10000).
EDGE_TIMES = [
    pytest.param(endpoint, {**endpoint.body, field: value}, id=f"{endpoint}:{field}={value}")
    for endpoint in (V2_SPAN_EP, V3_SPAN_EP)
    for field in ("start_time", "end_time")
    for value in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00")
]


@pytest.mark.parametrize(("endpoint", "body"), EDGE_TIMES)
def test_a_time_at_the_edge_of_the_calendar_is_refused_or_stored(probe: Probe, endpoint: Endpoint,
                                                                 body: dict[str, Any]) -> None:
    probe.stored_or_refused(endpoint, probe.send(endpoint.method, endpoint.path, body))


# Values a server may keep, but only exactly: a 64-bit-and-more integer must not come back as a float.
KEPT_EXACTLY = [
    pytest.param(V3_SPAN_EP, "input", {"n": value}, id=f"v3-span:input={value}") for value in HUGE_INTEGERS
] + [
    pytest.param(V3_SPAN_EP, "metadata", {"n": 2**64}, id="v3-span:metadata"),
    pytest.param(V3_SPAN_EP, "tags", {"n": 2**64}, id="v3-span:tags"),
    pytest.param(V2_SPAN_EP, "input", {"n": 2**64}, id="v2-span:input"),
    pytest.param(V2_SPAN_EP, "meta", {"n": 2**64}, id="v2-span:meta"),
]


@pytest.mark.parametrize(("endpoint", "field", "value"), KEPT_EXACTLY)
def test_a_huge_integer_in_free_form_data_is_refused_or_kept_exactly(probe: Probe, endpoint: Endpoint, field: str,
                                                                   value: dict[str, int]) -> None:
    reply = probe.send(endpoint.method, endpoint.path, {**endpoint.body, field: value})
    probe.stored_or_refused(endpoint, reply)
    if reply.status == 200:
        created = reply.json()
        span_id = created["data"]["id"] if "data" in created else created["id"]
        stored = probe.readable(f"/v3/spans/{span_id}")
        assert dumps(stored[field]) == dumps(value), f"sent {value}, stored {stored[field]}"  # 2**64 == 2.0**64


QUERY_VALUES = [str(value) for value in HUGE_INTEGERS] + ["-1", "9" * 400, "²", "٣", "1_0", "+5", " 5"]
QUERY_PATHS = ("/v3/functions", f"{FUNCTION_PATH}/examples", "/v3/traces")


@pytest.mark.parametrize("path", QUERY_PATHS)
@pytest.mark.parametrize("name", ["limit", "offset"])
@pytest.mark.parametrize("value", QUERY_VALUES, ids=lambda value: value if len(value) < 30 else f"{len(value)}-nines")
def test_an_overflowing_query_integer_is_refused(probe: Probe, path: str, name: str, value: str) -> None:
    """Only ASCII digits in range: `int()` would take `٣`, `1_0` and ` 5` as numbers."""
    probe.refused(probe.send("GET", f"{path}?{name}={quote(value)}"))


REVISIONS = [str(value) for value in (MAX_SQL_INT + 1, INT64_MAX, *HUGE_INTEGERS)] + [
    "0", "-1", "9" * 400, "²", "٣", "1_0", "+1", "1e3", "0x1", "%201"]


@pytest.mark.parametrize("revision", REVISIONS, ids=lambda value: value if len(value) < 30 else "400-nines")
@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("POST", "/revert")])
def test_a_revision_id_that_is_not_a_small_positive_integer_is_refused(probe: Probe, method: str, suffix: str,
                                                                       revision: str) -> None:
    path = f"{FUNCTION_PATH}/revisions/{quote(revision, safe='%')}{suffix}"
    probe.refused(probe.send(method, path), statuses={400, 422})


@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("POST", "/revert")])
def test_the_largest_revision_id_is_only_not_found(probe: Probe, method: str, suffix: str) -> None:
    """The control: in range, a missing revision is a 404. The range is the one the document
    publishes for `revision_id`, 1 to MAX_SQL_INT (2^31 - 1, the Postgres INTEGER a revision number
    is stored in), not the 64-bit range: 2^63 - 1 is refused with the others above."""
    probe.refused(probe.send(method, f"{FUNCTION_PATH}/revisions/{MAX_SQL_INT}{suffix}"), statuses={404})


LONG_NAME = "f" * 300
LONG_PATHS = [
    ("GET", f"/v3/spans/{LONG_ID}", None),
    ("PATCH", f"/v3/spans/{LONG_ID}", {"name": "x"}),
    ("DELETE", f"/v3/spans/{LONG_ID}", None),
    ("GET", f"/v2/spans/{LONG_ID}", None),
    ("GET", f"/v3/traces/{LONG_ID}", None),
    ("DELETE", f"/v3/traces/{LONG_ID}", None),
    ("GET", f"/v3/traces/{LONG_ID}/events", None),
    ("POST", f"/v3/spans/{LONG_ID}/events", {"kind": "feedback"}),
    ("GET", f"/v2/traces/{LONG_ID}", None),
    ("POST", f"/v2/spans/{LONG_ID}/feedback", {"score": 1}),
    ("POST", f"/v2/spans/{LONG_ID}/save_examples", None),
    ("GET", f"/v2/spans/{LONG_ID}/metrics", None),
    ("GET", f"/v2/spans/x/metrics/{LONG_ID}", None),
    ("DELETE", f"{FUNCTION_PATH}/examples/{LONG_ID}", None),
    ("GET", f"/v3/functions/{LONG_NAME}", None),
    ("PUT", f"/v3/functions/{LONG_NAME}", {"source": "x"}),
    ("DELETE", f"/v3/functions/{LONG_NAME}", None),
    ("POST", f"/v3/functions/{LONG_NAME}/examples", {"input": "q", "output": "a"}),
    ("POST", f"/v3/functions/{LONG_NAME}/call", {"input": "q"}),
    ("POST", f"/v3/functions/{LONG_NAME}/stream", {"input": "q"}),
]


@pytest.mark.parametrize(("method", "path", "body"), LONG_PATHS,
                         ids=[f"{method} {path[:24]}" for method, path, _ in LONG_PATHS])
def test_a_long_id_in_a_path_is_refused(probe: Probe, method: str, path: str, body: Any) -> None:
    probe.refused(probe.send(method, path, body))


def test_a_megabyte_function_name_in_the_path_is_refused(probe: Probe) -> None:
    probe.refused(probe.send("POST", f"/v3/functions/{NAME_MB}/call", {"input": "hello"}))


HEADER_CASES = [
    pytest.param(V2_CALL_EP, {"X-Padding": "p" * MEBIBYTE}, id="v2-call:unknown-header"),
    pytest.param(V3_FN_CALL_EP, {"X-Padding": "p" * MEBIBYTE}, id="v3-function-call:unknown-header"),
    pytest.param(CHAT_EP, {"X-Opper-Name": NAME_MB}, id="compat-chat:x-opper-name"),
    pytest.param(CHAT_EP, {"X-Opper-Parent-Span-Id": LONG_ID * 3500}, id="compat-chat:x-opper-parent-span-id"),
    pytest.param(EMBEDDINGS_EP, {"X-Opper-Name": NAME_MB}, id="compat-embeddings:x-opper-name"),
    pytest.param(CHAT_EP, {"X-Opper-Name": "n" * 300}, id="compat-chat:x-opper-name-300-chars"),
    pytest.param(EMBEDDINGS_EP, {"X-Opper-Parent-Span-Id": LONG_ID}, id="compat-embeddings:parent-300-chars"),
]


@pytest.mark.parametrize(("endpoint", "headers"), HEADER_CASES)
def test_a_huge_header_value_is_refused(probe: Probe, endpoint: Endpoint, headers: dict[str, str]) -> None:
    probe.refused(probe.send(endpoint.method, endpoint.path, endpoint.body, headers=headers))


def test_a_megabyte_key_is_refused(probe: Probe) -> None:
    reply = probe.send(V2_CALL_EP.method, V2_CALL_EP.path, V2_CALL_EP.body, key="k" * MEBIBYTE)
    probe.refused(reply, statuses=frozenset(range(400, 500)))


def test_a_span_patch_with_an_overflowing_score_keeps_the_span(probe: Probe) -> None:
    """A refused update leaves the stored span as it was."""
    before = probe.send("GET", f"/v3/spans/{SPAN}").json()
    probe.refused(probe.send("PATCH", f"/v3/spans/{SPAN}", {"score": 2**64, "name": "overflowed"}))
    after = probe.send("GET", f"/v3/spans/{SPAN}").json()
    assert after["name"] == before["name"]
