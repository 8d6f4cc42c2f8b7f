"""Media input end to end: each kind reaches each provider as the part type it takes (the fake's
request log shows it), a model that cannot take a kind is a 400 naming both, bad media is a 400,
and spans keep media by digest, never as base64."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess
from tests.http_client import Reply, get, post
from tests.media_samples import MP3, MP3_URL, PDF, PDF_URL, PNG, PNG_URL, TEXT, TEXT_URL, WAV, WAV_URL, b64, data_url
from tests.span_lookup import wait_until

OPENAI = "openai/gpt-4o-mini"
ANTHROPIC = "anthropic/claude-haiku-4-5"


def v2_call(server: ServerProcess, model: str, media: str, **fields: Any) -> Reply:
    return post(f"{server.url}/v2/call", {"name": "describe-media", "instructions": "Describe it",
                                         "input": {"_opper_media_input": media, "question": "what is it?"},
                                         "model": model, **fields})


def v3_call(server: ServerProcess, model: str, media: str) -> Reply:
    return post(f"{server.url}/v3/call", {"name": "describe-media-v3", "instructions": "Describe it",
                                         "input": {"_opper_media_input": media}, "model": model})


def compat(server: ServerProcess, model: str, *parts: dict[str, Any]) -> Reply:
    return post(f"{server.url}/v3/compat/chat/completions",
                {"model": model, "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, *parts]}]})


def sent_parts(fake: FakeProvider) -> list[dict[str, Any]]:
    """The media parts of the last upstream request's user turn."""
    body = fake.requests[-1].json
    content = body["messages"][-1]["content"]
    return [part for part in content if part["type"] != "text"]


def refusal(reply: Reply) -> str:
    assert reply.status == 400, reply.body
    body = reply.json()
    assert body["error"]["message"] == body["detail"]
    return str(body["detail"])


# ---- part types per provider


@pytest.mark.parametrize(("media", "expected"), [
    (PNG_URL, {"type": "image_url", "image_url": {"url": PNG_URL}}),
    (WAV_URL, {"type": "input_audio", "input_audio": {"data": b64(WAV), "format": "wav"}}),
    (MP3_URL, {"type": "input_audio", "input_audio": {"data": b64(MP3), "format": "mp3"}}),
    (PDF_URL, {"type": "file", "file": {"file_data": PDF_URL, "filename": "input.pdf"}}),
    (TEXT_URL, {"type": "file", "file": {"file_data": TEXT_URL, "filename": "input.txt"}}),
])
def test_openai_gets_each_kind_as_its_part(server: ServerProcess, fake: FakeProvider, media: str,
                                           expected: dict[str, Any]) -> None:
    model = "openai/gpt-4o-audio-preview" if media.startswith("data:audio") else OPENAI
    reply = v2_call(server, model, media)
    assert reply.status == 200, reply.body
    assert sent_parts(fake) == [expected]
    assert v3_call(server, model, media).status == 200
    assert sent_parts(fake) == [expected]


@pytest.mark.parametrize(("media", "expected"), [
    (PNG_URL, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(PNG)}}),
    (PDF_URL, {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": b64(PDF)}}),
    (TEXT_URL, {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": TEXT.decode()}}),
])
def test_anthropic_gets_images_and_documents(server: ServerProcess, fake: FakeProvider, media: str,
                                             expected: dict[str, Any]) -> None:
    assert v2_call(server, ANTHROPIC, media).status == 200
    assert sent_parts(fake) == [expected]


def test_compat_parts_are_typed_by_content(server: ServerProcess, fake: FakeProvider) -> None:
    """A PDF sent as an image_url is a file; input_audio and file parts pass checked."""
    reply = compat(server, "openai/gpt-4o-audio-preview",
                   {"type": "input_audio", "input_audio": {"data": b64(WAV), "format": "wav"}})
    assert reply.status == 200, reply.body
    assert sent_parts(fake)[0]["type"] == "input_audio"
    reply = compat(server, OPENAI, {"type": "image_url", "image_url": {"url": PDF_URL}},
                   {"type": "file", "file": {"file_data": PDF_URL, "filename": "report.pdf"}})
    assert reply.status == 200, reply.body
    assert [part["type"] for part in sent_parts(fake)] == ["file", "file"]
    assert sent_parts(fake)[1]["file"]["filename"] == "report.pdf"
    reply = compat(server, ANTHROPIC, {"type": "file", "file": {"file_data": PDF_URL}})
    assert reply.status == 200, reply.body
    assert sent_parts(fake)[0]["type"] == "document"


# ---- what a model cannot take


@pytest.mark.parametrize(("model", "media", "kind"), [
    ("openai/gpt-3.5-turbo", PNG_URL, "image"),
    ("openai/gpt-4o-mini", WAV_URL, "audio"),
    ("openai/gpt-4o-audio-preview", PDF_URL, "file"),
    (ANTHROPIC, MP3_URL, "audio"),
    ("local/gemma-3-270m", PNG_URL, "image"),
    ("local/gemma-3-270m", PDF_URL, "file"),
])
def test_a_kind_the_model_cannot_take_is_a_400_naming_both(server: ServerProcess, fake: FakeProvider, model: str,
                                                           media: str, kind: str) -> None:
    detail = refusal(v2_call(server, model, media))
    assert f"model '{model}'" in detail and f"{kind} input" in detail, detail
    assert not fake.requests  # refused before any upstream call


def test_every_model_of_a_chain_must_take_the_media(server: ServerProcess, fake: FakeProvider) -> None:
    reply = post(f"{server.url}/v2/call", {"name": "chain-media", "input": {"_opper_media_input": WAV_URL},
                                          "model": ["openai/gpt-4o-audio-preview", ANTHROPIC]})
    assert f"model '{ANTHROPIC}' cannot take audio input" in refusal(reply)
    assert not fake.requests


# ---- bad media


@pytest.mark.parametrize(("media", "words"), [
    ("data:image/png;base64,@@@not-base64@@@", "not valid base64"),
    ("data:image/png;base64,iVBORw0KGgo", "not valid base64"),  # bad padding
    ("data:image/png;base64,", "is empty"),
    ("data:image/png,rawtext", "base64 data URL"),
    ("data:;base64,AAAA", "base64 data URL"),
    ("data:image/svg+xml;base64," + b64(b"<svg/>"), "not supported"),
    ("data:application/x-msdownload;base64," + b64(b"MZ\x90\x00"), "not supported"),
    ("data:" + "x" * 10_000 + ";base64,AAAA", "not supported"),
    (data_url("image/png", PDF), "is not image/png"),
    (data_url("application/pdf", PNG), "is not application/pdf"),
    (data_url("audio/wav", MP3), "is not audio/wav"),
    (data_url("text/plain", b"\xff\xfe\x00bad"), "is not text/plain"),
    (data_url("image/png", PNG + bytes(6 * 1024 * 1024)), "over the"),
])
def test_bad_media_is_a_400(server: ServerProcess, fake: FakeProvider, media: str, words: str) -> None:
    for reply in (v2_call(server, OPENAI, media), v3_call(server, OPENAI, media),
                  compat(server, OPENAI, {"type": "image_url", "image_url": {"url": media}})):
        assert words in refusal(reply)
    assert not fake.requests


@pytest.mark.parametrize("media", [12, ["data:image/png;base64,AA=="], {"url": "x"}, ""])
def test_media_input_that_is_not_a_string_is_a_400(server: ServerProcess, fake: FakeProvider, media: Any) -> None:
    for reply in (v2_call(server, OPENAI, media), v3_call(server, OPENAI, media)):
        assert "_opper_media_input must be" in refusal(reply)
    assert not fake.requests


def test_responses_and_messages_dialects_type_their_files(server: ServerProcess, fake: FakeProvider) -> None:
    file = {"type": "input_file", "file_data": PDF_URL, "filename": "q.pdf"}
    reply = post(f"{server.url}/v3/compat/responses", {"model": OPENAI, "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "Summarise"}, file]}]})
    assert reply.status == 200, reply.body
    assert sent_parts(fake) == [{"type": "file", "file": {"file_data": PDF_URL, "filename": "q.pdf"}}]
    document = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": b64(PDF)}}
    reply = post(f"{server.url}/v3/compat/v1/messages", {"model": OPENAI, "max_tokens": 50, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Summarise"}, document]}]})
    assert reply.status == 200, reply.body
    assert sent_parts(fake) == [{"type": "file", "file": {"file_data": PDF_URL, "filename": "input.pdf"}}]
    bad = {"type": "input_file", "file_id": "file-1"}
    assert "input_file" in refusal(post(f"{server.url}/v3/compat/responses", {"model": OPENAI, "input": [
        {"role": "user", "content": [bad]}]}))


@pytest.mark.parametrize("part", [
    {"type": "input_audio", "input_audio": {"data": b64(WAV), "format": "flac"}},
    {"type": "input_audio", "input_audio": {"data": 5, "format": "wav"}},
    {"type": "input_audio", "input_audio": "x"},
    {"type": "file", "file": {"file_id": "file-123"}},
    {"type": "file", "file": {"file_data": "https://example.com/a.pdf"}},
])
def test_bad_compat_media_parts_are_a_400(server: ServerProcess, fake: FakeProvider, part: dict[str, Any]) -> None:
    refusal(compat(server, "openai/gpt-4o-audio-preview", part))
    assert not fake.requests


# ---- spans


def test_spans_keep_media_as_a_digest(server: ServerProcess, fake: FakeProvider) -> None:
    big_png = PNG + bytes(4096)
    reply = v2_call(server, OPENAI, data_url("image/png", big_png))
    assert reply.status == 200, reply.body
    span_url = f"{server.url}/v3/spans/{reply.json()['span_id']}"
    assert wait_until(lambda: get(span_url).status == 200)
    span = get(span_url).json()["data"]
    stored = str(span)
    assert b64(big_png)[:200] not in stored
    assert span["input"]["_opper_media_input"] == {"media_type": "image/png", "bytes": len(big_png),
                                                   "sha256": hashlib.sha256(big_png).hexdigest()}
    assert span["input"]["question"] == "what is it?"
    assert sent_parts(fake)[0]["image_url"]["url"] == data_url("image/png", big_png)  # the provider gets it whole
