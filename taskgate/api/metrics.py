"""`GET /metrics`: the Prometheus text exposition (`taskgate.telemetry.metrics`), behind an API key
unless TASKGATE_METRICS_PUBLIC=1. Any project's key opens it: the figures are the server's, summed
over projects, and name no project, function or content."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from taskgate.server.auth import Authenticator
from taskgate.server.request_io import guarded
from taskgate.telemetry.metrics import Metrics

METRICS_PATH = "/metrics"


def routes(metrics: Metrics | None, auth: Authenticator, public: bool) -> list[BaseRoute]:
    """The endpoint; none when metrics are off (TASKGATE_METRICS=0), so /metrics is a 404."""
    if metrics is None:
        return []

    async def serve_metrics(request: Request) -> Response:
        if not public:
            await auth.project_for(request)
        return Response(await metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return [Route(METRICS_PATH, guarded(serve_metrics), methods=["GET"], name="metrics")]
