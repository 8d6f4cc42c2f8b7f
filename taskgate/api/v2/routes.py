"""The v2 dialect's route table (`opperai==1.7.2`).

Every path is served under `/v2` and at the root too: 1.7.2 appends the operation path to
whatever `server_url` it was given.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from taskgate.api.v2 import analytics, calls, embeddings, spans
from taskgate.server.dispatch import Endpoint, endpoint_routes

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from taskgate.context import AppContext

_UNDER_V2 = [
    Endpoint("POST", "/v2/call", calls.call),
    Endpoint("POST", "/v2/call/stream", calls.stream),
    Endpoint("POST", "/v2/spans", spans.create),
    Endpoint("GET", "/v2/spans/{span_id}", spans.get),
    Endpoint("PATCH", "/v2/spans/{span_id}", spans.update),
    Endpoint("DELETE", "/v2/spans/{span_id}", spans.delete),
    Endpoint("GET", "/v2/analytics/usage", analytics.usage),
    Endpoint("POST", "/v2/embeddings", embeddings.create),
]
ROUTES = _UNDER_V2 + [replace(entry, path=entry.path.removeprefix("/v2")) for entry in _UNDER_V2]


def routes(ctx: AppContext) -> list[BaseRoute]:
    return endpoint_routes(ctx, ROUTES)
