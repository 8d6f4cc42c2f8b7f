"""Integers beyond 64 bits in a request body: orjson reads such a literal as a rounded float, so
`parse_json_body` refuses it (a 400) wherever it is, rather than let a call, a span or an upstream
request carry another number than the caller sent. Integers orjson reads exactly, and digits that
are not an integer literal (in a string, a fraction or an exponent), pass.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from taskgate.errors import BadRequestError
from taskgate.json_text import EXACT_INTEGERS
from taskgate.server.request_io import check_json_integers, parse_json_body
from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess
from tests.http_client import request


def _body(literal: str) -> bytes:
    """The integer `literal` inside an object, after a string with an escaped quote and backslash
    (to fool a scan that takes quotes for string ends) and beside a long digit run that is text."""
    return json.dumps({"note": 'say "9" \\', "id": "1" * 40, "data": [{"n": "@"}]}).replace('"@"', literal).encode()


# 300 digits: still a finite double to orjson (from about 310 it refuses the body itself).
BEYOND = [str(value) for value in (2**64, 10**30, -(2**63) - 1, -(10**30))] + ["1" * 300, "-" + "9" * 300]


@pytest.mark.parametrize("literal", BEYOND, ids=lambda literal: literal[:24])
def test_an_integer_beyond_64_bits_is_refused(literal: str) -> None:
    with pytest.raises(BadRequestError, match="beyond 64 bits"):
        parse_json_body(_body(literal))


@pytest.mark.parametrize("value", [EXACT_INTEGERS[0], EXACT_INTEGERS[-1], 2**63, 10**18, -(10**18), 0], ids=str)
def test_an_integer_orjson_reads_exactly_passes(value: int) -> None:
    assert parse_json_body(_body(str(value)))["data"][0]["n"] == value


@pytest.mark.parametrize("text", [
    b'{"s": "123456789012345678901234567890"}',
    b'{"s": "\\"123456789012345678901234567890\\""}',
    b'{"s": "\\\\", "t": "123456789012345678901234567890"}',
    b'{"f": 0.123456789012345678901234567890}',
    b'{"f": -1.123456789012345678901234567890}',
    b'{"f": 123456789012345678901234567890.5}',
    b'{"e": 1.0e-123456789012345678901234567890}',
    b'{"e": 5E-123456789012345678901234567890}',
])
def test_digits_that_are_not_an_integer_literal_pass(text: bytes) -> None:
    check_json_integers(text)


# ----- end to end: no call or span ever carries a rounded integer


@pytest.mark.parametrize(("path", "body"), [
    ("/v2/call", {"name": "big-int", "input": {"n": 2**64}}),
    ("/v3/call", {"name": "big-int", "input": {"n": -(2**63) - 1}}),
    ("/v3/compat/chat/completions", {"model": "openai/gpt-4o-mini", "seed": 2**64,
                                     "messages": [{"role": "user", "content": "hi"}]}),
    ("/v3/spans", {"name": "big-int", "input": {"n": 2**64}}),
    ("/v2/spans", {"name": "big-int", "meta": {"n": 10**30}}),
])
def test_a_call_or_span_with_an_integer_beyond_64_bits_is_a_400(server: ServerProcess, fake: FakeProvider,
                                                                 path: str, body: dict[str, Any]) -> None:
    reply = request("POST", server.url + path, raw=json.dumps(body).encode())
    assert reply.status == 400 and "beyond 64 bits" in reply.json()["detail"], reply.body[:300]
    assert not fake.requests


def test_a_call_whose_input_holds_long_digit_runs_keeps_them_exactly(server: ServerProcess,
                                                                     fake: FakeProvider) -> None:
    """The control: a long id in a string, the largest integers orjson keeps, a long fraction."""
    given = {"id": "9" * 30, "largest": 2**64 - 1, "smallest": -(2**63), "fraction": 0.123456789012345678901234}
    reply = request("POST", f"{server.url}/v2/call", raw=json.dumps({"name": "big-int", "input": given}).encode())
    assert reply.status == 200, reply.body[:300]
    span = request("GET", f"{server.url}/v3/spans/{reply.json()['span_id']}").json()
    assert span["input"] == given
