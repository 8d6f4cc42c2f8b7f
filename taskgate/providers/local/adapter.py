"""The `local/…` provider: llama.cpp off the event loop, with grammar-constrained JSON.

In one process (`serve` with one worker) the models run in this process. Under `serve --workers N`
the adapter of each worker sends its generations and embeddings to the one local model process
(`model_client`), whose own adapter runs them in process: the weights are loaded once per machine.

Each model gets a runner: a bounded admission queue, `local_concurrency` worker threads and as
many warm llama.cpp instances (loaded lazily, weights shared through mmap). llama.cpp releases
the GIL while it evaluates, so the server keeps answering while a worker generates. Tokens cross
from the worker to the caller's loop with `call_soon_threadsafe`; a caller that goes away sets a
flag the worker checks after every token, so an abandoned generation stops at once.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson

from taskgate.config import Settings
from taskgate.errors import BadRequestError, OverloadedError, ProviderError, ProviderNotConfiguredError
from taskgate.providers.base import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingResponse,
    ImageRequest,
    ImageResponse,
    RerankRequest,
    RerankResponse,
    Usage,
    no_rerank,
)
from taskgate.providers.local.embedder import EMBEDDING_MODEL, LocalEmbedder
from taskgate.providers.local.grammar import GrammarCache, GrammarUnavailable
from taskgate.providers.local.model_client import RemoteEmbedder, RemoteRunner
from taskgate.providers.local.model_files import (
    BUNDLED_MODEL,
    INSTALL_HINT,
    configured_model_path,
    ensure_bundled_model,
)
from taskgate.providers.local.model_wire import Outcome, Plan
from taskgate.providers.local.prompt import TURN_STOP, OutputShaper, build_prompt
from taskgate.providers.local.task_prompt import build_task_prompt, read_task
from taskgate.providers.wire_capture import Exchange, begin_built, failure_text

DEFAULT_MAX_TOKENS = 512
LOCAL_PATH = "llama.cpp"  # a local generation's `path`: no HTTP, the model runs in process
DEFAULT_TEXT_TEMPERATURE = 0.7
CONTEXT_TOKENS = 8192

Emit = Callable[[str], None]


class _Runner:
    """One model: admission, worker threads and warm instances."""

    def __init__(self, name: str, locate: Callable[[], Path], settings: Settings):
        self.name = name
        self._locate = locate
        self._grammars = GrammarCache(check=self._check_grammar)
        self._vocab: Any = None
        self._concurrency = settings.local_concurrency
        self._queue_size = settings.local_queue_size
        self._threads = settings.local_threads
        self._slots: asyncio.Semaphore | None = None
        self._waiting = 0
        self._avg_seconds = 1.0  # running mean of a generation, for Retry-After
        self._executor = ThreadPoolExecutor(self._concurrency, thread_name_prefix=f"local-{name}")
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._path: Path | None = None

    async def admit(self) -> None:
        """Take a generation slot, or queue for one; a full queue is a 503 with a Retry-After."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._concurrency)
        if self._slots.locked() and self._waiting >= self._queue_size:
            wait = self._avg_seconds * (self._waiting + 1) / self._concurrency
            raise OverloadedError(
                f"local model '{self.name}' has {self._waiting} requests queued; try again shortly",
                retry_after=max(1, math.ceil(wait)),
            )
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1

    def start(self, plan: Plan, emit: Emit | None, cancel: threading.Event) -> asyncio.Future[Outcome]:
        """Run `plan` on a worker; the slot is released when the worker is really done."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        future = loop.run_in_executor(self._executor, self._generate, plan, emit, cancel)

        def release(done: asyncio.Future[Outcome]) -> None:
            if not done.cancelled():
                done.exception()  # retrieved here, so an abandoned stream logs no warning
            self._avg_seconds = 0.8 * self._avg_seconds + 0.2 * (loop.time() - started)
            assert self._slots is not None
            self._slots.release()

        future.add_done_callback(release)
        return future

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._lock:
            for llm in self._idle:
                llm.close()
            self._idle.clear()

    # ---- worker thread side

    def _generate(self, plan: Plan, emit: Emit | None, cancel: threading.Event) -> Outcome:
        llm = self._checkout()
        try:
            return self._run(llm, plan, emit, cancel)
        finally:
            with self._lock:
                self._idle.append(llm)

    def _checkout(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            if self._path is None:
                self._path = self._locate()
            path = self._path
        from llama_cpp import Llama

        try:
            return Llama(model_path=str(path), n_ctx=CONTEXT_TOKENS, n_threads=self._threads, verbose=False)
        except (ValueError, RuntimeError) as exc:
            message = f"llama.cpp could not load local model '{self.name}' from {path}: {exc}"
            raise ProviderError(message) from exc

    def _run(self, llm: Any, plan: Plan, emit: Emit | None, cancel: threading.Event) -> Outcome:
        import llama_cpp
        from llama_cpp import LlamaGrammar

        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self._vocab = vocab
        notes: list[str] = []
        grammar = None
        if plan.schema is not None:
            try:
                grammar = LlamaGrammar.from_string(self._grammars.get(plan.schema), verbose=False)
            except GrammarUnavailable as exc:
                notes.append(f"grammar unavailable for this schema: {exc}; fell back to prompting")
        fallback = plan.schema is not None and grammar is None
        prompt = _prompt(plan, fallback)
        tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        room = CONTEXT_TOKENS - len(tokens)
        if room < 1:
            raise BadRequestError(
                f"the prompt is {len(tokens)} tokens; local model '{self.name}' "
                f"has a context of {CONTEXT_TOKENS}"
            )
        max_tokens = min(plan.max_tokens, room)
        llm.set_seed(plan.seed if plan.seed is not None else random.getrandbits(31))
        shaper = OutputShaper(plan.stops, json_mode=plan.schema is not None, skip_to_json=fallback)
        decoder = _Utf8()
        parts: list[str] = []
        generated = 0
        finish = "length"
        with closing(llm.generate(tokens, grammar=grammar, reset=True, **plan.sampling)) as stream:
            for token in stream:
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    finish = "stop"
                    break
                generated += 1
                text = shaper.feed(decoder.feed(llm.detokenize([token])))
                if text:
                    parts.append(text)
                    if emit is not None:
                        emit(text)
                if shaper.done:
                    finish = "stop"
                    break
                if cancel.is_set() or generated >= max_tokens:
                    break
        tail = shaper.feed(decoder.flush()) + shaper.finish()
        if tail:
            parts.append(tail)
            if emit is not None:
                emit(tail)
        usage = Usage(input_tokens=len(tokens), output_tokens=generated)
        return Outcome(text="".join(parts), finish_reason=finish, usage=usage, notes=notes)

    def _check_grammar(self, gbnf: str) -> str | None:
        """llama.cpp's own parser must accept the text: a grammar it rejects would crash the sampler."""
        import llama_cpp

        sampler = llama_cpp.llama_sampler_init_grammar(self._vocab, gbnf.encode("utf-8"), b"root")
        if not sampler:
            return "llama.cpp could not parse the generated grammar"
        llama_cpp.llama_sampler_free(sampler)
        return None


class _Utf8:
    """Joins the bytes of tokens that split a character, so no half character is ever emitted."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> str:
        self._buffer += data
        try:
            text, self._buffer = self._buffer.decode("utf-8"), b""
            return text
        except UnicodeDecodeError as exc:
            if exc.start >= len(self._buffer) - 3 and exc.reason == "unexpected end of data":
                text = self._buffer[: exc.start].decode("utf-8", "replace")
                self._buffer = self._buffer[exc.start :]
                return text
            text, self._buffer = self._buffer.decode("utf-8", "replace"), b""
            return text

    def flush(self) -> str:
        text, self._buffer = self._buffer.decode("utf-8", "replace"), b""
        return text


class LocalAdapter:
    """The Adapter for `local/<name>`: the bundled Gemma 3 270M or any configured GGUF, and the
    offline embedding model (`local/all-minilm-l6-v2`, which needs no llama.cpp)."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._model_socket = settings.local_model_socket
        self._runners: dict[str, _Runner | RemoteRunner] = {}
        self._embedder: LocalEmbedder | RemoteEmbedder = (
            LocalEmbedder(settings.local_queue_size) if self._model_socket is None
            else RemoteEmbedder(self._model_socket))

    @property
    def model_names(self) -> list[str]:
        return [BUNDLED_MODEL, *(n for n in self._settings.local_models if n != BUNDLED_MODEL)]

    async def complete(self, request: ChatRequest) -> ChatResponse:
        runner, plan = self._prepare(request)
        exchange = _captured(runner.name, plan, stream=False)
        try:
            await runner.admit()
            cancel = threading.Event()
            future = runner.start(plan, None, cancel)
            try:
                outcome = await asyncio.shield(future)
            except asyncio.CancelledError:
                cancel.set()
                raise
        except BaseException as exc:
            if exchange is not None:
                exchange.finish(error=failure_text(exc))
            raise
        if exchange is not None:
            exchange.finish(status=200, response=_outcome_body(outcome))
        return ChatResponse(
            text=outcome.text,
            finish_reason=outcome.finish_reason,
            usage=outcome.usage,
            model=runner.name,
            notes=outcome.notes,
        )

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
        runner, plan = self._prepare(request)
        exchange = _captured(runner.name, plan, stream=True)
        failure: BaseException | None = None
        outcome: Outcome | None = None
        cancel = threading.Event()
        try:
            await runner.admit()
            loop = asyncio.get_running_loop()
            pieces: asyncio.Queue[str | None] = asyncio.Queue()

            def emit(text: str) -> None:
                loop.call_soon_threadsafe(pieces.put_nowait, text)

            future = runner.start(plan, emit, cancel)
            # Done callbacks run after every piece the worker scheduled, so None is always last.
            future.add_done_callback(lambda _: pieces.put_nowait(None))
            while (text := await pieces.get()) is not None:
                if exchange is not None:
                    exchange.add_chunk(_event({"text": text}))
                yield ChatChunk(text=text)
            outcome = future.result()
            if exchange is not None:
                exchange.add_chunk(_event(_outcome_fields(outcome)))
            yield ChatChunk(finish_reason=outcome.finish_reason, usage=outcome.usage, notes=outcome.notes)
        except BaseException as exc:  # GeneratorExit too: a stream closed early is recorded as stopped
            failure = exc
            raise
        finally:
            cancel.set()
            if exchange is not None:  # its events are the pieces as they came, then the outcome
                exchange.finish(status=200 if outcome is not None else None,
                                error=failure_text(failure) if outcome is None else None)
            failure = None  # the exception's traceback holds this frame

    async def embed(self, model: str, inputs: list[str], options: dict[str, Any]) -> EmbeddingResponse:
        if model != EMBEDDING_MODEL:
            raise BadRequestError(f"local/{model[:100]} does not embed; the local embedding model is "
                                  f"local/{EMBEDDING_MODEL}")
        return await self._embedder.embed(inputs, options)

    async def rerank(self, request: RerankRequest) -> RerankResponse:
        """The offline fallback: the documents ranked by the cosine similarity of their embeddings to
        the query's, on the local embedding model (its vectors are unit length, so a dot product)."""
        if request.model != EMBEDDING_MODEL:
            raise no_rerank("local", f"(local/{request.model[:100]}; local reranking is by local/{EMBEDDING_MODEL})")
        import numpy as np  # only a rerank needs it: a worker that never reranks stays smaller

        embedded = await self._embedder.embed([request.query, *request.documents], {})
        query, *documents = (np.asarray(vector, dtype=np.float32) for vector in embedded.vectors)
        scores = np.stack(documents) @ query
        order = np.argsort(-scores, kind="stable")[:request.top_n]
        return RerankResponse(ranking=[(int(index), float(scores[index])) for index in order], usage=embedded.usage,
                              model=EMBEDDING_MODEL)

    async def generate_images(self, request: ImageRequest) -> ImageResponse:
        raise BadRequestError("local models do not generate images; use e.g. openai/gpt-image-1")

    async def generate(self, model: str, plan: Plan, emit: Emit, cancel: threading.Event) -> Outcome:
        """One generation for the local model process, on a plan a worker checked; `emit` is called
        from the generating thread."""
        runner = self._runner(model)
        await runner.admit()
        return await asyncio.shield(runner.start(plan, emit, cancel))

    async def aclose(self) -> None:
        runners, self._runners = list(self._runners.values()), {}
        for runner in runners:
            if isinstance(runner, _Runner):
                await asyncio.to_thread(runner.close)
        await asyncio.to_thread(self._embedder.close)

    # ---- request checks, on the loop

    def _prepare(self, request: ChatRequest) -> tuple[_Runner | RemoteRunner, Plan]:
        runner = self._runner(request.model)
        if request.tools and request.tool_choice != "none":
            raise BadRequestError("local models do not support tool calling; use a hosted model for tools")
        build_prompt(request.messages)  # rejects unsupported content now rather than in the worker
        return runner, _plan(request)

    def _runner(self, name: str) -> _Runner | RemoteRunner:
        runner = self._runners.get(name)
        if runner is not None:
            return runner
        if self._model_socket is not None:
            if name not in self.model_names:
                raise _unknown_model(name, self.model_names)
            runner = self._runners[name] = RemoteRunner(name, self._model_socket)
            return runner
        try:
            import llama_cpp  # noqa: F401
        except ImportError as exc:
            raise ProviderNotConfiguredError(f"local chat models need llama-cpp-python; {INSTALL_HINT}") from exc
        configured = self._settings.local_models.get(name)
        if configured is not None:
            locate: Callable[[], Path] = lambda: configured_model_path(name, configured)  # noqa: E731
        elif name == BUNDLED_MODEL:
            data_dir = self._settings.data_dir
            locate = lambda: ensure_bundled_model(data_dir)  # noqa: E731
        else:
            raise _unknown_model(name, self.model_names)
        runner = self._runners[name] = _Runner(name, locate, self._settings)
        return runner


def _unknown_model(name: str, known: list[str]) -> BadRequestError:
    return BadRequestError(f"unknown local model '{name}'; available: {', '.join('local/' + n for n in known)}. "
                           "Add one with TASKGATE_LOCAL_MODELS=name=/path/model.gguf")


def _plan(request: ChatRequest) -> Plan:
    options = request.options
    structured = request.structured is not None
    default_temperature = 0.0 if structured else DEFAULT_TEXT_TEMPERATURE
    temperature = _number(options, "temperature", default_temperature, 0.0, 2.0)
    top_p = _number(options, "top_p", 0.95, 0.0, 1.0)
    max_tokens = options.get("max_tokens", options.get("max_completion_tokens"))
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise BadRequestError(f"max_tokens must be a positive integer, got {max_tokens!r}")
    stop = options.get("stop") or []
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise BadRequestError("stop must be a string or a list of strings")
    seed = options.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise BadRequestError(f"seed must be an integer, got {seed!r}")
    sampling = {
        "temp": temperature,
        "top_p": top_p,
        "frequency_penalty": _number(options, "frequency_penalty", 0.0, -2.0, 2.0),
        "presence_penalty": _number(options, "presence_penalty", 0.0, -2.0, 2.0),
    }
    return Plan(
        messages=request.messages,
        schema=request.structured.schema if request.structured is not None else None,
        max_tokens=max_tokens,
        stops=[*stops, TURN_STOP],
        sampling=sampling,
        seed=seed,
    )


def _captured(model: str, plan: Plan, *, stream: bool) -> Exchange | None:
    """The call's exchange with the in-process model, recorded as a generation like an upstream's:
    what the worker is asked (the conversation, schema and sampling) and what it answered."""
    return begin_built("local", LOCAL_PATH, lambda: {
        "model": model, "messages": plan.messages, "schema": plan.schema, "max_tokens": plan.max_tokens,
        "stop": plan.stops, "sampling": plan.sampling, "seed": plan.seed, "stream": stream}, stream=stream)


def _outcome_fields(outcome: Outcome) -> dict[str, Any]:
    usage = outcome.usage
    return {"finish_reason": outcome.finish_reason,
            "usage": {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}}


def _outcome_body(outcome: Outcome) -> bytes:
    return orjson.dumps({"text": outcome.text, **_outcome_fields(outcome)})


def _event(data: dict[str, Any]) -> bytes:
    """A local stream's piece as a server-sent event, so its generation reads like an upstream stream's."""
    return b"data: " + orjson.dumps(data) + b"\n\n"


def _prompt(plan: Plan, fallback: bool) -> str:
    """A grammar-constrained task gets the labelled task prompt; anything else the plain transcript."""
    if plan.schema is not None and not fallback and (task := read_task(plan.messages)) is not None:
        shaped = build_task_prompt(task, plan.schema)
        if shaped is not None:
            return shaped
    return build_prompt(plan.messages, json_hint=fallback)


def _number(options: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = options.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise BadRequestError(f"{key} must be a number between {low} and {high}, got {value!r}")
    return float(value)

