"""The `local/all-minilm-l6-v2` embeddings behind the local adapter: loaded on first use, off the loop.

A server that never embeds never imports the encoder's libraries nor reads its weights. The first
calls share one load (on a worker thread, so the server keeps answering while it runs); every
encoding then runs on one worker thread, where numpy's BLAS does the arithmetic on all cores.
Requests beyond `queue_size` waiting for that thread are turned away with a 503 and a Retry-After,
like the local chat models' queue, rather than piling up behind it.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from taskgate.errors import BadRequestError, OverloadedError
from taskgate.providers.base import EmbeddingResponse, Usage

if TYPE_CHECKING:
    from taskgate.providers.local.sentence_encoder import SentenceEncoder

EMBEDDING_MODEL = "all-minilm-l6-v2"
DIMENSIONS = 384
MAX_INPUTS = 2048  # texts in one request, as OpenAI's embeddings endpoint allows
MAX_TEXT_CHARS = 32_000  # of one text: the model reads its first 256 tokens, so more is a caller's mistake
ACCEPTED_OPTIONS = frozenset({"dimensions", "user"})


class LocalEmbedder:
    def __init__(self, queue_size: int = 16) -> None:
        self._encoder: SentenceEncoder | None = None
        self._load_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="local-embed")
        self._queue_size = queue_size
        self._pending = 0  # requests handed to the worker and not yet done
        self._count_lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._encoder is not None

    async def embed(self, inputs: list[str], options: dict[str, Any]) -> EmbeddingResponse:
        check_request(inputs, options)
        if self._pending > self._queue_size:
            raise OverloadedError(f"local/{EMBEDDING_MODEL} has {self._pending} requests queued; try again shortly",
                                  retry_after=max(1, self._pending // 4))
        with self._count_lock:
            self._pending += 1
        job = self._executor.submit(self._encode, inputs)
        job.add_done_callback(self._done)  # when the worker is really done: a caller that left does not count
        encoded = await asyncio.wrap_future(job)
        return EmbeddingResponse(vectors=encoded.vectors.tolist(), usage=Usage(input_tokens=encoded.tokens),
                                 model=EMBEDDING_MODEL)

    def _done(self, _: Future[Any]) -> None:
        with self._count_lock:
            self._pending -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._encoder = None

    def _encode(self, inputs: list[str]) -> Any:
        return self._load().encode(inputs)

    def _load(self) -> SentenceEncoder:
        with self._load_lock:  # requests that arrive during the first load wait for it, not load again
            if self._encoder is None:
                from taskgate.providers.local.sentence_encoder import SentenceEncoder

                self._encoder = SentenceEncoder.load()
            return self._encoder


def check_request(inputs: list[str], options: dict[str, Any]) -> None:
    """The bounds of one request, checked on the loop before anything is loaded or queued."""
    unknown = sorted(set(options) - ACCEPTED_OPTIONS)
    if unknown:
        raise BadRequestError(f"local/{EMBEDDING_MODEL} does not take the option '{unknown[0][:100]}'")
    dimensions = options.get("dimensions")
    if dimensions is not None and dimensions != DIMENSIONS:
        raise BadRequestError(f"local/{EMBEDDING_MODEL} gives {DIMENSIONS}-dimensional vectors only, "
                              f"not {dimensions}")
    if not inputs:
        raise BadRequestError("input must hold at least one text")
    if len(inputs) > MAX_INPUTS:
        raise BadRequestError(f"local/{EMBEDDING_MODEL} embeds at most {MAX_INPUTS} texts per request, "
                              f"not {len(inputs)}")
    for index, text in enumerate(inputs):
        if not isinstance(text, str):
            raise BadRequestError(f"input[{index}] must be a string")
        if len(text) > MAX_TEXT_CHARS:
            raise BadRequestError(f"input[{index}] has {len(text)} characters; local/{EMBEDDING_MODEL} "
                                  f"takes at most {MAX_TEXT_CHARS} (it reads the first 256 tokens)")
