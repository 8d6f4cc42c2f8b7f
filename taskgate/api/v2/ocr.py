"""`POST /v2/ocr` and `GET /v2/ocr/models` (opperai 1.7.2 `ocr.process_ocr_ocr_post` and
`ocr.list_ocr_models_ocr_models_get`).

The OCRDocument is read into the engine's `OcrDocument` (base64 or a base64 data URL, under `content`,
`image_url` or `document_url` as its `type` says); the engine reads it with a vision model as a
task. Remote URLs are not fetched (a server that fetches what callers name is a proxy into its own
network), and embedded images are not extracted: `include_image_base64`, `image_limit`,
`image_min_size` and `mistral_extra` are refused when set rather than ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from taskgate.api.openai.chat_request import header_name, header_parent
from taskgate.api.request_fields import optional
from taskgate.api.v2.single_model import cost_body, listed_models, model_name
from taskgate.engine.ocr import DEFAULT_OCR_NAME, OcrDocument, OcrTask, media_type_of_name
from taskgate.errors import BadRequestError
from taskgate.server.disconnect import until_client_leaves
from taskgate.server.request_io import JSONResponse, header_map, read_json_object

if TYPE_CHECKING:
    from taskgate.context import AppContext

SOURCE_FIELDS = {"base64": "content", "image_url": "image_url", "document_url": "document_url"}
UNSUPPORTED = ("image_limit", "image_min_size", "mistral_extra")
MAX_PAGES = 10_000


def _document(ctx: AppContext, raw: Any) -> OcrDocument:
    if not isinstance(raw, dict):
        raise BadRequestError("document must be an object {type, content | image_url | document_url}")
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in SOURCE_FIELDS:
        raise BadRequestError(f"document.type must be one of {', '.join(SOURCE_FIELDS)}")
    source = SOURCE_FIELDS[kind]
    for other in set(SOURCE_FIELDS.values()) - {source}:
        if raw.get(other) is not None:
            raise BadRequestError(f"document.{other} does not go with type '{kind}'; use document.{source}")
    value = optional(raw, source, str, "a string", name=f"document.{source}")
    if not value:
        raise BadRequestError(f"document.{source} is required with type '{kind}'")
    if value.startswith(("http://", "https://")):
        raise BadRequestError("remote documents are not fetched: send the document as base64 or a base64 data URL")
    if kind != "base64" and not value.startswith("data:"):
        raise BadRequestError(f"document.{source} must be a base64 data URL")
    name = optional(raw, "document_name", str, "a string", name="document.document_name")
    return ctx.engine.ocr.document(value, media_type_of_name(name))


def _pages(raw: Any) -> list[int] | None:
    if raw is None:
        return None
    if (not isinstance(raw, list) or len(raw) > MAX_PAGES
            or not all(isinstance(page, int) and not isinstance(page, bool) and 0 <= page < MAX_PAGES
                       for page in raw)):
        raise BadRequestError(f"pages must be an array of at most {MAX_PAGES} page indices from 0 to {MAX_PAGES - 1}")
    return raw


async def process(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    body = await read_json_object(request, ctx.settings.max_body_bytes)
    model = model_name(body, "openai/gpt-4o-mini")
    if optional(body, "include_image_base64", bool, "a boolean"):
        raise BadRequestError("'include_image_base64' is not supported: embedded images are not extracted")
    for key in UNSUPPORTED:
        if body.get(key) is not None:
            raise BadRequestError(f"'{key}' is not supported: embedded images are not extracted, "
                                  "and no Mistral OCR options apply")
    document = _document(ctx, body.get("document"))
    headers = header_map(request)
    task = OcrTask(project_id=project_id, model=model, document=document, pages=_pages(body.get("pages")),
                   name=header_name(headers, DEFAULT_OCR_NAME), parent_span_id=header_parent(headers))
    result = await until_client_leaves(request, ctx.engine.ocr.read(task))
    call = result.call
    return JSONResponse({
        "id": call.span_id,
        "pages": [{**page, "dimensions": None, "images": []} for page in result.pages],
        "model": call.model,
        "usage_info": {"pages_processed": len(result.pages), "doc_size_bytes": document.size},
        "cost": cost_body(call.cost),
    })


async def list_models(ctx: AppContext, request: Request) -> Response:
    await ctx.auth.project_for(request)
    return listed_models(ctx, request, ctx.engine.ocr.limits.models, "cost_per_page")
