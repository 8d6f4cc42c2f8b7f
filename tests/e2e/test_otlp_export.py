"""OTLP/HTTP export from a real `taskgate serve` to a real receiver on loopback.

The receiver decodes what arrives with `opentelemetry-proto`, as a collector would. Then the two
ways a collector goes wrong: one that refuses connections and one that accepts them and never
answers. Neither may slow a call or fail it, and neither may hold up the server's exit for long.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tests.fakes.common import Behaviour
from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess, free_port
from tests.http_client import post
from tests.prometheus_text import scrape, value

FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "50"}


class Receiver:
    """An OTLP/HTTP traces endpoint: every span it is sent, decoded, with its resource's attributes."""

    def __init__(self) -> None:
        self.spans: list[tuple[dict[str, Any], Span]] = []
        self.requests: list[dict[str, str]] = []
        self._lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                decoded = ExportTraceServiceRequest.FromString(body)
                with receiver._lock:
                    receiver.requests.append({"path": self.path, "content-type": self.headers["Content-Type"],
                                              "x-tenant": self.headers.get("x-tenant", "")})
                    for resource_spans in decoded.resource_spans:
                        resource = attributes_of(resource_spans.resource.attributes)
                        for scope_spans in resource_spans.scope_spans:
                            receiver.spans.extend((resource, span) for span in scope_spans.spans)
                    receiver._lock.notify_all()
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def span_named(self, name: str, timeout: float = 15.0) -> tuple[dict[str, Any], Span]:
        with self._lock:
            found = self._lock.wait_for(lambda: [item for item in self.spans if item[1].name == name], timeout)
        assert found, f"no span {name!r} reached the receiver; it has {[s.name for _, s in self.spans]}"
        assert len(found) == 1, f"span {name!r} was exported {len(found)} times"
        return found[0]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def attributes_of(pairs: Any) -> dict[str, Any]:
    return {pair.key: plain(pair.value) for pair in pairs}


def plain(any_value: AnyValue) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [plain(item) for item in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def otel_id(taskgate_uuid: str) -> bytes:
    return uuid.UUID(taskgate_uuid).bytes


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiving = Receiver()
    yield receiving
    receiving.close()


@pytest.fixture(scope="module")
def exporting(fake_provider: FakeProvider, receiver: Receiver,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # OTEL_SERVICE_NAME and OTEL_EXPORTER_OTLP_HEADERS are the SDK's to read: they must reach the receiver.
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_SERVICE_NAME": "taskgate-under-test",
           "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=acme", **FAST_EXPORT}
    with ServerProcess(fake_provider, tmp_path_factory.mktemp("otlp"), env=env) as server:
        yield server


def test_a_call_under_a_parent_span_is_exported_with_its_ids_and_genai_attributes(
        exporting: ServerProcess, receiver: Receiver, fake: FakeProvider) -> None:
    parent_name, function = f"pipeline-{uuid.uuid4().hex[:8]}", f"extract-{uuid.uuid4().hex[:8]}"
    parent = post(f"{exporting.url}/v2/spans", {"name": parent_name, "start_time": "2026-01-01T10:00:00Z",
                                                "end_time": "2026-01-01T10:00:05Z"}).json()
    fake.script("gpt-4o-mini", Behaviour(json={"city": "Paris"}, usage={"prompt_tokens": 21, "completion_tokens": 4}))
    reply = post(f"{exporting.url}/v2/call", {
        "name": function, "input": "Where is the Louvre?", "parent_span_id": parent["id"],
        "model": "openai/gpt-4o-mini",
        "output_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}})
    assert reply.status == 200, reply.body
    call = reply.json()

    resource, span = receiver.span_named(function)
    _, exported_parent = receiver.span_named(parent_name)
    assert receiver.requests[0] == {"path": "/v1/traces", "content-type": "application/x-protobuf", "x-tenant": "acme"}
    assert resource["service.name"] == "taskgate-under-test"
    # Taskgate's trace id is the OTel trace id; span ids are the UUIDs' low 64 bits.
    assert span.trace_id == otel_id(parent["trace_id"]) == exported_parent.trace_id
    assert span.span_id == otel_id(call["span_id"])[8:]
    assert exported_parent.span_id == otel_id(parent["id"])[8:]
    assert span.parent_span_id == exported_parent.span_id
    assert exported_parent.parent_span_id == b""
    assert exported_parent.start_time_unix_nano == 1767261600 * 10**9
    assert exported_parent.end_time_unix_nano == 1767261605 * 10**9
    assert 0 < span.start_time_unix_nano <= span.end_time_unix_nano
    assert span.kind == Span.SPAN_KIND_CLIENT
    assert span.status.code == Status.STATUS_CODE_UNSET
    attributes = attributes_of(span.attributes)
    assert attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 21,
        "gen_ai.usage.output_tokens": 4,
        "taskgate.cost.usd": pytest.approx(call["cost"]["total"]),
        "taskgate.function.name": function,
        "taskgate.span.id": call["span_id"],
        "taskgate.trace.id": parent["trace_id"],
        "taskgate.parent.id": parent["id"],
        "taskgate.span.type": "call",
        "taskgate.project.id": attributes["taskgate.project.id"],
        "taskgate.attempts": 1,
    }
    assert "Louvre" not in str(attributes) and "Paris" not in str(attributes)  # content is not exported


def test_a_failed_call_is_exported_with_an_error_status(exporting: ServerProcess, receiver: Receiver,
                                                        fake: FakeProvider) -> None:
    function = f"failing-{uuid.uuid4().hex[:8]}"
    fake.script("broken", Behaviour(status=500), Behaviour(status=500))
    reply = post(f"{exporting.url}/v2/call", {"name": function, "input": "x", "model": "openai/broken"})
    assert reply.status >= 500
    _, span = receiver.span_named(function)
    assert span.status.code == Status.STATUS_CODE_ERROR and span.status.message
    attributes = attributes_of(span.attributes)
    assert "taskgate.cancelled" not in attributes
    assert attributes["taskgate.models_failed"][0].startswith("openai/broken")


def test_export_counts_show_in_metrics(exporting: ServerProcess, receiver: Receiver) -> None:
    function = f"counted-{uuid.uuid4().hex[:8]}"
    assert post(f"{exporting.url}/v2/call", {"name": function, "input": "x"}).status == 200
    receiver.span_named(function)
    samples = scrape(exporting)
    assert value(samples, "taskgate_otlp_spans_exported_total") >= 1
    assert value(samples, "taskgate_otlp_spans_dropped_total") == 0


def timed_calls(server: ServerProcess, count: int) -> list[float]:
    walls = []
    for index in range(count):
        start = time.perf_counter()
        reply = post(f"{server.url}/v2/call", {"name": "under-a-bad-collector", "input": f"x{index}"})
        walls.append(time.perf_counter() - start)
        assert reply.status == 200, reply.body
    return walls


class Hanging:
    """A collector that accepts connections and reads nothing, answers nothing."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        self.sock.close()
        for connection in self.accepted:
            connection.close()


@pytest.mark.parametrize("collector", ["refusing", "hanging"])
def test_a_dead_or_hanging_collector_never_slows_or_fails_a_call(
        collector: str, fake_provider: FakeProvider, tmp_path: Path) -> None:
    hanging = Hanging() if collector == "hanging" else None
    endpoint = hanging.url if hanging is not None else f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_TIMEOUT": "60",
           "OTEL_BSP_MAX_QUEUE_SIZE": "8", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2", **FAST_EXPORT}
    try:
        with ServerProcess(fake_provider, tmp_path / "baseline") as baseline:
            timed_calls(baseline, 5)
            usual = sorted(timed_calls(baseline, 30))[15]
        server = ServerProcess(fake_provider, tmp_path / collector, env=env)
        server.start()
        try:
            timed_calls(server, 5)  # the first batches are on their way to the collector by now
            time.sleep(0.3)
            walls = sorted(timed_calls(server, 30))
            samples = scrape(server)
        finally:
            stop_started = time.monotonic()
            code = server.stop(timeout=20)
            stopped_in = time.monotonic() - stop_started
        if hanging is not None:
            assert hanging.accepted, "the exporter never reached the hanging collector"
        assert walls[15] < usual * 3 + 0.02, (walls[15], usual)  # the median call: as quick as without export
        assert walls[-1] < 1.0
        assert value(samples, "taskgate_otlp_spans_exported_total") == 0
        # 35 spans, at most 8 queued and 2 in a batch on its way: the rest were dropped and counted
        assert value(samples, "taskgate_otlp_spans_dropped_total") >= 35 - 10
        assert code in (0, -15)  # uvicorn re-raises SIGTERM after a graceful shutdown
        assert stopped_in < 8, f"shutdown took {stopped_in:.1f}s"
    finally:
        if hanging is not None:
            hanging.close()
