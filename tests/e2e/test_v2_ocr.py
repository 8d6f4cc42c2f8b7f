"""`POST /v2/ocr` and `GET /v2/ocr/models` over HTTP: a document read by a vision model through the
task engine (the fake upstream), with the hostile matrix of documents and options."""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.common import Behaviour
from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess
from tests.http_client import Reply, get, post
from tests.span_lookup import span_by_id as span

MAX_BYTES = 4096
MODEL = "gpt-4o-mini"


def png() -> bytes:
    """A real 1x1 PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\xff\xff\xff"))
            + chunk(b"IEND", b""))


PNG = png()
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def data_url(media: str, data: bytes) -> str:
    return f"data:{media};base64,{b64(data)}"


@pytest.fixture(scope="module")
def ocr_server(fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(fake_provider, Path(tmp_path_factory.mktemp("taskgate-ocr")),
                            env={"TASKGATE_OCR_MAX_BYTES": str(MAX_BYTES), "TASKGATE_REQUEST_TIMEOUT": "2"})
    process.start()
    yield process
    process.stop()


def ocr(server: ServerProcess, body: Any, **kw: Any) -> Reply:
    return post(server.url + "/v2/ocr", body, **kw)


def chat_requests(fake: FakeProvider) -> list[Any]:
    return [r.json for r in fake.requests if r.path.endswith("/chat/completions")]


def test_an_image_is_read_through_the_engine(ocr_server: ServerProcess, fake: FakeProvider) -> None:
    fake.script(MODEL, Behaviour(json={"pages": [{"index": 0, "markdown": "# Invoice\n\n| a | b |\n|---|---|"}]}))
    reply = ocr(ocr_server, {"model": f"openai/{MODEL}",
                             "document": {"type": "base64", "content": b64(PNG), "document_name": "scan.png"}})
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["pages"] == [{"index": 0, "markdown": "# Invoice\n\n| a | b |\n|---|---|", "dimensions": None,
                              "images": []}]
    assert body["model"] == f"openai/{MODEL}"
    assert body["usage_info"] == {"pages_processed": 1, "doc_size_bytes": len(PNG)}
    assert body["cost"]["total"] == body["cost"]["generation"] > 0
    [sent] = chat_requests(fake)
    assert "OCR engine" in sent["messages"][0]["content"]
    parts = sent["messages"][-1]["content"]
    assert {"type": "image_url", "image_url": {"url": data_url("image/png", PNG)}} in parts
    schema = sent["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["pages"]["items"]["properties"]["index"]["enum"] == [0]
    recorded = span(ocr_server, body["id"])
    assert recorded["type"] == "ocr" and recorded["name"] == "ocr"
    assert recorded["cost"] == pytest.approx(body["cost"]["total"])


def test_pdf_pages_asked_for_are_validated_and_ordered(ocr_server: ServerProcess, fake: FakeProvider) -> None:
    fake.script(MODEL, Behaviour(json={"pages": [{"index": 7, "markdown": "not asked"}]}),
                Behaviour(json={"pages": [{"index": 2, "markdown": "third"}, {"index": 0, "markdown": "first"}]}))
    reply = ocr(ocr_server, {"model": f"openai/{MODEL}", "pages": [2, 0, 2],
                             "document": {"type": "document_url", "document_url": data_url("application/pdf", PDF)}})
    assert reply.status == 200, reply.body
    body = reply.json()
    assert [(page["index"], page["markdown"]) for page in body["pages"]] == [(0, "first"), (2, "third")]
    assert body["usage_info"]["pages_processed"] == 2
    first, again = chat_requests(fake)  # the answer with a page not asked for was asked again
    assert first["response_format"]["json_schema"]["schema"]["properties"]["pages"]["items"]["properties"][
        "index"]["enum"] == [0, 2]
    assert '"pages":[0,2]' in first["messages"][-1]["content"][0]["text"]
    assert len(again["messages"]) > len(first["messages"])


def test_an_image_url_data_url_and_an_anthropic_model(ocr_server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("claude-sonnet-4-5", Behaviour(json={"pages": [{"index": 0, "markdown": "hello"}]}))
    reply = ocr(ocr_server, {"model": "anthropic/claude-sonnet-4-5",
                             "document": {"type": "image_url", "image_url": data_url("image/jpeg", JPEG)}})
    assert reply.status == 200, reply.body
    assert reply.json()["pages"][0]["markdown"] == "hello"
    [sent] = [r.json for r in fake.requests if r.path.endswith("/v1/messages")]
    image = sent["messages"][-1]["content"][-1]
    assert image["type"] == "image" and image["source"]["media_type"] == "image/jpeg"


def test_models_lists_the_configured_vision_models(ocr_server: ServerProcess) -> None:
    listed = get(ocr_server.url + "/v2/ocr/models").json()
    assert [model["name"] for model in listed["data"]] == ["openai/gpt-4o-mini", "openai/gpt-4o",
                                                            "anthropic/claude-sonnet-4-5"]
    assert listed["data"][0] == {"hosting_provider": "openai", "name": "openai/gpt-4o-mini", "location": "remote",
                                 "cost_per_page": None}
    assert listed["meta"] == {"total_count": 3}
    assert get(ocr_server.url + "/v2/ocr/models", key=None).status == 401


def doc(**fields: Any) -> dict[str, Any]:
    return {"type": "base64", "content": b64(PNG), **fields}


def body_with(**changes: Any) -> dict[str, Any]:
    return {"model": f"openai/{MODEL}", "document": doc(), **changes}


@pytest.mark.parametrize(("body", "needle"), [
    (body_with(document=doc(content="not base64!!")), "not valid base64"),
    (body_with(document=doc(content="QUJD=")), "not valid base64"),
    (body_with(document=doc(content="")), "required"),
    (body_with(document=doc(content=b64(b"plain text, not a picture"))), "none of the types"),
    (body_with(document=doc(content=b64(PDF), document_name="scan.png")), "declared as 'image/png'"),
    (body_with(document=doc(content=data_url("image/png", JPEG))), "content is image/jpeg"),
    (body_with(document=doc(content=data_url("image/svg+xml", PNG))), "declared as 'image/svg+xml'"),
    (body_with(document=doc(content="data:image/png," + b64(PNG))), "must be base64"),
    (body_with(document=doc(content=b64(PNG + b"\x00" * MAX_BYTES))), f"larger than {MAX_BYTES}"),
    (body_with(document=doc(content="A" * (MAX_BYTES * 2))), f"larger than {MAX_BYTES}"),
    (body_with(document={"type": "image_url", "image_url": "https://example.com/a.png"}), "not fetched"),
    (body_with(document={"type": "document_url", "document_url": "file:///etc/passwd"}), "data URL"),
    (body_with(document={"type": "image_url", "content": b64(PNG)}), "does not go with"),
    (body_with(document={"type": "video", "content": b64(PNG)}), "document.type"),
    (body_with(document={"type": ["base64"], "content": b64(PNG)}), "document.type"),
    (body_with(document=doc(content=5)), "document.content"),
    (body_with(document=doc(document_name=7)), "document_name"),
    (body_with(document="x"), "document must be"),
    (body_with(document=None), "document must be"),
    (body_with(pages=[1]), "one page, index 0"),
    (body_with(pages=["0"]), "pages"),
    (body_with(pages=[-1]), "pages"),
    (body_with(pages=0), "pages"),
    (body_with(document=doc(content=b64(PDF)), pages=[]), "at least one"),
    (body_with(include_image_base64=True), "include_image_base64"),
    (body_with(include_image_base64="yes"), "include_image_base64"),
    (body_with(image_limit=3), "image_limit"),
    (body_with(image_min_size=10), "image_min_size"),
    (body_with(mistral_extra={"table_format": "html"}), "mistral_extra"),
    (body_with(model=None), "model is required"),
    (body_with(model=7), "model"),
    (body_with(model="openai/" + "m" * 300), "256"),
    (body_with(model="nowhere/model"), "nowhere"),
])
def test_refuses_bad_bodies(ocr_server: ServerProcess, fake: FakeProvider, body: dict[str, Any], needle: str) -> None:
    reply = ocr(ocr_server, body)
    assert reply.status == 400, reply.body
    assert needle in reply.json()["detail"]
    assert not fake.requests  # refused before any upstream call


def test_bounded_and_malformed_transport(ocr_server: ServerProcess) -> None:
    url = ocr_server.url + "/v2/ocr"
    assert post(url, body_with(document=doc(content="A" * (11 * 1024 * 1024)))).status == 413
    deep = post(url, raw=b'{"document": ' + b"[" * 5000 + b"]" * 5000 + b"}")
    assert deep.status == 400 and "type" in deep.json()
    assert post(url, raw=b"not json").status == 400
    assert post(url, body_with(), key="wrong").status == 401


@pytest.mark.parametrize(("behaviour", "status", "needle"), [
    (Behaviour(status=500), 502, "openai"),
    (Behaviour(delay_s=3.0), 504, "no answer within 2s"),
])
def test_provider_failures_are_provider_errors(ocr_server: ServerProcess, fake: FakeProvider,
                                               behaviour: Behaviour, status: int, needle: str) -> None:
    fake.script("flaky-vision", behaviour)
    reply = ocr(ocr_server, body_with(model="openai/flaky-vision"))
    assert reply.status == status, reply.body
    assert needle in reply.json()["detail"]
