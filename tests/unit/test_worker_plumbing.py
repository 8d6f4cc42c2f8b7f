"""`--workers` values, and the frames between workers and the local model process, including broken ones."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from taskgate.errors import BadRequestError, OverloadedError, ProviderError, SchemaError
from taskgate.providers.base import Usage
from taskgate.providers.local.model_wire import (
    MAX_FRAME_BYTES,
    ModelProcessError,
    Outcome,
    error_from_wire,
    error_to_wire,
    read_frame,
)
from taskgate.server.worker_count import cores, max_workers, parse_workers


def test_worker_counts() -> None:
    assert parse_workers("1") == 1
    assert parse_workers(" 2 ") == 2
    assert parse_workers("auto") == parse_workers("AUTO") == cores()
    assert parse_workers(str(max_workers())) == max_workers()


@pytest.mark.parametrize("raw", ["0", "-1", "+2", "2.0", "1e3", "two", "", " ", "٣", "9" * 5000,
                                 str(10**6), "auto2", "1;rm -rf /"])
def test_bad_worker_counts_are_refused_with_what_is_accepted(raw: str) -> None:
    with pytest.raises(ValueError, match=r"--workers must be a whole number from 1 to \d+ .* or 'auto', got") as caught:
        parse_workers(raw)
    assert len(str(caught.value)) < 200  # a huge value is quoted cut short


def frames(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


async def test_frames_read_in_order_then_none_at_a_clean_end() -> None:
    reader = frames(frame(b'{"piece": "a"}') + frame(b'{"done": 1}'))
    assert await read_frame(reader) == {"piece": "a"}
    assert await read_frame(reader) == {"done": 1}
    assert await read_frame(reader) is None


@pytest.mark.parametrize("data", [
    b"\x00\x00",  # a cut length
    frame(b'{"piece": "a"}')[:-3],  # a cut body
    (MAX_FRAME_BYTES + 1).to_bytes(4, "big"),  # a length over the bound: refused before reading
    frame(b"[1, 2]"),  # not an object
    frame(b"\xff\xfe"),  # not JSON
])
async def test_broken_frames_are_a_provider_error(data: bytes) -> None:
    with pytest.raises(ModelProcessError):  # a ProviderError: a 502, or the next model of the chain
        await read_frame(frames(data))


def test_errors_cross_as_themselves() -> None:
    overloaded = error_from_wire(error_to_wire(OverloadedError("queue full", retry_after=7)))
    assert isinstance(overloaded, OverloadedError) and overloaded.headers["Retry-After"] == "7"
    bad = error_from_wire(error_to_wire(BadRequestError("too long")))
    assert type(bad) is BadRequestError and bad.detail == "too long"
    # anything else (another error class, a crash) is a provider failure, so the router may fall back
    assert type(error_from_wire(error_to_wire(SchemaError("x")))) is ProviderError
    assert type(error_from_wire(error_to_wire(RuntimeError("boom")))) is ProviderError
    assert type(error_from_wire({"kind": "SystemExit", "detail": "x"})) is ProviderError
    assert type(error_from_wire({})) is ProviderError


def test_outcomes_cross_whole() -> None:
    outcome = Outcome("{}", "stop", Usage(input_tokens=3, output_tokens=1), ["a note"])
    assert Outcome.from_wire(orjson.loads(orjson.dumps(outcome.to_wire()))) == outcome


def test_every_v3_request_schema_compiles() -> None:
    """Body gates compile on their first request (to keep idle workers small): a schema that would not
    compile must still be found here, not by a caller."""
    from taskgate.api.v3.routes import ROUTES

    gates = [op.gate for op in ROUTES if op.gate is not None]
    assert len(gates) >= 10
    for gate in gates:
        assert gate._validator is not None  # compiles, or raises
