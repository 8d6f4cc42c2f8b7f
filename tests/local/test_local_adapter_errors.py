"""How the local provider refuses bad requests: clear 4xx errors before anything is queued or loaded."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from taskgate.config import Settings
from taskgate.errors import BadRequestError, ProviderError, ProviderNotConfiguredError
from taskgate.providers.base import ChatRequest

needs_llama = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python (the local extra) is not installed"
)
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def adapter(tmp_path: Path):
    from taskgate.providers.local.adapter import LocalAdapter

    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all")
    models = {"junk": str(junk), "missing": str(tmp_path / "absent.gguf")}
    return LocalAdapter(Settings(data_dir=tmp_path, local_models=models))


async def test_missing_llama_cpp_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from taskgate.providers.local.adapter import LocalAdapter

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # what an environment without the extra looks like
    adapter = LocalAdapter(Settings(data_dir=tmp_path))  # built all the same: embeddings need no llama.cpp
    with pytest.raises(ProviderNotConfiguredError, match=r"scripts/setup\.sh.*taskgate\[local\].*CMAKE_ARGS"):
        await adapter.complete(ChatRequest(model="gemma-3-270m", messages=HELLO))


@needs_llama
async def test_unknown_model_lists_the_available_ones(adapter) -> None:
    with pytest.raises(BadRequestError) as caught:
        await adapter.complete(ChatRequest(model="llama-9000", messages=HELLO))
    assert caught.value.status == 400
    for name in ("local/gemma-3-270m", "local/junk", "local/missing"):
        assert name in caught.value.detail


@needs_llama
async def test_unknown_model_fails_in_stream_too(adapter) -> None:
    with pytest.raises(BadRequestError, match="unknown local model"):
        async for _ in adapter.stream(ChatRequest(model="nope", messages=HELLO)):
            pass


@needs_llama
async def test_configured_path_that_is_not_a_file(adapter) -> None:
    with pytest.raises(ProviderNotConfiguredError, match=r"absent\.gguf"):
        await adapter.complete(ChatRequest(model="missing", messages=HELLO))


@needs_llama
async def test_configured_file_that_is_not_a_model(adapter) -> None:
    with pytest.raises(ProviderError, match="could not load local model 'junk'"):
        await adapter.complete(ChatRequest(model="junk", messages=HELLO))
    await adapter.aclose()


async def test_a_chat_model_does_not_embed(adapter) -> None:
    with pytest.raises(BadRequestError, match=r"local/gemma-3-270m does not embed.*local/all-minilm-l6-v2"):
        await adapter.embed("gemma-3-270m", ["text"], {})


@needs_llama
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": 5}, "temperature"),
        ({"top_p": -1}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": "many"}, "max_tokens"),
        ({"stop": 5}, "stop"),
        ({"stop": ["ok", 3]}, "stop"),
        ({"seed": 1.5}, "seed"),
    ],
)
async def test_bad_options_are_400(adapter, options: dict, message: str) -> None:
    with pytest.raises(BadRequestError, match=message):
        await adapter.complete(ChatRequest(model="gemma-3-270m", messages=HELLO, options=options))


@needs_llama
async def test_tools_and_images_are_refused(adapter) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    with pytest.raises(BadRequestError, match="tool calling"):
        await adapter.complete(ChatRequest(model="gemma-3-270m", messages=HELLO, tools=[tool]))
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]
    with pytest.raises(BadRequestError, match="only text content"):
        await adapter.complete(ChatRequest(model="gemma-3-270m", messages=image))
    with pytest.raises(BadRequestError, match="role"):
        await adapter.complete(ChatRequest(model="gemma-3-270m", messages=[{"role": "robot", "content": "x"}]))
