"""`GET /v3/models` and `/v2/models` as a catalogue: capabilities, context windows, prices and the
deprecated flag for every model, `?capability=` filtering each capability, and an unknown one refused."""

from __future__ import annotations

from typing import Any

import pytest

from taskgate.providers.model_traits import CAPABILITIES
from tests.fakes.common import Behaviour
from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess
from tests.http_client import Reply, get, post, request


def models(server: ServerProcess, query: str = "") -> list[dict[str, Any]]:
    reply = request("GET", f"{server.url}/v3/models?limit=1000{query}", key=None)
    assert reply.status == 200, reply.body
    return reply.json()["models"]  # type: ignore[no-any-return,unused-ignore]


def refused(reply: Reply) -> str:
    assert reply.status == 400, reply.body
    body = reply.json()
    assert body["error"]["message"] == body["detail"]
    return str(body["detail"])


def test_entries_carry_capabilities_windows_prices_and_deprecation(server: ServerProcess) -> None:
    by_id = {model["id"]: model for model in models(server)}
    mini = by_id["openai/gpt-4o-mini"]
    assert set(mini["capabilities"]) == {"tools", "json_schema", "vision", "files"}
    assert mini["context_window"] == 128000 and mini["pricing"]["input"][0] > 0 and mini["deprecated"] is False
    assert "reasoning" in by_id["anthropic/claude-sonnet-4-5"]["capabilities"]
    assert by_id["openai/text-embedding-3-small"]["capabilities"] == ["embeddings"]
    assert "audio" in by_id["openai/gpt-4o-audio-preview"]["capabilities"]
    dalle = by_id["openai/dall-e-3"]
    assert dalle["type"] == "image" and dalle["capabilities"] == ["image_generation"]
    assert dalle["pricing"]["per_image"] == [0.04]
    assert by_id["openai/gpt-image-1"]["type"] == "image"
    assert all(isinstance(model["deprecated"], bool) for model in by_id.values())  # as genai-prices says
    assert all(set(model["capabilities"]) <= set(CAPABILITIES) for model in by_id.values())


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_each_capability_filters(server: ServerProcess, capability: str) -> None:
    found = models(server, f"&capability={capability}")
    assert found, capability
    assert all(capability in model["capabilities"] for model in found)
    assert len(found) < len(models(server))


def test_capability_filters_v2_too(server: ServerProcess) -> None:
    listed = get(f"{server.url}/v2/models?capability=reasoning&limit=100").json()["data"]
    assert listed and {m["name"] for m in listed} <= {m["id"] for m in models(server, "&capability=reasoning")}
    assert "openai/gpt-4o-mini" not in {m["name"] for m in listed}


@pytest.mark.parametrize("value", ["teleportation", "TOOLS", "tools,vision", "x" * 5000, "%00", "vision%20"])
def test_an_unknown_capability_is_a_400_listing_the_known_ones(server: ServerProcess, value: str) -> None:
    for reply in (request("GET", f"{server.url}/v3/models?capability={value}", key=None),
                  get(f"{server.url}/v2/models?capability={value}")):
        detail = refused(reply)
        assert all(name in detail for name in CAPABILITIES), detail


SCHEMA = {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}


@pytest.mark.parametrize(("model", "response_format"), [
    ("openai/gpt-4o-mini", {"type": "json_schema", "strict": True}),
    ("openai/gpt-3.5-turbo", {"type": "json_object"}),
    ("openai/gpt-4-0613", None),
])
def test_the_catalogue_decides_the_structured_output_mode_sent(server: ServerProcess, fake: FakeProvider, model: str,
                                                               response_format: dict[str, Any] | None) -> None:
    fake.script(model.partition("/")[2], Behaviour(json={"message": "hi"}))
    reply = post(f"{server.url}/v2/call", {"name": "mode", "input": "x", "output_schema": SCHEMA, "model": model})
    assert reply.status == 200, reply.body
    assert reply.json()["json_payload"] == {"message": "hi"}
    sent = fake.requests[-1].json.get("response_format")
    if response_format is None:
        assert sent is None
    elif response_format["type"] == "json_object":
        assert sent == response_format
    else:
        assert sent["type"] == "json_schema" and sent["json_schema"]["strict"] is True
