"""`engine.media`: typing parts by their content, and the digests spans keep instead of base64."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from taskgate.engine.media import INLINE_MEDIA_CHARS, summarised, typed_messages
from taskgate.errors import BadRequestError
from tests.media_samples import PDF_URL, PNG, PNG_URL, WAV, b64, data_url

LIMIT = 1024 * 1024


def test_typed_messages_reports_the_kinds_and_leaves_text_alone() -> None:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "s"},
                {"role": "user", "content": [{"type": "text", "text": "t"},
                                             {"type": "image_url", "image_url": {"url": PNG_URL}},
                                             {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
                                             {"type": "image_url", "image_url": {"url": PDF_URL}}]}]
    typed, seen = typed_messages(messages, LIMIT)
    assert typed[0] is messages[0]
    assert [part["type"] for part in typed[1]["content"]] == ["text", "image_url", "image_url", "file"]
    assert seen.types == {"image": {"image/png", "url"}, "file": {"application/pdf"}}
    assert typed_messages([{"role": "user", "content": "plain"}], LIMIT)[1].types == {}


def test_the_limit_is_on_decoded_bytes() -> None:
    exact = PNG + bytes(100)
    part = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url("image/png", exact)}}]}
    typed_messages([part], len(exact))
    with pytest.raises(BadRequestError, match="over the"):
        typed_messages([part], len(exact) - 1)


def test_summaries_replace_long_media_only() -> None:
    big = PNG + bytes(INLINE_MEDIA_CHARS)
    audio = WAV + bytes(INLINE_MEDIA_CHARS)
    value = {"small": PNG_URL, "big": data_url("image/png", big), "text": "data: is a word" + "x" * 5000,
             "messages": [{"role": "user", "content": [
                 {"type": "input_audio", "input_audio": {"data": b64(audio), "format": "wav"}}]}]}
    out = summarised(value)
    assert out["small"] == PNG_URL and out["text"] == value["text"]
    assert out["big"] == {"media_type": "image/png", "bytes": len(big), "sha256": hashlib.sha256(big).hexdigest()}
    assert out["messages"][0]["content"][0] == {"type": "input_audio", "input_audio": {
        "media_type": "audio/wav", "bytes": len(audio), "sha256": hashlib.sha256(audio).hexdigest()}}


def test_data_url_parameters_are_allowed_and_dropped() -> None:
    named = "data:IMAGE/PNG;name=cat.png;base64," + b64(PNG)
    typed, _ = typed_messages([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": named}}]}],
                              LIMIT)
    assert typed[0]["content"][0]["image_url"]["url"] == PNG_URL
    for bad in ("data:image/png;base64;name=x," + b64(PNG), "data:image/png;name=x," + b64(PNG)):
        with pytest.raises(BadRequestError, match="base64 data URL"):
            typed_messages([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": bad}}]}], LIMIT)
