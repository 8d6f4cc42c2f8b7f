"""What a UI page pays to check its session in the store: one read of `ui_sessions` by primary key,
with many sessions stored, on a SQLite file and on Postgres.

    .venv/bin/python -m bench.ui_session_check [--sessions 50000] [--samples 2000] [--no-postgres]

The baseline, timed in the same run, is the check it replaced: the key's project from the
authenticator's in-memory cache (no store read), which saw another process's revoke only after its
refresh (`REFRESH_S`) and another process's sign-out never. The figure that matters is the read's
p99 against a page's 100 ms budget.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import percentile_ms
from bench.platform_reads import _drop, _postgres_database
from taskgate.server.auth import Authenticator
from taskgate.store import SqlStore, open_store
from taskgate.store.accounts import key_hash
from taskgate.store.tables import ui_sessions


def _session_id(number: int) -> str:
    return hashlib.sha256(f"bench-session-{number}".encode()).hexdigest()


async def _seed(store: SqlStore, sessions: int) -> tuple[str, str]:
    """`sessions` sessions of one stored key; the key's digest and its project id."""
    project_id = await store.ensure_project("bench-ui-sessions")
    record, key = await store.keys.create(project_id, "bench", False, {})
    expires = datetime.now(UTC) + timedelta(hours=12)
    rows = [{"id": _session_id(n), "project_id": project_id, "api_key_id": record.id, "expires_at": expires}
            for n in range(sessions)]
    for start in range(0, len(rows), 5000):
        chunk = rows[start:start + 5000]
        await store.database.write(lambda conn, chunk=chunk: conn.execute(ui_sessions.insert(), chunk))
    return key_hash(key), project_id


async def _measure(url: str, sessions: int, samples: int) -> dict[str, float]:
    store = await open_store(url)
    assert isinstance(store, SqlStore)
    try:
        digest, project_id = await _seed(store, sessions)
        auth = Authenticator(store)
        assert await auth.project_for_digest(digest) == project_id  # cached from here on
        cached, stored = [], []
        for n in range(samples):  # alternating, so a shared machine's noise lands on both alike
            began = time.perf_counter()
            assert await auth.project_for_digest(digest) == project_id
            cached.append(time.perf_counter() - began)
            began = time.perf_counter()
            assert await auth.ui_session_project(_session_id(n * 7919 % sessions), digest) == project_id
            stored.append(time.perf_counter() - began)
    finally:
        await store.close()
    return {"cache p50": percentile_ms(cached, 0.5), "cache p99": percentile_ms(cached, 0.99),
            "store p50": percentile_ms(stored, 0.5), "store p99": percentile_ms(stored, 0.99)}


def _report(name: str, figures: dict[str, float]) -> None:
    print(f"{name}: session row read p50 {figures['store p50']:.3f} ms, p99 {figures['store p99']:.3f} ms; "
          f"baseline (in-memory key cache) p50 {figures['cache p50']:.4f} ms, p99 {figures['cache p99']:.4f} ms; "
          f"added p50 {figures['store p50'] - figures['cache p50']:.3f} ms "
          f"({figures['store p99'] / 100:.2%} of a page's 100 ms at p99)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=50_000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        _report(f"sqlite, {args.sessions} sessions",
                await _measure(f"sqlite:///{Path(folder) / 'bench.db'}", args.sessions, args.samples))
    if args.no_postgres:
        return
    database = _postgres_database()
    if database is None:
        return
    url, name = database
    try:
        _report(f"postgres, {args.sessions} sessions", await _measure(url, args.sessions, args.samples))
    finally:
        _drop(name)


if __name__ == "__main__":
    asyncio.run(main())
