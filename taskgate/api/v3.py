"""The v3 Task API (opperai 2.x): every v3 operation, `/health` and the server's own OpenAPI document.

Each `v3_*` module keeps its operations in an `OPERATIONS` table next to its handlers; this module
joins the tables, so the routes served and the document published come from the same list.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import yaml
from starlette.responses import Response
from starlette.routing import BaseRoute

from taskgate import __version__
from taskgate.api import v3_calls, v3_examples, v3_functions, v3_models, v3_spans
from taskgate.api.http import JSONResponse
from taskgate.api.v3_routing import Operation, V3Request, build_routes, openapi_document

if TYPE_CHECKING:
    from taskgate.context import AppContext


async def health(req: V3Request) -> Response:
    return JSONResponse({"status": "ok"})


async def openapi_json(req: V3Request) -> Response:
    return JSONResponse(openapi_document(OPERATIONS, __version__))


async def openapi_yaml(req: V3Request) -> Response:
    """The same document as YAML, the form Opper publishes its own spec in."""
    return Response(_openapi_yaml_text(), media_type="application/yaml")


@functools.cache
def _openapi_yaml_text() -> str:
    """Rendered once: the document never changes while the server runs, and rendering it takes
    tens of milliseconds of the event loop (an endpoint without auth must not cost that each time)."""
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(openapi_document(OPERATIONS, __version__), Dumper=dumper, sort_keys=False, allow_unicode=True)


OPERATIONS: list[Operation] = [
    Operation("GET", "/health", "Health check", health, auth=False, tags=("system",)),
    Operation("GET", "/v3/openapi.json", "This server's OpenAPI document", openapi_json, auth=False,
              tags=("system",)),
    Operation("GET", "/v3/openapi.yaml", "This server's OpenAPI document, as YAML", openapi_yaml, auth=False,
              tags=("system",)),
    *v3_calls.OPERATIONS,
    *v3_functions.OPERATIONS,
    *v3_examples.OPERATIONS,
    *v3_spans.OPERATIONS,
    *v3_models.OPERATIONS,
]


def routes(ctx: AppContext) -> list[BaseRoute]:
    return build_routes(ctx, OPERATIONS)
