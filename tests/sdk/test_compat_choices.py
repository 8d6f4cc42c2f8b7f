"""The real `openai` client asking chat completions for `n` choices and for log probabilities, in
front of both fake upstreams: each choice is its own upstream call, priced and recorded; log
probabilities come back when the upstream gives them (OpenAI's wire does, Anthropic's has none)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fakes.provider import Behaviour, FakeProvider
from tests.fixtures import SdkVenvs
from tests.harness import ServerProcess
from tests.http_client import get

pytestmark = pytest.mark.sdk

OPENAI = "openai/gpt-4o-mini"
ANTHROPIC = "anthropic/claude-haiku-4-5"


def run(sdk_venv: SdkVenvs, server: ServerProcess, scenario: str, **cfg: Any) -> Any:
    config = {"base_url": f"{server.url}/v3/compat", "api_key": server.api_key, "scenario": scenario, **cfg}
    done = sdk_venv.run("openai", "compat_openai_choices.py", json.dumps(config), server=server)
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("model", [OPENAI, ANTHROPIC])
def test_n_choices_are_separate_calls_priced_and_recorded(sdk_venv: SdkVenvs, server: ServerProcess,
                                                          fake: FakeProvider, model: str) -> None:
    upstream = model.split("/", 1)[1]
    fake.script(upstream, Behaviour(text="one"), Behaviour(text="two"), Behaviour(text="three"))
    out = run(sdk_venv, server, "choices", model=model, n=3)
    assert [c["index"] for c in out["choices"]] == [0, 1, 2]
    assert sorted(c["content"] for c in out["choices"]) == ["one", "three", "two"]
    assert len(fake.requests) == 3 and all("n" not in request.json for request in fake.requests)
    span_ids = out["span_ids"].split(",")
    assert len(set(span_ids)) == 3 and span_ids[0] == out["span_id"]
    spans = [get(f"{server.url}/v3/spans/{span_id}").json()["data"] for span_id in span_ids]
    assert sum(span["cost"] for span in spans) == pytest.approx(out["cost"])
    assert float(out["header_cost"]) == pytest.approx(out["cost"])
    assert out["usage"]["completion_tokens"] == sum(span["usage"]["output_tokens"] for span in spans)


@pytest.mark.parametrize("model", [OPENAI, ANTHROPIC])
def test_streamed_choices_arrive_by_index(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider,
                                          model: str) -> None:
    upstream = model.split("/", 1)[1]
    fake.script(upstream, *(Behaviour(text=f"answer number {n}", event_delay_s=0.002) for n in range(3)))
    out = run(sdk_venv, server, "streamed_choices", model=model, n=3)
    assert sorted(out["texts"].values()) == [f"answer number {n}" for n in range(3)]
    assert out["finishes"] == {"0": "stop", "1": "stop", "2": "stop"}
    span_ids = out["span_ids"].split(",")
    spans = [get(f"{server.url}/v3/spans/{span_id}").json()["data"] for span_id in span_ids]
    assert sorted(span["output"] for span in spans) == sorted(out["texts"].values())
    assert out["usage"]["completion_tokens"] == sum(span["usage"]["output_tokens"] for span in spans)
    assert out["usage"]["cost"] == pytest.approx(sum(span["cost"] for span in spans))


def test_a_choice_failing_mid_stream_ends_the_completion(sdk_venv: SdkVenvs, server: ServerProcess,
                                                         fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(text="Once upon a time there was a gateway", fail_after=4),
                Behaviour(text="Once upon a time there was a gateway", event_delay_s=0.05))
    out = run(sdk_venv, server, "streamed_failure", model=OPENAI, n=2)
    assert out["raised"] == "APIError" and out["received"]
    assert len(fake.requests) == 2


def test_one_failed_choice_fails_the_completion(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(text="fine"), Behaviour(status=400))
    config = {"base_url": f"{server.url}/v3/compat", "api_key": server.api_key, "scenario": "choices",
              "model": OPENAI, "n": 2}
    done = sdk_venv.run("openai", "compat_openai_choices.py", json.dumps(config), server=server)
    assert done.returncode != 0 and "BadRequestError" in done.stderr


def test_logprobs_come_back_whole_and_streamed(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider) -> None:
    out = run(sdk_venv, server, "logprobs", model=OPENAI)
    text = fake.default_text("gpt-4o-mini")
    for entries in (out["whole"], out["streamed"]):
        assert "".join(entry["token"] for entry in entries) == text
        assert all(entry["logprob"] < 0 and len(entry["top_logprobs"]) == 2 for entry in entries)
    assert out["whole"] == out["streamed"] and out["streamed_text"] == text
    assert all(request.json["logprobs"] is True and request.json["top_logprobs"] == 2 for request in fake.requests)


def test_an_upstream_without_logprobs_answers_null(sdk_venv: SdkVenvs, server: ServerProcess,
                                                   fake: FakeProvider) -> None:
    out = run(sdk_venv, server, "logprobs", model=ANTHROPIC)
    assert out["content"] == fake.default_text("claude-haiku-4-5")
    assert out["whole"] is None and out["streamed"] == []
