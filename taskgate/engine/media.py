"""Media in a conversation: each part checked and typed by what it is, before any provider sees it.

Callers attach media three ways: v2/v3's `_opper_media_input` data URL, and the compat dialects'
content parts (`image_url`, `input_audio`, `file`). Every data URL is decoded here once: its
base64 must be well formed, its declared type one we know, its bytes what that type says (a PNG
that starts like a PNG), and its size within the operator's limit. It then becomes the part its
kind takes in the OpenAI shape every adapter reads: an image an `image_url`, audio an
`input_audio` (wav or mp3), a PDF or text file a `file` with `file_data`. The adapters map those to
their own wire (Anthropic: `image` and `document`); which kinds a model takes is the engine's check
against `model_traits`.

Spans keep media by digest: `summarised` replaces each data URL or audio payload over
`INLINE_MEDIA_CHARS` with its type, size and sha256, so a store never fills with base64.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from taskgate.errors import BadRequestError

INLINE_MEDIA_CHARS = 1024  # a data URL or audio payload longer than this is stored as its digest
DEFAULT_MAX_MEDIA_BYTES = 5 * 1024 * 1024


def _riff(kind: bytes) -> Callable[[bytes], bool]:
    return lambda data: data[:4] == b"RIFF" and data[8:12] == kind


def _text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _mp3(data: bytes) -> bool:
    return data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0)


@dataclass(frozen=True, slots=True)
class MediaType:
    kind: str  # "image" | "audio" | "file"
    looks_right: Callable[[bytes], bool]  # whether the bytes are of this type
    audio_format: str | None = None  # OpenAI's input_audio format
    extension: str = ""


MEDIA_TYPES: dict[str, MediaType] = {
    "image/png": MediaType("image", lambda data: data.startswith(b"\x89PNG\r\n\x1a\n")),
    "image/jpeg": MediaType("image", lambda data: data.startswith(b"\xff\xd8\xff")),
    "image/gif": MediaType("image", lambda data: data[:6] in (b"GIF87a", b"GIF89a")),
    "image/webp": MediaType("image", _riff(b"WEBP")),
    "audio/wav": MediaType("audio", _riff(b"WAVE"), "wav"),
    "audio/x-wav": MediaType("audio", _riff(b"WAVE"), "wav"),
    "audio/wave": MediaType("audio", _riff(b"WAVE"), "wav"),
    "audio/mpeg": MediaType("audio", _mp3, "mp3"),
    "audio/mp3": MediaType("audio", _mp3, "mp3"),
    "application/pdf": MediaType("file", lambda data: data.startswith(b"%PDF-"), extension="pdf"),
    "text/plain": MediaType("file", _text, extension="txt"),
    "text/markdown": MediaType("file", _text, extension="md"),
    "text/csv": MediaType("file", _text, extension="csv"),
    "application/json": MediaType("file", _text, extension="json"),
}
AUDIO_FORMATS = {"wav": "audio/wav", "mp3": "audio/mpeg"}
_BASE64_DATA_URL = re.compile(r"data:[\w.+-]+/[\w.+-]+;base64,")


@dataclass(slots=True)
class MediaSeen:
    """What a conversation carries: the media types of each kind, for the model check."""

    types: dict[str, set[str]] = field(default_factory=dict)  # kind -> media types ("url" when linked)

    def add(self, kind: str, media_type: str) -> None:
        self.types.setdefault(kind, set()).add(media_type)


def typed_messages(messages: list[dict[str, Any]], max_bytes: int) -> tuple[list[dict[str, Any]], MediaSeen]:
    """`messages` with every media part checked and typed by its content (see the module doc)."""
    seen = MediaSeen()
    out = []
    for position, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(_is_media(part) for part in content):
            parts = [_typed_part(part, f"messages[{position}].content[{index}]", max_bytes, seen)
                     for index, part in enumerate(content)]
            message = {**message, "content": parts}
        out.append(message)
    return out, seen


def carries_media(messages: list[dict[str, Any]]) -> bool:
    """Whether any message has a media part: a cheap look before the costly checks, made on every
    call (plain loops: no generator frame per message)."""
    for message in messages:
        if isinstance(message, dict):
            content = message.get("content")
            if isinstance(content, list):
                for part in content:
                    if isinstance(part, dict) and part.get("type") in _MEDIA_TYPES:
                        return True
    return False


_MEDIA_TYPES = ("image_url", "input_audio", "file")  # a tuple: a part's `type` may be unhashable


def _is_media(part: Any) -> bool:
    return isinstance(part, dict) and part.get("type") in _MEDIA_TYPES


def _typed_part(part: Any, where: str, max_bytes: int, seen: MediaSeen) -> Any:
    if not _is_media(part):
        return part
    kind = part["type"]
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str) or not url:
            raise BadRequestError(f"{where} has type 'image_url' and needs image_url.url")
        if not url.startswith("data:"):
            seen.add("image", "url")
            return part
        return media_part(url, where, max_bytes, seen)
    if kind == "input_audio":
        audio = part.get("input_audio")
        audio_format = audio.get("format") if isinstance(audio, dict) else None
        data = audio.get("data") if isinstance(audio, dict) else None
        if audio_format not in AUDIO_FORMATS or not isinstance(data, str):
            raise BadRequestError(f"{where} has type 'input_audio' and needs input_audio.data (base64) and "
                                  f"input_audio.format ({' or '.join(AUDIO_FORMATS)})")
        return media_part(f"data:{AUDIO_FORMATS[audio_format]};base64,{data}", where, max_bytes, seen)
    file = part.get("file")
    file_data = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(file_data, str):
        raise BadRequestError(f"{where} has type 'file' and needs file.file_data, a base64 data URL "
                              "(file_id is not supported)")
    filename = file.get("filename") if isinstance(file, dict) else None
    return media_part(file_data, where, max_bytes, seen, filename if isinstance(filename, str) else None)


def media_part(url: str, where: str, max_bytes: int, seen: MediaSeen, filename: str | None = None) -> dict[str, Any]:
    """The content part a base64 data URL takes, after its checks; a 400 naming `where` otherwise."""
    media_type = _checked_type(url, where, max_bytes)
    spec = MEDIA_TYPES[media_type]
    seen.add(spec.kind, media_type)
    url = f"data:{media_type};base64,{url.partition(',')[2]}"  # in the one form every adapter reads
    if spec.kind == "image":
        return {"type": "image_url", "image_url": {"url": url}}
    if spec.kind == "audio":
        return {"type": "input_audio", "input_audio": {"data": url.partition(",")[2], "format": spec.audio_format}}
    return {"type": "file", "file": {"file_data": url, "filename": filename or f"input.{spec.extension}"}}


def _checked_type(url: str, where: str, max_bytes: int) -> str:
    """The media type of a data URL whose payload passed every check."""
    header, comma, payload = url.partition(",")
    fields = header[5:].split(";") if header.startswith("data:") else [""]
    media_type = fields[0]  # parameters between the type and `base64` (a name, a charset) are allowed
    if not comma or len(fields) < 2 or fields[-1] != "base64" or not media_type:
        raise BadRequestError(f"{where}: media must be a base64 data URL, 'data:<type>;base64,<data>'")
    media_type = media_type.lower()
    spec = MEDIA_TYPES.get(media_type)
    if spec is None:
        raise BadRequestError(f"{where}: media type '{media_type[:100]}' is not supported; "
                              f"supported: {', '.join(MEDIA_TYPES)}")
    if len(payload) > (max_bytes + 2) // 3 * 4 + 4:  # refused before decoding what cannot fit
        raise BadRequestError(f"{where}: the {media_type} media is over the {max_bytes} bytes this server "
                              "accepts (TASKGATE_MAX_MEDIA_BYTES)")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequestError(f"{where}: the {media_type} media is not valid base64 ({exc})") from None
    if not data:
        raise BadRequestError(f"{where}: the {media_type} media is empty")
    if len(data) > max_bytes:
        raise BadRequestError(f"{where}: the {media_type} media is {len(data)} bytes, over the {max_bytes} "
                              "this server accepts (TASKGATE_MAX_MEDIA_BYTES)")
    if not spec.looks_right(data):
        raise BadRequestError(f"{where}: the data is not {media_type}, as its data URL says it is")
    return media_type


def summarised(value: Any) -> Any:
    """`value` with every long data URL and audio payload replaced by {media_type, bytes, sha256}."""
    if isinstance(value, str):
        return _digest(value) if len(value) > INLINE_MEDIA_CHARS and _BASE64_DATA_URL.match(value) else value
    if isinstance(value, list):
        return [summarised(item) for item in value]
    if isinstance(value, dict):
        if value.get("type") == "input_audio" and isinstance(value.get("input_audio"), dict):
            audio = value["input_audio"]
            data = audio.get("data")
            if isinstance(data, str) and len(data) > INLINE_MEDIA_CHARS:
                media_type = AUDIO_FORMATS.get(str(audio.get("format")), "audio")
                return {**value, "input_audio": _digest(f"data:{media_type};base64,{data}")}
        return {key: summarised(item) for key, item in value.items()}
    return value


def _digest(url: str) -> dict[str, Any]:
    header, _, payload = url.partition(",")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        data = payload.encode()
    return {"media_type": header[5:].partition(";")[0], "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
