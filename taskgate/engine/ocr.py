"""OCR as a task: text and layout of an image or PDF, read by a vision model through the engine.

There is no OCR loop of its own: a document becomes a `Task` with a fixed extraction prompt and a
fixed output schema (pages of Markdown), and `Engine.run` does the rest as for any call: the model
chain and fallback, structured output, validation and re-asking, the price and the span. What is
checked here is the document: its base64, its media type (the bytes must be what they claim to be)
and its size (`OcrLimits.max_bytes`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from taskgate.config import DEFAULT_OCR_MAX_BYTES, DEFAULT_OCR_MODELS
from taskgate.engine.task import ModelChoice, Result, Task
from taskgate.errors import BadRequestError

DEFAULT_OCR_NAME = "ocr"
PDF = "application/pdf"
# The media a vision model reads, by the bytes each starts with (WebP: "RIFF", a size, then "WEBP").
SIGNATURES: tuple[tuple[str, bytes, int], ...] = (
    ("image/png", b"\x89PNG\r\n\x1a\n", 0),
    ("image/jpeg", b"\xff\xd8\xff", 0),
    ("image/gif", b"GIF87a", 0),
    ("image/gif", b"GIF89a", 0),
    ("image/webp", b"WEBP", 8),
    (PDF, b"%PDF-", 0),
)
MEDIA_TYPES = tuple(dict.fromkeys(media for media, _, _ in SIGNATURES))
EXTENSIONS = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
              "webp": "image/webp", "pdf": PDF}

INSTRUCTIONS = (
    "You are an OCR engine. Transcribe all the text of the attached document exactly as it is written, "
    "in reading order, as Markdown that keeps its layout: headings as headings, lists as lists, tables as "
    "Markdown tables, paragraphs separated by blank lines. Do not summarise, translate, correct or add "
    "anything. Give one entry per page with its 0-based page index (an image is one page, index 0). If the "
    "input lists `pages`, give only those pages. A page without text has empty markdown."
)


@dataclass(frozen=True, slots=True)
class OcrLimits:
    """TASKGATE_OCR_MAX_BYTES, and the vision models `GET /v2/ocr/models` lists (TASKGATE_OCR_MODELS)."""

    max_bytes: int = DEFAULT_OCR_MAX_BYTES
    models: tuple[str, ...] = DEFAULT_OCR_MODELS


@dataclass(frozen=True, slots=True)
class OcrDocument:
    media_type: str  # one of MEDIA_TYPES, checked against the bytes
    encoded: str  # the bytes in base64, as the model is sent them
    size: int  # bytes

    @property
    def data_url(self) -> str:
        return f"data:{self.media_type};base64,{self.encoded}"


@dataclass(slots=True)
class OcrTask:
    project_id: str
    model: str
    document: OcrDocument
    pages: list[int] | None = None  # 0-based; None: every page
    tags: dict[str, Any] = field(default_factory=dict)
    name: str = DEFAULT_OCR_NAME
    parent_span_id: str | None = None


@dataclass(slots=True)
class OcrResult:
    pages: list[dict[str, Any]]  # [{index, markdown}], by index
    call: Result  # the engine's result: span, trace, model, usage, cost


class OcrService:
    def __init__(self, run: Callable[[Task], Awaitable[Result]], limits: OcrLimits) -> None:
        self._run = run
        self.limits = limits

    def document(self, content: str, declared: str | None) -> OcrDocument:
        """A document from base64 (or a base64 data URL, whose media type is then `declared` too):
        malformed base64, a type other than the bytes' own, an unreadable type or too many bytes is a 400."""
        declared, payload = _split_data_url(content, declared)
        compact = "".join(payload.split())
        if len(compact) // 4 * 3 > self.limits.max_bytes:  # refused before anything is decoded
            raise BadRequestError(f"the document is larger than {self.limits.max_bytes} bytes (TASKGATE_OCR_MAX_BYTES)")
        try:
            if len(compact) % 4:  # b64decode lets stray padding pass
                raise ValueError("not a whole number of base64 quads")
            data = base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequestError("the document is not valid base64") from None
        if not data:
            raise BadRequestError("the document is empty")
        if len(data) > self.limits.max_bytes:
            raise BadRequestError(f"the document is larger than {self.limits.max_bytes} bytes (TASKGATE_OCR_MAX_BYTES)")
        actual = _sniff(data)
        if actual is None:
            raise BadRequestError(f"the document is none of the types OCR reads: {', '.join(MEDIA_TYPES)}")
        if declared is not None and declared != actual:
            raise BadRequestError(f"the document is declared as '{declared[:100]}' but its content is {actual}")
        return OcrDocument(media_type=actual, encoded=base64.b64encode(data).decode(), size=len(data))

    async def read(self, task: OcrTask) -> OcrResult:
        """The document's pages as Markdown, from one engine call."""
        pages = _pages_asked(task)
        document: dict[str, Any] = {"_opper_media_input": task.document.data_url}
        if task.pages is not None:
            document["pages"] = pages
        result = await self._run(Task(
            project_id=task.project_id,
            function_name=task.name,
            input=document,
            instructions=INSTRUCTIONS,
            output_schema=output_schema(pages),
            models=[ModelChoice(task.model)],
            tags=task.tags,
            parent_span_id=task.parent_span_id,
            span_type="ocr",
            record_function=False,
        ))
        found: dict[int, str] = {}
        for page in result.payload["pages"]:
            found.setdefault(page["index"], page["markdown"])  # a page given twice: its first reading
        return OcrResult(pages=[{"index": index, "markdown": found[index]} for index in sorted(found)], call=result)


def output_schema(pages: list[int] | None) -> dict[str, Any]:
    """Pages of Markdown; with the pages asked for known, an index can only be one of them."""
    index: dict[str, Any] = {"type": "integer", "minimum": 0}
    if pages is not None:
        index = {"type": "integer", "enum": pages}
    return {
        "type": "object",
        "properties": {
            "pages": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {"index": index, "markdown": {"type": "string"}},
                    "required": ["index", "markdown"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["pages"],
        "additionalProperties": False,
    }


def media_type_of_name(name: str | None) -> str | None:
    """The media type a document name's extension claims, if it names one we know."""
    if not name or "." not in name:
        return None
    return EXTENSIONS.get(name.rsplit(".", 1)[1].lower())


def _pages_asked(task: OcrTask) -> list[int] | None:
    if task.document.media_type != PDF:
        if task.pages not in (None, [0]):
            raise BadRequestError("an image has one page, index 0: pages may only be [0]")
        return [0]
    if task.pages is None:
        return None
    if not task.pages:
        raise BadRequestError("pages must list at least one page index, or be left out for every page")
    return sorted(set(task.pages))


def _split_data_url(content: str, declared: str | None) -> tuple[str | None, str]:
    if not content.startswith("data:"):
        return declared, content
    head, sep, payload = content.partition(",")
    media, _, encoding = head[5:].partition(";")
    if not sep or encoding.lower() != "base64":
        raise BadRequestError("a data URL document must be base64: 'data:<media type>;base64,<data>'")
    media = media.strip().lower()
    if declared is not None and media != declared:
        raise BadRequestError(f"the data URL's media type '{media[:100]}' is not the declared '{declared[:100]}'")
    return media, payload


def _sniff(data: bytes) -> str | None:
    for media, signature, offset in SIGNATURES:
        if data[offset:offset + len(signature)] == signature and (media != "image/webp" or data[:4] == b"RIFF"):
            return media
    return None
