"""The web UI's pages with 200,000 spans stored: each page's p50 and p99 against the 100 ms target.

    .venv/bin/python -m bench.ui_pages [--spans 200000] [--samples 100] [--no-postgres]

Seeds a project as bench.platform_reads does (its `seed`: traces of 1 to 12 spans and one of 50,
five models, ten functions, customers and environments as tags, over 35 days), starts `taskgate
serve` (pinned to CPU 0, this client on CPU 1), signs in through the sign-in form and times each
page one request at a time with the session cookie. The baseline, timed in the same run, is the
API's own newest-page listing (`GET /v2/traces`); each page's p99 is also given as a ratio of it.
A status filter no span matches reads the partial index of unsuccessful spans (none); a tag value no span
has walks the most a filtered listing ever walks (MAX_WALKED spans).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import aiohttp

from bench.common import CLIENT_CPU, GATEWAY_CPU, free_port, percentile_ms, pin, subprocess_server, wait_ready
from bench.platform_reads import _vacuum, on_each_store, seed
from taskgate.store import SqlStore, open_store
from taskgate.store.accounts import key_hash

TARGET_MS = 100.0
BASELINE = "API GET /v2/traces (baseline)"
WARMUPS = 3


async def _timed(session: aiohttp.ClientSession, url: str, headers: dict[str, str], samples: int,
                 budget_s: float) -> list[float]:
    times: list[float] = []
    deadline = time.monotonic() + budget_s
    for index in range(WARMUPS + samples):
        if len(times) >= 5 and time.monotonic() > deadline:
            break
        began = time.perf_counter()
        async with session.get(url, headers=headers, allow_redirects=False) as resp:
            await resp.read()
            if resp.status != 200:
                raise SystemExit(f"GET {url} answered {resp.status}: {(await resp.text())[:300]}")
        if index >= WARMUPS:
            times.append(time.perf_counter() - began)
    return times


async def _session_cookie(session: aiohttp.ClientSession, base: str, key: str) -> str:
    async with session.post(f"{base}/ui/sign-in", data={"key": key}, allow_redirects=False) as resp:
        if resp.status != 303:
            raise SystemExit(f"sign-in answered {resp.status}")
        morsel = resp.cookies["taskgate_session"]
        return f"taskgate_session={morsel.value}"


def _pages(big_trace: str) -> dict[str, str]:
    now = datetime.now(UTC)
    day_ago = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    return {
        "traces": "/ui/traces",
        "traces by function": "/ui/traces?function=fn-3",
        "traces by model": "/ui/traces?model=openai/gpt-4o",
        "traces by tag": "/ui/traces?tag=customer:customer-7",
        "traces of the last day": f"/ui/traces?since={day_ago}",
        "traces by status none match": "/ui/traces?status=error",
        "traces by a tag no span has": "/ui/traces?tag=customer:nobody",
        "trace of 50 spans": f"/ui/traces/{big_trace}",
        "usage 7 days by model": "/ui/usage",
        "usage 30 days by tag": "/ui/usage?" + urlencode({"range": "30d", "by": "tag:customer"}),
        "usage 24 hours calls by function": "/ui/usage?" + urlencode({"range": "24h", "by": "function",
                                                                      "metric": "calls"}),
        "functions": "/ui/functions",
        "keys": "/ui/keys",
    }


async def measure(database_url: str, data_dir: str, spans: int, samples: int,
                  budget_s: float) -> dict[str, dict[str, float]]:
    store = await open_store(database_url)
    assert isinstance(store, SqlStore)
    try:
        key, big_trace = await seed(store, spans)
        # The keys page is an admin's (as /v2/admin/keys is): the pages are read with an admin key of
        # the seeded project; the API baseline keeps the seeded key.
        project_id = await store.project_for_key_hash(key_hash(key))
        assert project_id is not None
        _, admin_key = await store.keys.create(project_id, "bench-admin", True, {})
    finally:
        await store.close()
    if database_url.startswith("postgresql"):
        _vacuum(database_url.rpartition("/")[2])
    port = free_port()
    env = {**os.environ, "TASKGATE_DATABASE_URL": database_url}
    for name in list(env):
        if name.endswith("_API_KEY") or name.endswith("_BASE_URL"):
            del env[name]
    command = [sys.executable, "-c", "from taskgate.cli import main; main()", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--data-dir", data_dir, "--log-level", "warning"]
    figures: dict[str, dict[str, float]] = {}
    with subprocess_server("taskgate", command, env, f"http://127.0.0.1:{port}", GATEWAY_CPU) as server:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
            await wait_ready(session, server, "/health")
            cookie = await _session_cookie(session, server.url, admin_key)
            targets = {BASELINE: ("/v2/traces", {"Authorization": f"Bearer {key}"})}
            targets.update({name: (path, {"Cookie": cookie}) for name, path in _pages(big_trace).items()})
            for name, (path, headers) in targets.items():
                times = await _timed(session, server.url + path, headers, samples, budget_s)
                figures[name] = {"p50_ms": round(percentile_ms(times, 0.5), 2),
                                 "p99_ms": round(percentile_ms(times, 0.99), 2), "samples": len(times)}
    return figures


def report(store: str, figures: dict[str, dict[str, float]]) -> None:
    baseline = figures[BASELINE]["p99_ms"]
    for name, values in figures.items():
        verdict = "" if name == BASELINE else ("ok" if values["p99_ms"] <= TARGET_MS else "OVER")
        print(f"{store:<9} {name:<34} p50 {values['p50_ms']:8.2f} ms   p99 {values['p99_ms']:8.2f} ms   "
              f"{values['p99_ms'] / baseline:5.2f}x baseline   ({values['samples']} samples) {verdict}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--budget-s", type=float, default=30.0, help="the most seconds of timing per page")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    pin(os.getpid(), CLIENT_CPU)
    results = on_each_store("taskgate-ui-", measure, report, args)
    print({"bench": "ui_pages", "spans": args.spans, "samples": args.samples, **results})


if __name__ == "__main__":
    main()
