"""The local model process of `serve --workers N` (`python -m taskgate.providers.local.model_process`).

It holds the machine's one copy of each local model (llama.cpp chat models, the embedding model),
loaded on first use as in a single-process server, and answers the workers over a Unix socket in
a private directory (`model_wire` says how). Admission is here, so `TASKGATE_LOCAL_CONCURRENCY`
and `TASKGATE_LOCAL_QUEUE` bound the machine, not each worker. A worker that disconnects stops
its generation, queued or running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from taskgate.config import ConfigError, Settings
from taskgate.errors import TaskgateError
from taskgate.providers.local.adapter import LocalAdapter
from taskgate.providers.local.embedder import EMBEDDING_MODEL
from taskgate.providers.local.model_wire import Plan, error_to_wire, read_frame, write_frame
from taskgate.server.access_log import configure_logging
from taskgate.server.parent_death import die_with_parent

SOCKET_MODE = 0o600

log = logging.getLogger("taskgate.local.process")


async def _answer(adapter: LocalAdapter, request: dict[str, Any], writer: asyncio.StreamWriter,
                  cancel: threading.Event) -> None:
    loop = asyncio.get_running_loop()
    try:
        if request.get("op") == "generate":
            def emit(text: str) -> None:  # called on the generating thread
                loop.call_soon_threadsafe(write_frame, writer, {"piece": text})

            outcome = await adapter.generate(str(request["model"]), Plan(**request["plan"]), emit, cancel)
            write_frame(writer, {"done": outcome.to_wire()})
        elif request.get("op") == "embed":
            embedded = await adapter.embed(EMBEDDING_MODEL, list(request["inputs"]), dict(request["options"]))
            write_frame(writer, {"done": {"vectors": embedded.vectors, "input_tokens": embedded.usage.input_tokens}})
        else:
            raise ValueError(f"unknown operation {request.get('op')!r}")
    except TaskgateError as exc:  # the caller's or the model's, as in process: back to the worker, typed
        write_frame(writer, {"error": error_to_wire(exc)})
    except Exception as exc:
        log.exception("local model request failed")
        write_frame(writer, {"error": error_to_wire(exc)})
    await writer.drain()


async def _handle(adapter: LocalAdapter, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    cancel = threading.Event()
    try:
        request = await read_frame(reader)
        if request is None:
            return
        work = asyncio.ensure_future(_answer(adapter, request, writer, cancel))
        gone = asyncio.ensure_future(reader.read(1))  # a worker sends nothing more: data or EOF means it left
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            cancel.set()
            work.cancel()
        gone.cancel()
        await asyncio.gather(work, gone, return_exceptions=True)
    except Exception:
        log.exception("local model connection failed")
    finally:
        cancel.set()
        writer.close()


async def serve(settings: Settings, path: Path) -> None:
    adapter = LocalAdapter(settings)
    path.unlink(missing_ok=True)
    server = await asyncio.start_unix_server(lambda r, w: _handle(adapter, r, w), path=str(path))
    os.chmod(path, SOCKET_MODE)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        server.close()
        await adapter.aclose()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def main(argv: list[str] | None = None) -> None:
    die_with_parent()
    parser = argparse.ArgumentParser(prog="taskgate-local-models")
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    configure_logging(args.log_level.upper())
    sys.setswitchinterval(0.0005)
    try:
        settings = Settings.from_env(data_dir=args.data_dir)
    except ConfigError as exc:
        print(f"taskgate local model process: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    asyncio.run(serve(settings, args.socket))


if __name__ == "__main__":
    main()
