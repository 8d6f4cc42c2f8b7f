"""Prometheus metrics, counted off the request path and served by `GET /metrics`.

The request path only appends what happened to a list: a request's route, method, status and
seconds (`request`, from the access log), an upstream call's provider, model, seconds and outcome
(`upstream`, `fallback`, from the router), a recorded span (`span`, from the span recorder: tokens,
cost, cache hits, re-asks). `drain()` (every DRAIN_INTERVAL_S, and before each scrape) sums them by
label set and adds each sum to the prometheus-client metrics once. Updating those metrics directly
costs 1 to 3 µs per update (twice that in multiprocess mode, which writes to a memory-mapped file),
and a call makes about six; an append costs 0.1 µs, and the drain's work is per label set, not per
call. The price is that a worker's counts reach its metrics up to DRAIN_INTERVAL_S late.

Labels are bounded whatever callers send: a route is its template (`/v2/spans/{span_id}`; a path no
route matches is `unmatched`), never the raw path; providers are the configured ones; models are the
first MAX_MODELS (provider, model) pairs seen, then `other` (a caller may name any model).

Several workers (`taskgate serve --workers N`): prometheus-client's multiprocess mode. The parent
makes an empty directory (`shared_metrics_dir`) and puts it in PROMETHEUS_MULTIPROC_DIR for its
workers; prometheus-client, imported after that in each worker, keeps every value in a file there,
and a scrape of any worker sums the files of all of them (gauges: of the live ones).
"""

from __future__ import annotations

import asyncio
import bisect
import os
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.types import Scope

from taskgate.store.base import SpanRecord
from taskgate.telemetry.otlp_spans import split_model

DRAIN_INTERVAL_S = 1.0
MAX_MODELS = 200
OTHER = "other"
ROUTE_KEY = "route"  # where Starlette's router leaves the matched route in the scope
ROUTE_TEMPLATE = "taskgate.route"  # a finer template a dispatcher behind a catch-all route found (v3 functions)
# Seconds: from a cached answer in a millisecond to a long generation.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
           float("inf"))
CountSource = Callable[[], int]
_SpanLabels = tuple[tuple[str, str], tuple[str, ...], tuple[str, ...]]  # (provider, model), and with each direction


class _HistogramBatch:
    """Observations summed per label set: counts per bucket and their total."""

    def __init__(self) -> None:
        self.groups: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}

    def add(self, labels: tuple[str, ...], seconds: float) -> None:
        group = self.groups.get(labels)
        if group is None:
            group = self.groups[labels] = ([0] * len(BUCKETS), [0.0])
        group[0][bisect.bisect_left(BUCKETS, seconds)] += 1
        group[1][0] += seconds

    def apply(self, histogram: Histogram) -> None:
        for labels, (counts, total) in self.groups.items():
            add_observations(histogram.labels(*labels), counts, total[0])


def add_observations(child: Histogram, counts: list[int], total: float) -> None:
    """What `observe()` would have left after `sum(counts)` observations adding up to `total`, with
    counts[i] of them in bucket i. prometheus-client has no call for that, so this writes the two
    values `observe` writes (a bucket's own count, not yet cumulative, and the sum); a unit test
    checks the result against `observe` itself."""
    child._sum.inc(total)
    for bucket, count in zip(child._buckets, counts, strict=True):
        if count:
            bucket.inc(count)


class Metrics:
    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        self._dir = multiprocess_dir
        if multiprocess_dir is not None:
            multiprocess_dir.mkdir(parents=True, exist_ok=True)
        # One registry per app in a single process (tests and benchmarks run several apps); in
        # multiprocess mode the values live in the directory and a scrape reads them from there.
        self.registry = CollectorRegistry() if multiprocess_dir is None else None
        self._requests: list[tuple[Any, str, str, int, float]] = []
        self._upstream: list[tuple[str, str, float, bool]] = []
        self._fallbacks: list[tuple[str, str]] = []
        self._spans: list[SpanRecord] = []
        self._models: set[tuple[str, str]] = set()
        self._queues: list[tuple[Gauge, CountSource]] = []
        self._totals: list[tuple[Counter, CountSource, list[int]]] = []  # (counter, source, [last seen])
        registry = self.registry
        self.http = Histogram("taskgate_http_request_duration_seconds",
                              "Requests by route template, method and status: seconds until the response began",
                              ("route", "method", "status"), buckets=BUCKETS, registry=registry)
        self.upstream_seconds = Histogram("taskgate_upstream_duration_seconds",
                                          "Upstream model calls: seconds to the answer (a stream: to its first output)",
                                          ("provider", "model"), buckets=BUCKETS, registry=registry)
        self.upstream_errors = Counter("taskgate_upstream_errors", "Upstream model calls that failed",
                                       ("provider", "model"), registry=registry)
        self.fallbacks = Counter("taskgate_fallbacks", "Failed upstream calls after which the next model of the "
                                 "chain was tried", ("provider", "model"), registry=registry)
        self.tokens = Counter("taskgate_tokens", "Tokens used by recorded calls", ("provider", "model", "direction"),
                              registry=registry)
        self.cost = Counter("taskgate_cost_usd", "USD cost of recorded calls", ("provider", "model"),
                            registry=registry)
        self.cache_hits = Counter("taskgate_cache_hits", "Calls answered from the result cache", registry=registry)
        self.reasks = Counter("taskgate_reasks", "Answers that missed the output schema and were asked again",
                              ("provider", "model"), registry=registry)

    # ------------------------------------------------------------------ the request path: appends only

    def request(self, scope: Scope, status: int, seconds: float, route: str | None) -> None:
        """A request answered (the access log's hook); `route` is given where no route matched."""
        self._requests.append((route or scope.get(ROUTE_TEMPLATE) or scope.get(ROUTE_KEY), scope["path"],
                               scope["method"], status, seconds))

    def upstream(self, provider: str, model: str, seconds: float, ok: bool) -> None:
        self._upstream.append((provider, model, seconds, ok))

    def fallback(self, provider: str, model: str) -> None:
        self._fallbacks.append((provider, model))

    def span(self, span: SpanRecord) -> None:
        self._spans.append(span)

    # ------------------------------------------------------------------ sources read at each drain

    def watch_queue(self, name: str, documentation: str, depth: CountSource) -> None:
        """A gauge set from `depth()` at each drain (summed over live workers)."""
        self._queues.append((Gauge(name, documentation, registry=self.registry, multiprocess_mode="livesum"), depth))

    def watch_total(self, name: str, documentation: str, total: CountSource) -> None:
        """A counter following the ever-growing count `total()`."""
        self._totals.append((Counter(name, documentation, registry=self.registry), total, [0]))

    # ------------------------------------------------------------------ off the request path

    def drain(self) -> None:
        """Add what was appended since the last drain to the metrics."""
        requests, self._requests = self._requests, []
        upstream, self._upstream = self._upstream, []
        fallbacks, self._fallbacks = self._fallbacks, []
        spans, self._spans = self._spans, []
        http = _HistogramBatch()
        for route, path, method, status, seconds in requests:
            http.add((_template(route, path), method, str(status)), seconds)
        http.apply(self.http)
        calls, errors = _HistogramBatch(), _Sums()
        for provider, model, seconds, ok in upstream:
            labels = self._model_labels(provider, model)
            calls.add(labels, seconds)
            if not ok:
                errors.add(labels, 1)
        calls.apply(self.upstream_seconds)
        errors.apply(self.upstream_errors)
        _Sums.of((self._model_labels(*pair), 1) for pair in fallbacks).apply(self.fallbacks)
        self._drain_spans(spans)
        for gauge, depth in self._queues:
            gauge.set(depth())
        for counter, total, seen in self._totals:
            now = total()
            if now > seen[0]:
                counter.inc(now - seen[0])
            seen[0] = now

    def _drain_spans(self, spans: list[SpanRecord]) -> None:
        tokens, cost, reasks = _Sums(), _Sums(), _Sums()
        hits = 0
        # A drain holds many spans of few models: each model's labels are worked out once.
        labels_of: dict[str | None, _SpanLabels | None] = {}
        token_sums = tokens.groups  # two per span: summed in place rather than through `add`
        for span in spans:
            if isinstance(span.meta, dict) and span.meta.get("cached") is True:
                hits += 1
                continue  # the tokens and cost were spent, and counted, by the call that filled the cache
            name = span.model_used
            if name in labels_of:
                found = labels_of[name]
            else:
                found = labels_of[name] = self._span_labels(name)
            if found is None:
                continue
            labels, input_labels, output_labels = found
            usage = span.usage or {}
            count = usage.get("input_tokens")
            if isinstance(count, int) and count > 0:
                token_sums[input_labels] = token_sums.get(input_labels, 0) + count
            count = usage.get("output_tokens")
            if isinstance(count, int) and count > 0:
                token_sums[output_labels] = token_sums.get(output_labels, 0) + count
            if span.cost:
                cost.add(labels, span.cost)
            if span.attempts > 1:
                reasks.add(labels, span.attempts - 1)
        tokens.apply(self.tokens)
        cost.apply(self.cost)
        reasks.apply(self.reasks)
        if hits:
            self.cache_hits.inc(hits)

    def _span_labels(self, model_used: str | None) -> _SpanLabels | None:
        """A span's model labels, and its token counters' (None: no model answered it)."""
        provider, model = split_model(model_used)
        if model is None:
            return None
        labels = self._model_labels(provider or OTHER, model)
        return labels, (*labels, "input"), (*labels, "output")

    def _model_labels(self, provider: str, model: str) -> tuple[str, str]:
        pair = (provider, model)
        if pair in self._models:
            return pair
        if len(self._models) < MAX_MODELS:
            self._models.add(pair)
            return pair
        return provider, OTHER

    async def render(self, names: list[str] | None = None) -> bytes:
        """The text exposition of every metric (of every worker, in multiprocess mode), or of the
        samples `names` lists (`?name[]=`, as prometheus-client's own handler takes it)."""
        self.drain()
        if self.registry is not None:
            return generate_latest(self.registry.restricted_registry(names) if names else self.registry)
        assert self._dir is not None  # no registry of its own: the values are in the directory
        return await asyncio.to_thread(_render_directory, self._dir, names)

    def close(self) -> None:
        """The last drain; a worker's live gauges leave the sum with it."""
        self.drain()
        if self._dir is not None:
            mark_process_dead(os.getpid(), str(self._dir))


class _Sums:
    """Amounts summed per label set, for counters."""

    def __init__(self) -> None:
        self.groups: dict[Hashable, float] = {}

    @classmethod
    def of(cls, items: Iterable[tuple[tuple[str, ...], float]]) -> _Sums:
        sums = cls()
        for labels, amount in items:
            sums.add(labels, amount)
        return sums

    def add(self, labels: tuple[str, ...], amount: float) -> None:
        self.groups[labels] = self.groups.get(labels, 0) + amount

    def apply(self, counter: Counter) -> None:
        for labels, amount in self.groups.items():
            counter.labels(*labels).inc(amount)  # type: ignore[misc]


def _template(route: Any, path: str) -> str:
    """The route's path template; a request with no route in its scope came by the exact-path table,
    whose paths are templates without parameters."""
    if route is None:
        return path
    return route if isinstance(route, str) else getattr(route, "path", OTHER)


def _render_directory(directory: Path, names: list[str] | None) -> bytes:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, str(directory))
    return generate_latest(registry.restricted_registry(names) if names else registry)


def shared_metrics_dir(data_dir: Path, configured: Path | None = None) -> Path:
    """For the parent of several workers: an empty directory for their metrics (`configured`, from
    PROMETHEUS_MULTIPROC_DIR, or `<data_dir>/metrics`), to put in the workers' PROMETHEUS_MULTIPROC_DIR.
    Files left by an earlier run are removed: their counts would be added to this run's."""
    directory = configured or data_dir / "metrics"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    return directory
