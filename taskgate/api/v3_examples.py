"""v3 per-function few-shot examples (`/v3/functions/{name}/examples`).

Adding examples to a function that does not exist yet creates it with the default prompt, so a
caller can seed demonstrations before the first call. The examples closest to a call's input are
then shown to the model (see `taskgate.engine.fewshot`).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from taskgate.api.fields import optional
from taskgate.api.http import JSONResponse, query_int, read_json, read_json_object
from taskgate.api.v3_functions import require_function
from taskgate.api.v3_routing import Operation, V3Request
from taskgate.api.v3_shapes import function_name
from taskgate.engine.task import DEFAULT_INSTRUCTIONS
from taskgate.errors import BadRequestError, NotFoundError
from taskgate.ids import new_id
from taskgate.store.base import ExampleRecord, FunctionDefinition, FunctionRecord

MAX_BATCH = 1000
MAX_TAG_CHARS = 100  # the width of the store's column


def example_body(record: ExampleRecord) -> dict[str, Any]:
    return {"uuid": record.id, "input": record.input, "output": record.output, "tag": record.tag}


def _example(value: Any, function_id: str, where: str) -> ExampleRecord:
    if not isinstance(value, dict):
        raise BadRequestError(f"{where} must be an object {{input, output, tag?}}")
    for key in ("input", "output"):
        if key not in value:
            raise BadRequestError(f"{where}.{key} is required")
    tag = optional(value, "tag", str, "a string", name=f"{where}.tag")
    if tag is not None and len(tag) > MAX_TAG_CHARS:
        raise BadRequestError(f"{where}.tag must be at most {MAX_TAG_CHARS} characters")
    comment = optional(value, "comment", str, "a string", name=f"{where}.comment")
    return ExampleRecord(id=new_id(), function_id=function_id, input=value["input"],
                         output=value["output"], tag=tag, comment=comment)


async def _function_for_writing(req: V3Request) -> FunctionRecord:
    name = function_name(req.params["name"])
    record = await req.ctx.store.get_function(req.project_id, name)
    if record is None:
        record = await req.ctx.store.upsert_function(req.project_id, name,
                                                     FunctionDefinition(instructions=DEFAULT_INSTRUCTIONS))
    return record


async def list_examples(req: V3Request) -> Response:
    limit = query_int(req.request, "limit", 50, minimum=1, maximum=200)
    offset = query_int(req.request, "offset", 0)
    tag = req.request.query_params.get("tag") or None
    record = await require_function(req)
    examples = await req.ctx.store.list_examples(req.project_id, record.id, limit=limit, offset=offset, tag=tag)
    return JSONResponse({"examples": [example_body(example) for example in examples]})


async def create_example(req: V3Request) -> Response:
    body = await read_json_object(req.request, req.ctx.settings.max_body_bytes)
    record = await _function_for_writing(req)
    stored = await req.ctx.store.add_examples(req.project_id, record.id, [_example(body, record.id, "the body")])
    req.ctx.engine.examples.changed(record.id)
    return JSONResponse(example_body(stored[0]))


async def create_examples_batch(req: V3Request) -> Response:
    body = await read_json(req.request, req.ctx.settings.max_body_bytes)
    if not isinstance(body, list) or not body:
        raise BadRequestError("the body must be a non-empty JSON array of {input, output, tag?} objects")
    if len(body) > MAX_BATCH:
        raise BadRequestError(f"at most {MAX_BATCH} examples per batch, got {len(body)}")
    record = await _function_for_writing(req)
    examples = [_example(item, record.id, f"[{position}]") for position, item in enumerate(body)]
    stored = await req.ctx.store.add_examples(req.project_id, record.id, examples)
    req.ctx.engine.examples.changed(record.id)
    return JSONResponse([example_body(example) for example in stored])


async def delete_example(req: V3Request) -> Response:
    record = await require_function(req)
    example_id = req.params["uuid"]
    if not await req.ctx.store.delete_example(req.project_id, record.id, example_id):
        raise NotFoundError(f"function '{record.name}' has no example '{example_id}'")
    return Response(status_code=204)


_TAGS = ("examples",)
OPERATIONS = [
    Operation("GET", "/v3/functions/{name}/examples", "List few-shot examples", list_examples,
              query=("limit", "offset", "tag"), tags=_TAGS),
    Operation("POST", "/v3/functions/{name}/examples", "Add a few-shot example", create_example,
              body="{input, output, tag?}", tags=_TAGS),
    Operation("POST", "/v3/functions/{name}/examples/batch", "Add few-shot examples", create_examples_batch,
              body="a JSON array of {input, output, tag?}", tags=_TAGS),
    Operation("DELETE", "/v3/functions/{name}/examples/{uuid}", "Delete a few-shot example", delete_example,
              status=204, tags=_TAGS),
]
