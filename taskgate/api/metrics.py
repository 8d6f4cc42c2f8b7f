"""`GET /metrics`: the Prometheus text exposition (`taskgate.telemetry.metrics`), behind an API key
unless TASKGATE_METRICS_PUBLIC=1; `?name[]=` picks samples, as prometheus-client's own handler does.
Any project's key opens it: the figures are the server's, summed over projects, and name no
project, function or content."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from taskgate.errors import BadRequestError
from taskgate.server.auth import Authenticator
from taskgate.server.request_io import guarded
from taskgate.telemetry.metrics import Metrics

METRICS_PATH = "/metrics"
NAME_PARAM = "name[]"
MAX_NAMES = 100
MAX_NAME_CHARS = 200


def routes(metrics: Metrics | None, auth: Authenticator, public: bool) -> list[BaseRoute]:
    """The endpoint; none when metrics are off (TASKGATE_METRICS=0), so /metrics is a 404."""
    if metrics is None:
        return []

    async def serve_metrics(request: Request) -> Response:
        if not public:
            await auth.project_for(request)
        return Response(await metrics.render(_names(request)), media_type=CONTENT_TYPE_LATEST)

    return [Route(METRICS_PATH, guarded(serve_metrics), methods=["GET"], name="metrics")]


def _names(request: Request) -> list[str] | None:
    """The samples `?name[]=` asks for (none: all); any other parameter is a 400, not ignored."""
    params = request.query_params
    unknown = sorted(set(params.keys()) - {NAME_PARAM})
    if unknown:
        shown = ", ".join(name[:40] for name in unknown[:5])
        raise BadRequestError(f"GET /metrics takes only '{NAME_PARAM}' (a sample name, repeatable); got {shown}")
    names = params.getlist(NAME_PARAM)
    if len(names) > MAX_NAMES or any(not 0 < len(name) <= MAX_NAME_CHARS for name in names):
        raise BadRequestError(f"'{NAME_PARAM}' takes at most {MAX_NAMES} sample names of 1 to {MAX_NAME_CHARS} "
                              "characters each")
    return names or None
