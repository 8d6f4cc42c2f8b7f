"""v2 knowledge-base files (spec §2.1, §7.5): upload URLs on Taskgate itself, registering and
uploading files, listing, download URLs and deleting. Behaviour is the engine's
(`engine.knowledge.files`); this reads the requests and shapes the answers.

The upload and download URLs carry a signed, expiring token instead of an API key (as a cloud
store's presigned URLs do). An upload URL takes the bytes as a raw PUT body, or as a POST of a
multipart form whose `file` part holds them (the presigned-POST shape `{url, fields}` describes).
Every body, multipart ones too, is read under TASKGATE_MAX_BODY_BYTES before it is parsed (413).
The multipart chunking fields are read in both spellings: v2's `text_processing.chunk_size` and
2.1.1's `chunkSize` (the same for the overlap).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message

from taskgate.api.request_fields import identifier, optional, stored_id
from taskgate.api.v2.knowledge import chunking_of
from taskgate.api.v2.paging import page_of, paged
from taskgate.engine.knowledge.file_urls import URL_SECONDS
from taskgate.engine.knowledge.files import NewFile
from taskgate.errors import BadRequestError, UnsupportedMediaTypeError
from taskgate.server.request_io import JSONResponse, read_body, read_json_object
from taskgate.store.knowledge_records import FileRecord

if TYPE_CHECKING:
    from taskgate.context import AppContext

MAX_FORM_FIELDS = 20
MAX_FIELD_BYTES = 1024 * 1024
MAX_CONTENT_TYPE_CHARS = 200
_CHUNK_FIELDS = {"chunk_size": ("text_processing.chunk_size", "chunkSize"),
                 "chunk_overlap": ("text_processing.chunk_overlap", "chunkOverlap")}


def _ids(request: Request) -> tuple[str, str]:
    return (stored_id(request.path_params["knowledge_base_id"], "knowledge base"),
            stored_id(request.path_params["file_id"], "file"))


def _file_body(record: FileRecord) -> dict[str, Any]:
    """What register_file and upload answer (201)."""
    return {"id": record.id, "key": record.id, "original_filename": record.original_filename,
            "document_id": record.number, "metadata": record.metadata}


def _listed(record: FileRecord) -> dict[str, Any]:
    return {"id": record.id, "original_filename": record.original_filename, "size": record.size,
            "status": record.status, "error": record.error, "document_id": record.number,
            "metadata": record.metadata}


def _file_url(request: Request, base_id: str, file_id: str, token: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/v2/knowledge/{base_id}/files/{file_id}/content?token={token}"


def _token(request: Request) -> str:
    token = request.query_params.get("token", "")
    if not token or len(token) > 500:
        raise BadRequestError("the file URL has no valid 'token': use the URL Taskgate gave as it is")
    return token


async def _form(ctx: AppContext, request: Request) -> FormData:
    """The multipart form, its whole body read under the body limit first."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise UnsupportedMediaTypeError("the body must be multipart/form-data")
    body = await read_body(request, ctx.settings.max_body_bytes)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        return await Request(request.scope, replay).form(max_files=1, max_fields=MAX_FORM_FIELDS,
                                                         max_part_size=MAX_FIELD_BYTES)
    except MultiPartException as exc:
        raise BadRequestError(f"the multipart body cannot be read: {exc.message}") from None


def _form_chunking(form: FormData) -> dict[str, int]:
    settings: dict[str, int] = {}
    for key, names in _CHUNK_FIELDS.items():
        for name in names:
            value = form.get(name)
            if value is None:
                continue
            if not isinstance(value, str) or not value.strip().isdigit() or len(value.strip()) > 9:
                raise BadRequestError(f"'{name}' must be a non-negative integer, got {str(value)[:40]!r}")
            settings[key] = int(value)
    return settings


def _form_metadata(form: FormData) -> dict[str, Any]:
    raw = form.get("metadata")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    if not isinstance(raw, str):
        raise BadRequestError("'metadata' must be a JSON object as text")
    try:
        metadata = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequestError("'metadata' must be a JSON object as text") from None
    if not isinstance(metadata, dict):
        raise BadRequestError("'metadata' must be a JSON object as text")
    return metadata


async def upload_url(ctx: AppContext, request: Request) -> Response:
    """`{url, fields, id}`: the URL takes the file's bytes for 15 minutes; then register_file with `id`."""
    project_id = await ctx.auth.project_for(request)
    base_id = stored_id(request.path_params["knowledge_base_id"], "knowledge base")
    filename = request.query_params.get("filename")
    if filename is None:
        raise BadRequestError("the query parameter 'filename' is required")
    record, token = await ctx.engine.knowledge_files.reserve(project_id, base_id, filename)
    return JSONResponse({"url": _file_url(request, base_id, record.id, token), "fields": {}, "id": record.id})


async def put_content(ctx: AppContext, request: Request) -> Response:
    """The bytes sent to an upload URL: a raw PUT body, or a multipart POST's `file` part. 204."""
    base_id, file_id = _ids(request)
    token = _token(request)
    if request.method == "POST":
        upload = (await _form(ctx, request)).get("file")
        if not isinstance(upload, UploadFile):
            raise BadRequestError("the multipart form must hold the file in the part 'file'")
        content = await upload.read()
    else:
        content = await read_body(request, ctx.settings.max_body_bytes)
    await ctx.engine.knowledge_files.receive(token, base_id, file_id, content)
    return Response(status_code=204)


async def register_file(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    base_id = stored_id(request.path_params["knowledge_base_id"], "knowledge base")
    body = await read_json_object(request, ctx.settings.max_body_bytes)
    fields = {key: optional(body, key, str, "a string") for key in ("filename", "file_id", "content_type")}
    missing = [key for key, value in fields.items() if value is None]
    if missing:
        raise BadRequestError(f"{', '.join(repr(key) for key in missing)} required")
    file_id = stored_id(fields["file_id"], "file")
    content_type = identifier(fields["content_type"], "'content_type'", MAX_CONTENT_TYPE_CHARS)
    new = NewFile(filename=fields["filename"], content_type=content_type,
                  metadata=optional(body, "metadata", dict, "an object or null") or {},
                  chunking=chunking_of(body.get("configuration")))
    record = await ctx.engine.knowledge_files.register(project_id, base_id, file_id, new)
    return JSONResponse(_file_body(record), status_code=201)


async def upload(ctx: AppContext, request: Request) -> Response:
    """A multipart upload: `file`, the chunking fields and `metadata` (a JSON object as text). 201;
    the file is ingested after the answer (see its `status` in the file list)."""
    project_id = await ctx.auth.project_for(request)
    base_id = stored_id(request.path_params["knowledge_base_id"], "knowledge base")
    form = await _form(ctx, request)
    part = form.get("file")
    if not isinstance(part, UploadFile) or part.filename is None:
        raise BadRequestError("the multipart form must hold the file, with its name, in the part 'file'")
    new = NewFile(filename=part.filename, content_type=part.content_type,
                  metadata=_form_metadata(form), chunking=chunking_of(_form_chunking(form)))
    record = await ctx.engine.knowledge_files.upload(project_id, base_id, new, await part.read())
    return JSONResponse(_file_body(record), status_code=201)


async def list_files(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    base_id = stored_id(request.path_params["knowledge_base_id"], "knowledge base")
    page = page_of(request)
    records, total = await ctx.engine.knowledge_files.page(project_id, base_id, page.limit, page.offset)
    return JSONResponse(paged([_listed(record) for record in records], total))


async def download_url(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    base_id, file_id = _ids(request)
    token = await ctx.engine.knowledge_files.download_token(project_id, base_id, file_id)
    return JSONResponse({"url": _file_url(request, base_id, file_id, token), "expires_in": URL_SECONDS})


async def get_content(ctx: AppContext, request: Request) -> Response:
    """The file's bytes, as an attachment under its name, for a download URL's token."""
    base_id, file_id = _ids(request)
    record, content = await ctx.engine.knowledge_files.download(_token(request), base_id, file_id)
    disposition = f"attachment; filename*=UTF-8''{quote(record.original_filename, safe='')}"
    return Response(content, media_type=record.content_type,
                    headers={"Content-Disposition": disposition, "X-Content-Type-Options": "nosniff"})


async def delete_file(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    base_id, file_id = _ids(request)
    await ctx.engine.knowledge_files.delete(project_id, base_id, file_id)
    return Response(status_code=204)
