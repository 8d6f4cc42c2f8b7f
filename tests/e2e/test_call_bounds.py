"""What one request may cost upstream (issue 13, finding 3): schema attempts are capped by the
operator, not the caller, and the upstream calls and tokens of one request are bounded, for
re-asks and fallbacks alike, in `run` and `stream`. A real `taskgate serve` against the fake."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taskgate.config import ConfigError, Settings
from tests.fakes.common import Behaviour
from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess
from tests.http_client import Reply, get, post
from tests.schemas import CAPITAL_SCHEMA
from tests.span_lookup import recorded_span

MAX_ATTEMPTS_KEY = "invocation.structured_generation.max_attempts"
NEVER_FITS = Behaviour(json={"capital": 1})  # valid JSON that breaks the schema: every answer is re-asked


@pytest.fixture(scope="module")
def limited(fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose operator lowered every per-request limit."""
    server = ServerProcess(fake_provider, Path(tmp_path_factory.mktemp("limited")), env={
        "TASKGATE_MAX_ATTEMPTS": "3",
        "TASKGATE_MAX_UPSTREAM_CALLS": "4",
        "TASKGATE_MAX_REQUEST_TOKENS": "2000",
    })
    server.start()
    yield server
    server.stop()


def structured_call(server: ServerProcess, name: str, model: str | list[str], max_attempts: int) -> Reply:
    body = {"name": name, "input": {"country": "Sweden"}, "output_schema": CAPITAL_SCHEMA, "model": model,
            "configuration": {MAX_ATTEMPTS_KEY: max_attempts}}
    return post(f"{server.url}/v2/call", body)


LIMIT_VARIABLES = ["TASKGATE_MAX_ATTEMPTS", "TASKGATE_MAX_UPSTREAM_CALLS", "TASKGATE_MAX_REQUEST_TOKENS"]


@pytest.mark.parametrize("name", LIMIT_VARIABLES)
@pytest.mark.parametrize("value", ["0", "-3", "2.5", "many"])
def test_a_limit_must_be_a_positive_whole_number(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_an_attempt_count_over_the_cap_is_refused_naming_the_cap(server, fake):
    reply = post(f"{server.url}/v2/call", {"name": "runaway", "input": "x", "output_schema": CAPITAL_SCHEMA,
                                           "configuration": {MAX_ATTEMPTS_KEY: 1_000_000}})
    assert reply.status == 422
    body = reply.json()
    assert body["type"] == "RequestValidationError"
    assert MAX_ATTEMPTS_KEY in body["detail"] and "at most 10" in body["detail"]
    assert fake.requests == []
    assert get(f"{server.url}/v3/functions/runaway").status == 404  # refused before anything was stored


def test_ten_attempts_make_exactly_ten_upstream_calls(server, fake):
    fake.script("never-fits", *[NEVER_FITS] * 12)
    reply = structured_call(server, "ten", "openai/never-fits", max_attempts=10)
    assert reply.status == 400
    assert reply.json()["type"] == "StructuredGenerationError"
    assert "after 10 attempts" in reply.json()["detail"]
    assert len(fake.requests) == 10


def test_the_operator_cap_comes_from_the_environment(limited, fake):
    refused = structured_call(limited, "cap", "openai/never-fits", max_attempts=4)
    assert refused.status == 422 and "at most 3" in refused.json()["detail"]
    assert fake.requests == []
    fake.script("never-fits", *[NEVER_FITS] * 6)
    # Unset, the spec's default of 5 is lowered to the operator's cap rather than refused.
    unset = post(f"{limited.url}/v2/call", {"name": "cap", "input": "x", "output_schema": CAPITAL_SCHEMA,
                                            "model": "openai/never-fits"})
    assert unset.status == 400 and "after 3 attempts" in unset.json()["detail"]
    assert len(fake.requests) == 3


def test_fallbacks_and_re_asks_share_one_call_bound(limited, fake):
    fake.script("down-1", *[Behaviour(status=503)] * 3)
    fake.script("down-2", *[Behaviour(status=503)] * 3)
    fake.script("never-fits", *[NEVER_FITS] * 3)
    chain = ["openai/down-1", "openai/down-2", "openai/never-fits"]
    reply = structured_call(limited, "bounded-calls", chain, max_attempts=3)
    # Attempt 1 falls back twice and is answered (3 calls), attempt 2 goes to the model that
    # answered (call 4); attempt 3 would be call 5.
    assert len(fake.requests) == 4
    assert reply.status == 400
    body = reply.json()
    assert body["type"] == "CallBudgetExceededError" and body["error"]["code"] == "call_budget_exceeded"
    assert "4 upstream calls" in body["detail"]
    span = recorded_span(limited, "bounded-calls")
    assert span["status"] == "error" and "4 upstream calls" in span["error"]


def test_a_stream_falls_back_within_the_same_bound(limited, fake):
    chain = [f"openai/down-{n}" for n in range(1, 6)]
    for model in chain:
        fake.script(model.removeprefix("openai/"), Behaviour(status=503))
    reply = post(f"{limited.url}/v2/call/stream", {"name": "bounded-stream", "input": "x", "model": chain})
    assert reply.status == 400
    assert reply.json()["type"] == "CallBudgetExceededError"
    assert "down-4" in reply.json()["detail"]  # the models that failed first are named
    assert [r.model for r in fake.requests] == ["down-1", "down-2", "down-3", "down-4"]


def test_no_attempt_is_made_once_the_tokens_pass_their_bound(limited, fake):
    heavy = Behaviour(json={"capital": 1}, usage={"prompt_tokens": 1400, "completion_tokens": 100})
    fake.script("heavy", *[heavy] * 3)
    reply = structured_call(limited, "bounded-tokens", "openai/heavy", max_attempts=3)
    # 1,500 tokens after the first answer (within 2,000), 3,000 after the second: no third.
    assert len(fake.requests) == 2
    assert reply.status == 400
    body = reply.json()
    assert body["type"] == "CallBudgetExceededError"
    assert "3000 tokens" in body["detail"] and "2000" in body["detail"]
    span = recorded_span(limited, "bounded-tokens")
    assert span["status"] == "error" and span["usage"]["total_tokens"] == 3000

