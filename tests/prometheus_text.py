"""Reading a `GET /metrics` answer the way Prometheus does: prometheus-client's own text parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.harness import ServerProcess
from tests.http_client import get

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(server: ServerProcess, key: str | None = "test-key") -> Samples:
    reply = get(f"{server.url}/metrics", key=key)
    assert reply.status == 200, reply.body
    assert reply.headers["content-type"].startswith("text/plain; version=")
    return samples_of(reply.body.decode())


def samples_of(text: str) -> Samples:
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def label_values(samples: Samples, label: str, prefix: str = "taskgate_") -> set[str]:
    return {dict(labels)[label] for (name, labels) in samples if name.startswith(prefix) and label in dict(labels)}
