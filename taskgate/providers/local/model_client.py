"""A worker's side of the local model process (`model_process`): generations and embeddings asked
over its Unix socket, so that a machine running N workers loads each local model once.

Admission (the concurrency and the queue bound) is the model process's, for the whole machine: a
full queue comes back as the same 503 with a Retry-After. A caller that goes away closes the
connection, which stops the generation there.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from taskgate.errors import OverloadedError
from taskgate.providers.base import EmbeddingResponse, Usage
from taskgate.providers.local.embedder import EMBEDDING_MODEL, check_request
from taskgate.providers.local.model_wire import (
    ModelProcessError,
    Outcome,
    Plan,
    error_from_wire,
    read_frame,
    write_frame,
)

CANCEL_POLL_S = 0.05  # how soon a departed caller's generation is stopped while no token arrives

Emit = Callable[[str], None]


async def _connect(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        return await asyncio.open_unix_connection(str(path))
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise OverloadedError("the local model process is not answering (it is starting or restarting); "
                              "try again shortly", retry_after=1) from exc


class RemoteRunner:
    """A local chat model run by the model process; the same `admit`/`start` as the in-process runner."""

    def __init__(self, name: str, socket_path: Path) -> None:
        self.name = name
        self._socket = socket_path

    async def admit(self) -> None:
        """Admission is the model process's, for the whole machine."""

    def start(self, plan: Plan, emit: Emit | None, cancel: threading.Event) -> asyncio.Future[Outcome]:
        future = asyncio.ensure_future(self._generate(plan, emit, cancel))
        future.add_done_callback(lambda done: None if done.cancelled() else done.exception())
        return future

    async def _generate(self, plan: Plan, emit: Emit | None, cancel: threading.Event) -> Outcome:
        reader, writer = await _connect(self._socket)
        watcher = asyncio.ensure_future(_close_when_set(cancel, writer))
        try:
            write_frame(writer, {"op": "generate", "model": self.name, "plan": asdict(plan)})
            await writer.drain()
            while (message := await read_frame(reader)) is not None:
                if "piece" in message:
                    if emit is not None:
                        emit(str(message["piece"]))
                elif "done" in message:
                    return Outcome.from_wire(message["done"])
                elif "error" in message:
                    raise error_from_wire(message["error"])
            raise ModelProcessError(f"the local model process ended the answer of local/{self.name} early")
        except (ConnectionError, ModelProcessError):
            if cancel.is_set():
                raise asyncio.CancelledError from None
            raise
        finally:
            watcher.cancel()
            writer.close()


async def _close_when_set(cancel: threading.Event, writer: asyncio.StreamWriter) -> None:
    """Close the connection once the caller is gone: the model process then stops generating."""
    while not cancel.is_set():
        await asyncio.sleep(CANCEL_POLL_S)
    writer.transport.abort()


class RemoteEmbedder:
    """`local/all-minilm-l6-v2` run by the model process; the request is checked here first."""

    def __init__(self, socket_path: Path) -> None:
        self._socket = socket_path

    async def embed(self, inputs: list[str], options: dict[str, Any]) -> EmbeddingResponse:
        check_request(inputs, options)
        reader, writer = await _connect(self._socket)
        try:
            write_frame(writer, {"op": "embed", "inputs": inputs, "options": options})
            await writer.drain()
            message = await read_frame(reader)
        finally:
            writer.close()
        if message is not None and "done" in message:
            done = message["done"]
            return EmbeddingResponse(vectors=done["vectors"], usage=Usage(input_tokens=done["input_tokens"]),
                                     model=EMBEDDING_MODEL)
        if message is not None and "error" in message:
            raise error_from_wire(message["error"])
        raise ModelProcessError(f"the local model process ended the answer of local/{EMBEDDING_MODEL} early")

    def close(self) -> None:
        """Nothing is held between requests."""
