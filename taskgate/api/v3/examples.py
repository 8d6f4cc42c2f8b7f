"""v3 per-function few-shot examples (`/v3/functions/{name}/examples`).

Adding examples to a function that does not exist yet creates it with the default prompt, so a
caller can seed demonstrations before the first call. The examples closest to a call's input are
then shown to the model (see `taskgate.engine.fewshot`).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from taskgate.api.body_schemas import ANY, STRING, JsonSchema, array, nullable, obj
from taskgate.api.v3.functions import require_function
from taskgate.api.v3.routing import JSON, OFFSET, Operation, Param, V3Request, limit_param
from taskgate.api.v3.run_shapes import FUNCTION_NAME, function_name
from taskgate.errors import NotFoundError
from taskgate.ids import new_id
from taskgate.server.request_io import JSONResponse
from taskgate.store.base import ExampleRecord

MAX_BATCH = 1000
MAX_TAG_CHARS = 100  # the width of the store's column
_TAG = "A label to pick examples by, e.g. train, test or golden"
EXAMPLE_INPUT: JsonSchema = obj({
    "input": {"description": "An input the function might get: any JSON value"},
    "output": {"description": "The answer it should give"},
    "tag": nullable({**STRING, "maxLength": MAX_TAG_CHARS, "description": _TAG}),
    "comment": nullable(STRING),
}, required=("input", "output"), title="ExampleInput")
EXAMPLE: JsonSchema = obj({"uuid": STRING, "input": ANY, "output": ANY, "tag": nullable(STRING)},
                          required=("uuid", "input", "output", "tag"), title="Example")


def example_body(record: ExampleRecord) -> dict[str, Any]:
    return {"uuid": record.id, "input": record.input, "output": record.output, "tag": record.tag}


def _example(value: dict[str, Any], function_id: str) -> ExampleRecord:
    """An example from a body that has passed EXAMPLE_INPUT."""
    return ExampleRecord(id=new_id(), function_id=function_id, input=value["input"], output=value["output"],
                         tag=value.get("tag"), comment=value.get("comment"))


async def list_examples(req: V3Request) -> Response:
    record = await require_function(req)
    examples = await req.ctx.engine.examples.page(req.project_id, record.id, req.query["limit"],
                                                  req.query["offset"], req.query["tag"])
    return JSONResponse({"examples": [example_body(example) for example in examples]})


async def _add(req: V3Request, items: list[dict[str, Any]]) -> list[ExampleRecord]:
    """Store examples from bodies that have passed EXAMPLE_INPUT, creating the function if new."""
    engine = req.ctx.engine
    record = await engine.functions.get_or_create(req.project_id, function_name(req.params["name"]))
    return await engine.examples.add(req.project_id, record.id, [_example(item, record.id) for item in items])


async def create_example(req: V3Request) -> Response:
    return JSONResponse(example_body((await _add(req, [req.body]))[0]))


async def create_examples_batch(req: V3Request) -> Response:
    return JSONResponse([example_body(example) for example in await _add(req, req.body)])


async def delete_example(req: V3Request) -> Response:
    record = await require_function(req)
    example_id = req.params["uuid"]
    if not await req.ctx.engine.examples.delete(req.project_id, record.id, example_id):
        raise NotFoundError(f"function '{record.name}' has no example '{example_id}'")
    return Response(status_code=204)


_TAGS = ("examples",)
_NAMED = (FUNCTION_NAME,)
OPERATIONS = [
    Operation("GET", "/v3/functions/{name}/examples", "List few-shot examples", list_examples,
              {JSON: obj({"examples": array(EXAMPLE)}, required=("examples",))}, path_params=_NAMED,
              query=(limit_param(50, 200), OFFSET, Param("tag", STRING, "Only the examples with this tag")),
              tags=_TAGS),
    Operation("POST", "/v3/functions/{name}/examples", "Add a few-shot example (creates the function if new)",
              create_example, {JSON: EXAMPLE}, path_params=_NAMED, request=EXAMPLE_INPUT, tags=_TAGS),
    Operation("POST", "/v3/functions/{name}/examples/batch", "Add few-shot examples (creates the function if new)",
              create_examples_batch, {JSON: array(EXAMPLE)}, path_params=_NAMED,
              request=array(EXAMPLE_INPUT, minItems=1, maxItems=MAX_BATCH), tags=_TAGS),
    Operation("DELETE", "/v3/functions/{name}/examples/{uuid}", "Delete a few-shot example", delete_example, {},
              status=204, path_params=(FUNCTION_NAME, Param("uuid", STRING, "The example's id")), tags=_TAGS),
]
