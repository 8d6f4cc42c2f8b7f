"""The v3 dialect's route table (opperai 2.x): every v3 operation, `/health` and the server's own
OpenAPI document.

Each module of `taskgate/api/v3/` keeps its operations in an `OPERATIONS` table next to its
handlers; `ROUTES` joins them, so the routes served and the document published come from the same
list. An `Operation` is the v3 form of a route table entry: its method, path and handler, plus the
schemas the router checks requests against and the document publishes.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import yaml
from starlette.responses import Response
from starlette.routing import BaseRoute

from taskgate import __version__
from taskgate.api.body_schemas import OBJECT, STRING, obj
from taskgate.api.v3 import calls as v3_calls
from taskgate.api.v3 import examples as v3_examples
from taskgate.api.v3 import functions as v3_functions
from taskgate.api.v3 import generations as v3_generations
from taskgate.api.v3 import models as v3_models
from taskgate.api.v3 import spans as v3_spans
from taskgate.api.v3.routing import JSON, Operation, V3Request, build_routes, openapi_document
from taskgate.server.request_io import JSONResponse, dumps

if TYPE_CHECKING:
    from taskgate.context import AppContext


async def health(req: V3Request) -> Response:
    """Liveness: 200 while the server runs, `degraded` while the store fails (telemetry/health_report.py)."""
    return JSONResponse(await req.ctx.health.liveness())


async def ready(req: V3Request) -> Response:
    """Readiness: 503 when this replica cannot take calls (its span journal has no room)."""
    accepting, body = await req.ctx.health.readiness()
    return JSONResponse(body, status_code=200 if accepting else 503)


async def openapi_json(req: V3Request) -> Response:
    return Response(_openapi_json_bytes(), media_type=JSON)


async def openapi_yaml(req: V3Request) -> Response:
    """The same document as YAML, the form Opper publishes its own spec in."""
    return Response(_openapi_yaml_text(), media_type=YAML)


@functools.cache
def _document() -> dict[str, Any]:
    """Built once: the table never changes while the server runs."""
    return openapi_document(ROUTES, __version__)


@functools.cache
def _openapi_json_bytes() -> bytes:
    return dumps(_document())


@functools.cache
def _openapi_yaml_text() -> str:
    """Rendered once: rendering takes tens of milliseconds of the event loop (an endpoint without
    auth must not cost that each time)."""
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(_document(), Dumper=dumper, sort_keys=False, allow_unicode=True)


YAML = "application/yaml"
_OPENAPI_DOCUMENT = obj({"openapi": STRING, "info": OBJECT, "paths": OBJECT, "components": OBJECT},
                        required=("openapi", "info", "paths", "components"), title="OpenAPIDocument")
_SYSTEM = ("system",)
_COUNT = {"type": "integer", "minimum": 0}
_HEALTH = obj({"status": {"type": "string", "enum": ["ok", "degraded"]},
               "store": {"type": "string", "enum": ["failing"]}, "unstored_spans": _COUNT},
              required=("status",), title="Health")
_READY = obj({"status": {"type": "string", "enum": ["ready", "not_ready"]},
              "store": {"type": "string", "enum": ["ok", "failing"]},
              "journal": obj({"state": {"type": "string", "enum": ["ok", "full"]}, "unstored_spans": _COUNT,
                              "bytes": _COUNT, "max_bytes": _COUNT, "failed_appends": _COUNT},
                             required=("state", "unstored_spans", "bytes", "max_bytes", "failed_appends"))},
             required=("status", "store", "journal"), title="Readiness")
ROUTES: list[Operation] = [
    Operation("GET", "/health", "Health check", health, {JSON: _HEALTH}, auth=False, tags=_SYSTEM),
    Operation("GET", "/ready", "Readiness check", ready, {JSON: _READY}, auth=False, tags=_SYSTEM),
    Operation("GET", "/v3/openapi.json", "This server's OpenAPI document", openapi_json, {JSON: _OPENAPI_DOCUMENT},
              auth=False, tags=_SYSTEM),
    Operation("GET", "/v3/openapi.yaml", "This server's OpenAPI document, as YAML", openapi_yaml,
              {YAML: _OPENAPI_DOCUMENT}, auth=False, tags=_SYSTEM),
    *v3_calls.OPERATIONS,
    *v3_functions.OPERATIONS,
    *v3_examples.OPERATIONS,
    *v3_spans.OPERATIONS,
    *v3_models.OPERATIONS,
    *v3_generations.OPERATIONS,
]


def routes(ctx: AppContext) -> list[BaseRoute]:
    return build_routes(ctx, ROUTES)
