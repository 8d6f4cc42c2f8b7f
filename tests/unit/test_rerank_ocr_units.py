"""The rerank wire's parsing, the rerank presets and entries, and OCR's document checks, without a server."""

from __future__ import annotations

import asyncio
import base64

import pytest

from taskgate.config import Settings
from taskgate.engine.ocr import OcrLimits, OcrService, media_type_of_name, output_schema
from taskgate.errors import BadRequestError, UpstreamProtocolError
from taskgate.providers.base import ChatRequest, RerankRequest
from taskgate.providers.catalog import load_presets, resolve_provider
from taskgate.providers.cohere import CohereAdapter
from taskgate.providers.registry import ProviderRegistry
from taskgate.providers.rerank_wire import parse_rerank, rerank_body


def test_parse_rerank_orders_and_reads_both_usages() -> None:
    tokens = parse_rerank({"results": [{"index": 1, "relevance_score": 0.2}, {"index": 0, "relevance_score": 0.9}],
                           "usage": {"total_tokens": 12}, "model": "m"}, "jina", 2)
    assert tokens.ranking == [(0, 0.9), (1, 0.2)] and tokens.usage.input_tokens == 12 and tokens.model == "m"
    units = parse_rerank({"results": [], "meta": {"billed_units": {"search_units": 3}}}, "cohere", 2)
    assert units.search_units == 3 and units.usage.input_tokens == 0


@pytest.mark.parametrize("data", [
    {}, {"results": "x"}, {"results": [{"index": 2, "relevance_score": 1}]},
    {"results": [{"index": True, "relevance_score": 1}]}, {"results": [{"index": 0, "relevance_score": "high"}]},
    {"results": [{"index": 0, "relevance_score": 1}, {"index": 0, "relevance_score": 0.5}]}, [1, 2], None,
])
def test_parse_rerank_refuses_what_is_not_a_ranking_of_the_documents_sent(data: object) -> None:
    with pytest.raises(UpstreamProtocolError):
        parse_rerank(data, "jina", 2)


def test_rerank_body_sends_top_n_only_when_asked() -> None:
    assert rerank_body(RerankRequest("m", "q", ["a"])) == {"model": "m", "query": "q", "documents": ["a"]}
    assert rerank_body(RerankRequest("m", "q", ["a"], top_n=1))["top_n"] == 1


def test_presets_and_entries_name_their_rerank_path() -> None:
    presets = load_presets({"mine": {"base_url": "http://x/v1", "key_env": "MINE_KEY", "rerank_path": "/v1/rerank"}})
    assert presets["mine"].rerank_path == "/v1/rerank"
    assert presets["jina"].rerank_path == presets["cohere"].rerank_path == "/rerank"
    assert presets["openai"].rerank_path is None and presets["groq"].rerank_path is None


def test_an_openai_compatible_vendor_without_rerank_says_so() -> None:
    registry = ProviderRegistry(Settings.from_env({"GROQ_API_KEY": "k"}))
    with pytest.raises(BadRequestError, match=r"'groq'.*no rerank API"):
        asyncio.run(registry.adapter_for("groq").rerank(RerankRequest("m", "q", ["a"])))


def test_cohere_serves_rerank_only() -> None:
    adapter = CohereAdapter(resolve_provider("cohere", load_presets({}), {"COHERE_API_KEY": "k"}), timeout_s=1)
    with pytest.raises(BadRequestError, match="does not serve chat"):
        asyncio.run(adapter.complete(ChatRequest(model="command-r", messages=[])))
    with pytest.raises(BadRequestError, match="does not serve embeddings"):
        asyncio.run(adapter.embed("embed", ["a"], {}))


def service(max_bytes: int = 1024) -> OcrService:
    async def never(task: object) -> object:
        raise AssertionError("not called")
    return OcrService(never, OcrLimits(max_bytes=max_bytes))  # type: ignore[arg-type]


@pytest.mark.parametrize(("data", "media"), [
    (b"\x89PNG\r\n\x1a\nrest", "image/png"), (b"\xff\xd8\xff\xe0rest", "image/jpeg"), (b"GIF89a...", "image/gif"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"), (b"%PDF-1.7\n", "application/pdf"),
])
def test_documents_are_typed_by_their_bytes(data: bytes, media: str) -> None:
    encoded = base64.b64encode(data).decode()
    document = service().document(encoded, None)
    assert (document.media_type, document.size, document.encoded) == (media, len(data), encoded)
    assert service().document(f"data:{media};base64,{encoded}", None).data_url == f"data:{media};base64,{encoded}"
    spaced = " \n".join(encoded[i:i + 4] for i in range(0, len(encoded), 4))
    assert service().document(spaced, media).media_type == media


def test_riff_that_is_not_webp_is_not_an_image() -> None:
    with pytest.raises(BadRequestError, match="none of the types"):
        service().document(base64.b64encode(b"RIFF\x00\x00\x00\x00WAVEfmt ").decode(), None)


def test_the_size_is_checked_before_decoding() -> None:
    with pytest.raises(BadRequestError, match="larger than 1024"):
        service().document("!" * 4096, None)  # not even base64: refused for its size first


def test_names_and_schema() -> None:
    assert media_type_of_name("a.PDF") == "application/pdf" and media_type_of_name("a.tiff") is None
    assert media_type_of_name("noext") is None and media_type_of_name(None) is None
    items = output_schema([0, 3])["properties"]["pages"]["items"]
    assert list(items["properties"]) == ["index", "markdown"] and items["properties"]["index"]["enum"] == [0, 3]
    assert output_schema(None)["properties"]["pages"]["items"]["properties"]["index"]["minimum"] == 0
