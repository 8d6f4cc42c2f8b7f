"""A running Taskgate server, through its public HTTP API: what `--url` / `TASKGATE_URL` reach.

Calls, functions and usage go through v2 (`/v2/call[/stream]`, `/v2/functions`, `/v2/analytics/usage`);
traces and spans through v3, whose bodies carry each span's cost, tokens and model (v2's trace has no
cost). Every failure becomes a CommandError in words: the server's own error message with its status,
or why the server could not be reached.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from taskgate.commands.console import CommandError, NotFound
from taskgate.commands.reading import UsageParams

CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
# A call may wait on re-asks and fallbacks upstream (each up to TASKGATE_REQUEST_TIMEOUT); a stream
# is kept alive by the server's heartbeats, so a silence this long means the server is gone.
CALL_TIMEOUT_S = 900.0
SHOWN_BODY_CHARS = 200


class RemoteServer:
    """One server and one key; `close()` ends its connections."""

    def __init__(self, url: str, api_key: str | None, *, transport: httpx.AsyncBaseTransport | None = None,
                 where: str | None = None) -> None:
        """`transport` replaces the network (the app run in process, `asgi_client.py`); `where` is
        what messages call the server (default: its URL)."""
        self.url = url
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(base_url=url, headers=headers, trust_env=False, transport=transport,
                                         timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S))
        self._has_key = bool(api_key)
        self._where = where or url

    @property
    def where(self) -> str:
        return self._where

    async def close(self) -> None:
        await self._client.aclose()

    # ---- reading
    async def traces(self, name: str | None, limit: int, offset: int) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "offset": offset, **({"name": name} if name else {})}
        return await self._json("GET", "/v3/traces", params=params)

    async def trace(self, trace_id: str) -> dict[str, Any]:
        body = await self._json("GET", f"/v3/traces/{quote(trace_id, safe='')}")
        body.pop("data", None)  # the same trace again, in the spec's envelope
        return body

    async def usage(self, query: UsageParams) -> list[dict[str, Any]]:
        params = {"from_date": query.start.isoformat(), "to_date": query.end.isoformat(),
                  "granularity": query.granularity, "group_by": list(query.group_by), "fields": list(query.fields)}
        body = await self._json("GET", "/v2/analytics/usage", params=params)
        if not isinstance(body, list):
            raise CommandError(f"{self.where} answered usage with something other than a list")
        return body

    async def functions(self, limit: int, offset: int) -> dict[str, Any]:
        return await self._json("GET", "/v2/functions", params={"limit": limit, "offset": offset})

    # ---- calling
    async def call(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._json("POST", "/v2/call", json=body, timeout=CALL_TIMEOUT_S)

    async def call_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The stream's chunks (`{span_id}`, then `json_path` or text deltas), as they arrive."""
        request = self._client.build_request("POST", "/v2/call/stream", content=orjson.dumps(body),
                                             headers={"Accept": "text/event-stream",
                                                      "Content-Type": "application/json"},
                                             timeout=httpx.Timeout(CALL_TIMEOUT_S, connect=CONNECT_TIMEOUT_S))
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        try:
            if response.status_code != 200:
                await response.aread()
                raise self._refusal(response)
            async for chunk in _sse_chunks(response, self.where):
                yield chunk
        except httpx.HTTPError as exc:
            raise CommandError(f"the stream from {self.where} broke off: {_reason(exc)}") from None
        finally:
            await response.aclose()

    async def trace_of_span(self, span_id: str) -> str | None:
        try:
            span = await self.span(span_id)
        except NotFound:
            return None
        return str(span["trace_id"]) if span.get("trace_id") else None

    async def span(self, span_id: str) -> dict[str, Any]:
        body = await self._json("GET", f"/v3/spans/{quote(span_id, safe='')}")
        span = body.get("data", body)
        if not isinstance(span, dict):
            raise CommandError(f"{self.where} answered span {span_id!r} with something other than an object")
        return span

    async def _json(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                    json: Any = None, timeout: float | None = None) -> Any:
        extra: dict[str, Any] = {}
        if timeout is not None:
            extra["timeout"] = httpx.Timeout(timeout, connect=CONNECT_TIMEOUT_S)
        content = orjson.dumps(json) if json is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else None
        try:
            response = await self._client.request(method, path, params=params, content=content, headers=headers,
                                                  **extra)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        if response.status_code >= 400:
            raise self._refusal(response)
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise CommandError(f"{self.url}{path} did not answer JSON (HTTP {response.status_code}): is it a "
                               "Taskgate server?") from None

    def _unreachable(self, exc: httpx.HTTPError) -> CommandError:
        if isinstance(exc, httpx.TimeoutException):
            return CommandError(f"{self.where} did not answer in time ({_reason(exc)})")
        return CommandError(f"cannot reach {self.where}: {_reason(exc)}")

    def _refusal(self, response: httpx.Response) -> CommandError:
        """The server's own words for an error (spec §9.3's body), with its status; a hint on 401."""
        status = response.status_code
        message = _error_message(response.content)
        if message is None:
            shown = response.text[:SHOWN_BODY_CHARS].strip()
            message = f"HTTP {status} from {self.url}{response.request.url.path}" + (f": {shown}" if shown else "")
        else:
            message = f"{message} (HTTP {status})"
        if status == 404 and response.request.url.path.startswith(("/v3/traces/", "/v3/spans/")):
            return NotFound(message)
        if status == 401:
            message += ("; set TASKGATE_API_KEY to a key of the project" if not self._has_key
                        else "; check TASKGATE_API_KEY")
        return CommandError(message)


def _error_message(content: bytes) -> str | None:
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    detail = body.get("detail")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        detail = error["message"]
    kind = body.get("type") or (error.get("type") if isinstance(error, dict) else None)
    if not isinstance(detail, str):
        return None
    return f"{kind}: {detail}" if isinstance(kind, str) else detail


def _reason(exc: httpx.HTTPError) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


async def _sse_chunks(response: httpx.Response, url: str) -> AsyncIterator[dict[str, Any]]:
    """The JSON of each event's `data` lines; comments (the heartbeats) and other fields are skipped."""
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield _chunk("\n".join(data), url)
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield _chunk("\n".join(data), url)


def _chunk(data: str, url: str) -> dict[str, Any]:
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise CommandError(f"{url} sent a stream event that is not JSON: {data[:SHOWN_BODY_CHARS]!r}") from None
    if not isinstance(chunk, dict):
        raise CommandError(f"{url} sent a stream event that is not a JSON object")
    return chunk
