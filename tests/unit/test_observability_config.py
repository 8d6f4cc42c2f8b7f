"""The settings of metrics and OTLP export: what switches export on, where it goes, and the values
Taskgate cannot honour, refused at start-up with the variable named rather than ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskgate.config import ConfigError, Settings

BASE = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACES = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"


@pytest.mark.parametrize(("env", "endpoint"), [
    ({}, None),
    ({BASE: "http://collector:4318"}, "http://collector:4318/v1/traces"),
    ({BASE: "https://collector:4318/"}, "https://collector:4318/v1/traces"),
    ({BASE: "http://collector:4318/base"}, "http://collector:4318/base/v1/traces"),
    ({TRACES: "http://traces:9999/custom"}, "http://traces:9999/custom"),  # used as it is, like the SDK
    ({BASE: "http://a:1", TRACES: "http://b:2/t"}, "http://b:2/t"),
    ({BASE: "   "}, None),
    ({BASE: "http://a:1", "OTEL_SDK_DISABLED": "true"}, None),
    ({BASE: "http://a:1", "OTEL_SDK_DISABLED": "TRUE"}, None),
    ({BASE: "http://a:1", "OTEL_TRACES_EXPORTER": "none"}, None),
    ({BASE: "http://a:1", "OTEL_TRACES_EXPORTER": "otlp"}, "http://a:1/v1/traces"),
    ({BASE: "http://a:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, "http://a:1/v1/traces"),
])
def test_where_spans_are_exported(env: dict[str, str], endpoint: str | None) -> None:
    assert Settings.from_env(env).otlp_traces_endpoint == endpoint


@pytest.mark.parametrize(("env", "variable"), [
    ({BASE: "collector:4318"}, BASE),
    ({BASE: "ftp://collector"}, BASE),
    ({BASE: "http://"}, BASE),
    ({BASE: "http://[::1"}, BASE),
    ({BASE: "http://a:99999999"}, BASE),
    ({BASE: "http://a:0"}, BASE),
    ({BASE: "javascript:alert(1)"}, BASE),
    ({TRACES: "file:///etc/passwd"}, TRACES),
    ({BASE: "http://a:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
    ({BASE: "http://a:1", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"),
    ({BASE: "http://a:1", "OTEL_TRACES_EXPORTER": "console"}, "OTEL_TRACES_EXPORTER"),
    ({BASE: "http://a:1", "OTEL_TRACES_EXPORTER": "otlp,zipkin"}, "OTEL_TRACES_EXPORTER"),
    ({"OTEL_BSP_MAX_QUEUE_SIZE": "0"}, "OTEL_BSP_MAX_QUEUE_SIZE"),
    ({"OTEL_BSP_MAX_QUEUE_SIZE": "1e400"}, "OTEL_BSP_MAX_QUEUE_SIZE"),
    ({"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "-5"}, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
    ({"OTEL_BSP_SCHEDULE_DELAY": "nan"}, "OTEL_BSP_SCHEDULE_DELAY"),
    ({"OTEL_BSP_SCHEDULE_DELAY": "0"}, "OTEL_BSP_SCHEDULE_DELAY"),
    ({"TASKGATE_METRICS": "maybe"}, "TASKGATE_METRICS"),
    ({"TASKGATE_METRICS_PUBLIC": "2"}, "TASKGATE_METRICS_PUBLIC"),
])
def test_what_taskgate_cannot_honour_is_refused_naming_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env(env)


def test_metrics_defaults_and_switches(tmp_path: Path) -> None:
    default = Settings.from_env({})
    assert default.metrics_enabled and not default.metrics_public and default.prometheus_multiproc_dir is None
    assert (default.otlp_schedule_delay_ms, default.otlp_max_queue_size, default.otlp_max_export_batch_size) == (
        5000.0, 2048, 512)  # the SDK's own defaults
    chosen = Settings.from_env({"TASKGATE_METRICS": "0", "TASKGATE_METRICS_PUBLIC": "1",
                                "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "OTEL_BSP_SCHEDULE_DELAY": "250"})
    assert not chosen.metrics_enabled and chosen.metrics_public
    assert chosen.prometheus_multiproc_dir == tmp_path and chosen.otlp_schedule_delay_ms == 250.0


def test_the_endpoint_stays_out_of_the_settings_repr() -> None:
    """An endpoint may carry a credential in its query (some vendors take a key there)."""
    assert "secret" not in repr(Settings.from_env({BASE: "https://c.example/?api_key=secret"}))
