"""Image models end to end: answered through the fake's `/v1/images/generations` (its request log
shows what was asked), returned in v2's `images` and as v3's `{image, mime_type}`, priced per image
or by tokens, recorded with digests; what an image call cannot do is a 400."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.common import Behaviour
from tests.fakes.openai_wire import IMAGE_OUTPUT_TOKENS, fake_png
from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess
from tests.http_client import Reply, get, post
from tests.span_lookup import wait_until


def v2_call(server: ServerProcess, model: Any, value: Any, **fields: Any) -> Reply:
    return post(f"{server.url}/v2/call", {"name": "draw", "input": value, "model": model, **fields})


def v3_call(server: ServerProcess, model: Any, value: Any, **fields: Any) -> Reply:
    return post(f"{server.url}/v3/call", {"name": "image-gen", "input": value, "model": model, **fields})


def span(server: ServerProcess, span_id: str) -> dict[str, Any]:
    url = f"{server.url}/v3/spans/{span_id}"
    assert wait_until(lambda: get(url).status == 200)
    recorded: dict[str, Any] = get(url).json()["data"]
    return recorded


def span_of_trace(server: ServerProcess, trace_id: str) -> dict[str, Any]:
    url = f"{server.url}/v3/traces/{trace_id}"
    assert wait_until(lambda: get(url).status == 200)
    return span(server, get(url).json()["data"]["spans"][0]["id"])


def refusal(reply: Reply) -> str:
    assert reply.status == 400, reply.body
    return str(reply.json()["detail"])


def test_v2_gpt_image_1_through_the_images_api(server: ServerProcess, fake: FakeProvider) -> None:
    reply = v2_call(server, "openai/gpt-image-1", "a red bicycle", instructions="Flat vector style")
    assert reply.status == 200, reply.body
    body = reply.json()
    image = fake_png("Flat vector style\n\na red bicycle", 0)
    assert body["images"] == [base64.b64encode(image).decode()]
    assert body["message"] is None and body["json_payload"] is None
    [sent] = fake.requests
    assert sent.path == "/openai/v1/images/generations"
    assert sent.json == {"model": "gpt-image-1", "prompt": "Flat vector style\n\na red bicycle", "n": 1}
    usage = body["usage"]
    assert usage["output_tokens"] == IMAGE_OUTPUT_TOKENS
    assert body["cost"]["total"] == pytest.approx((usage["input_tokens"] * 5 + IMAGE_OUTPUT_TOKENS * 40) / 1e6)
    recorded = span(server, body["span_id"])
    assert recorded["output"] == {"images": [{"media_type": "image/png", "bytes": len(image),
                                              "sha256": hashlib.sha256(image).hexdigest()}]}
    assert base64.b64encode(image).decode() not in str(recorded)


def test_v3_dall_e_3_as_media_output_priced_per_image(server: ServerProcess, fake: FakeProvider) -> None:
    reply = v3_call(server, "openai/dall-e-3", {"description": "a lighthouse", "size": "1792x1024",
                                                "quality": "hd", "style": "vivid"})
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["data"] == {"image": base64.b64encode(fake_png("a lighthouse", 0)).decode(), "mime_type": "image/png"}
    assert body["meta"]["image_gen_calls"] == 1 and body["meta"]["llm_calls"] == 0
    assert body["meta"]["cost"] == pytest.approx(0.04)
    assert fake.requests[-1].json == {"model": "dall-e-3", "prompt": "a lighthouse", "n": 1, "size": "1792x1024",
                                      "quality": "hd", "style": "vivid", "response_format": "b64_json"}
    recorded = span_of_trace(server, body["meta"]["trace_uuid"])
    assert recorded["output"]["images"][0]["revised_prompt"] == "A picture of a lighthouse"
    assert recorded["cost"] == pytest.approx(0.04)


def test_several_images_and_a_format(server: ServerProcess, fake: FakeProvider) -> None:
    reply = v3_call(server, "openai/gpt-image-1", {"description": "three cats", "n": 3, "mime_type": "image/webp"})
    assert reply.status == 200, reply.body
    data = reply.json()["data"]
    assert data["mime_type"] == "image/webp" and len(data["images"]) == 3
    assert data["image"] == data["images"][0]["image"]
    assert fake.requests[-1].json["output_format"] == "webp" and fake.requests[-1].json["n"] == 3
    two = v2_call(server, "openai/dall-e-2", {"prompt": "dots", "n": 2})
    assert two.status == 200 and len(two.json()["images"]) == 2
    assert two.json()["cost"]["total"] == pytest.approx(0.04)


def test_image_calls_are_cached_like_any(server: ServerProcess, fake: FakeProvider) -> None:
    config = {"invocation.cache.ttl": 60}
    first = v2_call(server, "openai/dall-e-3", "a cached comet", configuration=config).json()
    again = v2_call(server, "openai/dall-e-3", "a cached comet", configuration=config).json()
    assert again["cached"] is True and again["images"] == first["images"] and len(fake.requests) == 1
    image = base64.b64decode(first["images"][0])
    assert span(server, again["span_id"])["output"]["images"][0]["sha256"] == hashlib.sha256(image).hexdigest()


def test_fallback_along_an_image_chain(server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-image-1", Behaviour(status=503))
    reply = v2_call(server, ["openai/gpt-image-1", "openai/dall-e-3"], "a fallback fox")
    assert reply.status == 200, reply.body
    assert [r.json["model"] for r in fake.requests] == ["gpt-image-1", "dall-e-3"]


@pytest.mark.parametrize(("model", "value", "fields", "words"), [
    ("openai/dall-e-3", {"description": "x", "mime_type": "image/jpeg"}, {}, "not 'image/jpeg'"),
    ("openai/gpt-image-1", {"description": "x", "mime_type": "image/gif"}, {}, "not 'image/gif'"),
    ("openai/gpt-image-1", {"description": "x", "n": 0}, {}, "n must be"),
    ("openai/gpt-image-1", {"description": "x", "n": 11}, {}, "n must be"),
    ("openai/gpt-image-1", {"description": "x", "n": "3"}, {}, "n must be"),
    ("openai/gpt-image-1", {"description": "x", "n": True}, {}, "n must be"),
    ("openai/gpt-image-1", {"description": "x", "reference_image": "AAAA"}, {}, "reference_image"),
    ("openai/gpt-image-1", {"size": "1024x1024"}, {}, "needs a prompt"),
    ("openai/gpt-image-1", {"description": "   "}, {}, "needs a prompt"),
    ("openai/gpt-image-1", 42, {}, "needs a prompt"),
    ("openai/gpt-image-1", None, {}, "needs a prompt"),
    (["openai/gpt-image-1", "openai/gpt-4o-mini"], "x", {}, "cannot mix"),
    (["openai/gpt-4o-mini", "openai/dall-e-3"], "x", {}, "cannot mix"),
])
def test_what_an_image_call_cannot_be_is_a_400(server: ServerProcess, fake: FakeProvider, model: Any, value: Any,
                                               fields: dict[str, Any], words: str) -> None:
    for reply in (v2_call(server, model, value, **fields), v3_call(server, model, value, **fields)):
        assert words in refusal(reply)
    assert not fake.requests


def test_streams_chats_and_upstream_refusals(server: ServerProcess, fake: FakeProvider) -> None:
    streamed = post(f"{server.url}/v2/call/stream", {"name": "draw", "input": "x", "model": "openai/dall-e-3"})
    assert "streaming" in refusal(streamed)
    chat = post(f"{server.url}/v3/compat/chat/completions",
                {"model": "openai/gpt-image-1", "messages": [{"role": "user", "content": "draw"}]})
    assert "conversation" in refusal(chat)
    assert not fake.requests
    bad_size = v2_call(server, "openai/dall-e-3", {"description": "x", "size": "9x9"})
    assert bad_size.status == 400 and "Invalid size" in bad_size.json()["detail"]
    assert fake.requests[-1].path == "/openai/v1/images/generations"


@pytest.fixture(scope="module")
def vendor_server(fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose Together preset points at the fake: an OpenAI-compatible vendor with an images API."""
    process = ServerProcess(fake_provider, Path(tmp_path_factory.mktemp("vendor-images")),
                            env={"TOGETHER_API_KEY": "tg-fake", "TOGETHER_BASE_URL": fake_provider.openai_base_url})
    process.start()
    yield process
    process.stop()


def test_an_openai_compatible_vendor_with_an_images_api(vendor_server: ServerProcess, fake: FakeProvider) -> None:
    reply = v3_call(vendor_server, "together/black-forest-labs/FLUX.1-schnell", "a quiet fjord")
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["data"]["image"] == base64.b64encode(fake_png("a quiet fjord", 0)).decode()
    assert body["meta"]["cost"] is None  # no price is known for it: never a guess
    [sent] = fake.requests
    assert sent.path == "/openai/v1/images/generations" and sent.headers["authorization"] == "Bearer tg-fake"
    assert sent.json == {"model": "black-forest-labs/FLUX.1-schnell", "prompt": "a quiet fjord", "n": 1,
                         "response_format": "b64_json"}
