"""Load: 1,000 concurrent streams through one `taskgate serve` process, with no error.

The upstream holds each stream open for about two seconds, so all of them are in flight at once.
Peak memory during such a run, and memory 10 s after, are `python -m bench.memory`'s figures.
"""

from __future__ import annotations

import asyncio

from tests.fakes.common import Behaviour
from tests.harness import ServerProcess
from tests.http_client import get
from tests.stream_load import concurrent_streams

STREAMS = 1000


def test_a_thousand_concurrent_streams_without_an_error(fake_provider, tmp_path):
    server = ServerProcess(fake_provider, tmp_path / "srv")
    server.start()
    try:
        fake_provider.clear()
        for _ in range(STREAMS):
            fake_provider.script("gpt-4o-mini", Behaviour(text="one two three four five", event_delay_s=0.4))
        failures = asyncio.run(concurrent_streams(f"{server.url}/v2/call/stream", server.api_key,
                                                  {"name": "load", "input": "x"}, STREAMS))
        assert failures == [], f"{len(failures)} of {STREAMS} streams failed, e.g. {failures[:3]}"
        assert len(fake_provider.requests) == STREAMS
        assert get(f"{server.url}/health", key=None).status == 200
    finally:
        assert server.stop(timeout=30) in (0, -15)  # one process re-raises SIGTERM after a clean shutdown
        fake_provider.clear()
