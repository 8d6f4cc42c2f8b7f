"""The task engine: one dialect-free path for every call.

validate → look up the cache → build the prompt → generate (with fallback and schema re-asks)
→ record the span. `run()` and `stream()` are one attempt loop (`Engine._events`), which `run()`
collects and `stream()` relays: only how an attempt's answer is obtained differs, so accounting,
cost, validation, re-asks and recording are written once. `run()` uses the provider's
non-streaming call because that is measurably cheaper than collecting a stream.

Every call that gets past its preparation is recorded exactly once, as ok, error, or cancelled
(the client left, or the server stopped), whatever point the cancellation reaches.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import jsonschema_rs

from taskgate.config import DEFAULT_EMBEDDING_MODEL
from taskgate.engine.analytics import UsageService
from taskgate.engine.cache import ResultCache
from taskgate.engine.catalogue import ModelCatalogue
from taskgate.engine.choices import run_choices, stream_choices
from taskgate.engine.cost import PriceBook
from taskgate.engine.datasets import DatasetService
from taskgate.engine.embeddings import Embedder, EmbeddingResult, EmbeddingTask
from taskgate.engine.entry_search import EntrySearch
from taskgate.engine.examples import ExampleService
from taskgate.engine.feedback import DEFAULT_AUTOSAVE_SCORE, FeedbackService
from taskgate.engine.functions import FunctionService
from taskgate.engine.generations import GenerationService
from taskgate.engine.guards import CallGuard
from taskgate.engine.images import image_payload, image_request, image_summary, mime_type_of
from taskgate.engine.knowledge.file_urls import FileUrlSigner
from taskgate.engine.knowledge.files import KnowledgeFiles
from taskgate.engine.knowledge.service import KnowledgeService
from taskgate.engine.limits import Budget, CallLimits
from taskgate.engine.media import MediaSeen, carries_media, summarised, typed_messages
from taskgate.engine.model_names import ModelNames
from taskgate.engine.ocr import OcrLimits, OcrService
from taskgate.engine.prompt import build_messages, input_turns, reask_message, render_answer
from taskgate.engine.provider_calls import ProviderCalls
from taskgate.engine.quotas.gate import QuotaGate
from taskgate.engine.rerank import Reranker, RerankLimits
from taskgate.engine.router import Outcome, RequestBuilder, Route, Router, UpstreamMeter
from taskgate.engine.schemas import as_written, canonical, compile_schema, validation_errors
from taskgate.engine.secret_box import SecretBox
from taskgate.engine.spans import REVISION_KEY, SpanService
from taskgate.engine.structured import AnswerParser, check_answer, parse_json_answer
from taskgate.engine.task import (
    ChoiceEvent,
    Event,
    Failed,
    Finished,
    ModelChoice,
    Result,
    Started,
    Task,
    TextDelta,
    ToolCallDelta,
)
from taskgate.engine.xml_answer import parse_xml_answer
from taskgate.engine.xml_shapes import Shape, xml_shape
from taskgate.errors import (
    BadRequestError,
    InputValidationError,
    JournalUnavailableError,
    ProviderError,
    StreamCancelledError,
    StructuredGenerationError,
    TaskgateError,
)
from taskgate.ids import new_id
from taskgate.providers.base import ChatRequest, ChatResponse, ChunkCollector, ImageRequest, StructuredOutput, Usage
from taskgate.providers.model_traits import MEDIA_CAPABILITY
from taskgate.providers.registry import ProviderRegistry
from taskgate.providers.wire_capture import CaptureScope, capturing
from taskgate.replicas.wiring import Replication
from taskgate.store.base import SpanRecord, Store
from taskgate.telemetry.generations import GenerationRecorder
from taskgate.telemetry.recorder import SpanRecorder

T = TypeVar("T")
XML_THREAD_CHARS = 32 * 1024  # an XML answer longer than this is read off the event loop (at most ~11 ms)


@dataclass(slots=True)
class Call:
    """Everything `_prepare` works out once, before any generation."""

    task: Task
    span_id: str
    trace_id: str
    started_at: datetime
    clock: float
    routes: list[Route]
    messages: list[dict[str, Any]]
    validator: jsonschema_rs.Draft202012Validator | None
    structured: StructuredOutput | None  # None in XML mode: the provider's JSON mode is not asked for
    parse_answer: AnswerParser  # the answer's text into JSON: JSON itself, or XML in XML mode
    xml: Shape | None  # XML mode: how the answer's XML is shaped
    cache_key: str | None
    max_attempts: int
    usage: Usage
    budget: Budget
    capture: CaptureScope | None  # where its upstream exchanges are recorded, as generations
    script_cached: bool = False
    revision_id: str | None = None  # the stored function's revision it runs with (None: not a stored function)
    has_media: bool = False  # its input carries media: the span stores `span_input`, with media by digest
    span_input: Any = None
    image_model: bool = False  # its chain generates images (`engine.images`), through the images API
    image_output: Any = None  # what the span keeps of its images (`images.image_summary`)
    cost: float | None = 0.0
    attempts: int = 0
    models_failed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    last_model: str | None = None
    last_output: Any = None
    recorded: bool = False


class Engine:
    def __init__(self, store: Store, recorder: SpanRecorder, registry: ProviderRegistry, default_model: str,
                 limits: CallLimits | None = None, *, secrets: SecretBox | None = None,
                 local_models: Iterable[str] = (), dataset_embedding_model: str | None = None,
                 feedback_autosave_score: float = DEFAULT_AUTOSAVE_SCORE,
                 generations: GenerationRecorder | None = None, rerank_limits: RerankLimits | None = None,
                 ocr_limits: OcrLimits | None = None, default_embedding_model: str = DEFAULT_EMBEDDING_MODEL,
                 knowledge_rerank_model: str | None = None, meter: UpstreamMeter | None = None,
                 quotas: QuotaGate | None = None, replication: Replication | None = None) -> None:
        """`dataset_embedding_model` (`provider/model`) turns on semantic search over dataset entries;
        `meter` is told of every upstream call and fallback (the Prometheus metrics); `quotas` checks
        and counts keys' and projects' limits on every model call; `replication` is what replicas
        share (default: a single node's stand-ins)."""
        replication = replication or Replication.single_node(store)
        self._limits = limits or CallLimits()
        self.quotas = quotas
        self._router = Router(registry, default_model, meter)
        self.catalogue = ModelCatalogue(registry, default_model, local_models)  # what can be routed to
        self._prices = PriceBook()
        self._cache = ResultCache(replication.cache)
        self.functions = FunctionService(store, notices=replication.notices)
        self.spans = SpanService(store, recorder, quotas.charge if quotas is not None else None,
                                 replication.span_mirror)
        secrets = secrets or SecretBox.ephemeral()
        self.model_names = ModelNames(store, registry, secrets, replication.notices)
        self.generations = GenerationService(store, generations)
        calls = ProviderCalls(self._router, self.model_names, self.price, self.spans, self.generations.scope,
                              quotas)
        self._embedder = Embedder(calls)
        self.reranker = Reranker(calls, rerank_limits or RerankLimits())
        self.ocr = OcrService(self.run, ocr_limits or OcrLimits())
        self.examples = ExampleService(store, EntrySearch(store, self._embedder.embed, dataset_embedding_model),
                                       replication.notices)
        self.datasets = DatasetService(self.functions, self.examples)
        self.feedback = FeedbackService(store, self.spans, self.functions, self.examples, feedback_autosave_score)
        self.usage = UsageService(store, recorder)
        self.knowledge = KnowledgeService(store, self._embedder.embed, self.reranker, self.spans,
                                          default_embedding_model, knowledge_rerank_model)
        self.knowledge_files = KnowledgeFiles(store, self.knowledge,
                                              FileUrlSigner(secrets.derived_key("knowledge file urls")))

    # ------------------------------------------------------------------ public

    async def run(self, task: Task) -> Result:
        """The call's result; every failure is raised."""
        result: Result | None = None
        async for event in self._call_events(task, streaming=False):
            if isinstance(event, Finished):  # without streaming the only event: failures are raised
                result = event.result
        if result is None:
            raise AssertionError("a call ends with its result or an error")
        return result

    async def run_choices(self, task: Task, n: int) -> list[Result]:
        """`n` independent results of one task (OpenAI's `n`), made at once; see `engine.choices`."""
        return await run_choices(self.run, task, n)

    def stream_choices(self, task: Task, n: int) -> AsyncGenerator[ChoiceEvent, None]:
        """`n` independent streams of one task, relayed as one; see `engine.choices`."""
        return stream_choices(self.stream, task, n)

    def stream(self, task: Task) -> AsyncGenerator[Event, None]:
        """Started, deltas, then Finished or Failed; errors before Started are raised instead.

        The consumer may stop at any event (the client left): the span is still recorded once, and
        the upstream stream is closed. A structured answer that misfits is asked again, as `run`
        asks, only while no delta has gone out (see `_events`).
        """
        return self._call_events(task, streaming=True)

    def price(self, provider: str, model: str, usage: Usage) -> float | None:
        """USD for `usage` on `provider`'s `model`: None when no price is known, 0.0 for a model that
        runs on this machine. The one price path, for generations and embeddings alike."""
        return self._prices.cost(self._router.price_provider(provider), model, usage)

    # ------------------------------------------------------------------ the attempt loop

    def _call_events(self, task: Task, streaming: bool) -> AsyncGenerator[Event, None]:
        """The attempt loop, with the task's guards when it asks for any: a call without them takes
        the loop as it is, and pays nothing for guards."""
        if task.guards is None:
            return self._events(task, streaming, None)
        return self._guarded_events(task, streaming, CallGuard(task.guards, json_output=task.output_schema is not None))

    async def _guarded_events(self, task: Task, streaming: bool, guard: CallGuard) -> AsyncGenerator[Event, None]:
        """The attempt loop under `guard`; what it found is stored as `guardrail` events of the call's
        span before the call's last event (or error) goes out, so a reader who has the answer finds them."""
        try:
            async for event in self._events(task, streaming, guard):
                if isinstance(event, Finished | Failed):
                    await self._save_hits(task, guard)
                yield event
        except TaskgateError:
            await self._save_hits(task, guard)
            raise

    async def _save_hits(self, task: Task, guard: CallGuard) -> None:
        if guard.span_id is not None and guard.hits:
            await self.feedback.add_events(task.project_id, guard.span_id, "guardrail", "guard",
                                           [hit.event() for hit in guard.hits])

    async def _events(self, task: Task, streaming: bool, guard: CallGuard | None) -> AsyncGenerator[Event, None]:
        """The one attempt loop: `run` collects it and `stream` relays it.

        An attempt's answer comes whole from the provider's `complete()` (cheaper than collecting a
        stream, so `run` uses it, and yields only Finished), or, streaming, is relayed delta by delta
        as the model produces it and collected all the same. Either way each attempt is accounted
        (usage, cost, notes) and checked against the output schema; a misfit is asked again with its
        errors, up to max_attempts; and the call is recorded exactly once.

        A stream cannot take back what it has sent. So a misfit is asked again only while no
        TextDelta or ToolCallDelta has gone out (the model answered with nothing, or only with a
        finish), and then exactly as `run` would; once a delta has gone out, the stream ends with
        Failed. A task with `hold_structured_text` sends no structured TextDelta at all, so its
        misfits are always asked again; its dialect sends the validated answer from Finished.
        Errors before Started are raised; after it, they end the events as Failed.

        With a `guard`, the conversation is screened before anything else (a block is raised, and
        recorded), streamed deltas pass through it, and the answer is restored and screened before
        it is recorded (see `taskgate.engine.guards.call`).
        """
        call = await self._prepare(task, streaming)
        try:
            if call.image_model:
                result = await self._generated_images(call)
                if self.spans.mirrored:  # without replicas the id is readable at once: nothing to await
                    await self.spans.settled(task.project_id, call.span_id)
                yield Finished(result)
                return
            if guard is not None:
                guard.span_id = call.span_id
                call.messages = await self._screened(call, guard.screen_input, call.messages)
                if call.cache_key is not None:  # what is cached is what the provider was asked
                    call.cache_key = _cache_key(task, call.messages, call.routes)
            # An uncached call (the usual one) makes no coroutine to learn that it has no cache entry.
            cached = None if call.cache_key is None else await self._cache.get(task.project_id, call.cache_key)
            if cached is not None:
                if guard is not None:
                    cached = await self._screened(call, guard.screen_output, cached)
                result = self._finish(call, cached)  # recorded before the first yield, which may be the last
                if streaming:
                    yield Started(call.span_id, call.trace_id, result.guards)
                    replay = cached.text if cached.payload is None else render_answer(cached.payload, call.xml)
                    if replay:
                        yield TextDelta(replay)
                    for index, tool in enumerate(cached.tool_calls):  # as the live stream gave them
                        yield ToolCallDelta(index, tool.id, tool.name, tool.arguments)
                if self.spans.mirrored:  # without replicas the id is readable at once: nothing to await
                    await self.spans.settled(task.project_id, call.span_id)
                yield Finished(result)
                return
            messages, routes = call.messages, call.routes
            started = sent = False  # whether Started, and whether any delta, went out
            hold_text = task.hold_structured_text and call.validator is not None
            while True:
                build = self._request_builder(call, messages)
                try:
                    with capturing(call.capture):  # a stream is marked as it opens, for all its reads
                        if streaming:
                            chunks, outcome = await self._router.open_stream(routes, build, call.budget)
                        else:
                            response, outcome = await self._router.complete(routes, build, call.budget)
                except TaskgateError as exc:
                    if isinstance(exc, ProviderError):
                        call.models_failed.extend(exc.models_failed)
                    self._record(call, call.last_model, error=exc, output=call.last_output)
                    if not started:
                        raise
                    yield Failed(exc)
                    return
                call.attempts += 1
                call.models_failed.extend(outcome.failed)
                call.last_model = outcome.route.choice.name
                if streaming and not started:
                    try:  # journaled before the first byte goes out, as it would read if we died mid-stream
                        self.spans.open(self._span(call, call.last_model, output=None, error=None, status="error"))
                    except TaskgateError as exc:
                        await chunks.aclose()
                        self._record(call, call.last_model, error=exc)
                        raise
                if streaming:
                    collector = ChunkCollector()
                    try:
                        if not started:
                            started = True
                            # inside the try: stopping here closes `chunks`
                            yield Started(call.span_id, call.trace_id, guard.reports() if guard is not None else [])
                        async for chunk in chunks:
                            collector.add(chunk)
                            text, arguments = chunk.text, chunk.tool_arguments
                            if guard is not None:
                                text = guard.stream_text(text) if text else text
                                if chunk.tool_index is not None:
                                    arguments = guard.stream_tool(chunk.tool_index, arguments)
                            if text and not hold_text:
                                sent = True
                                # a guard may have changed the text: the tokens' logprobs would tell what it was
                                yield TextDelta(text, chunk.logprobs if guard is None else None)
                            if chunk.tool_index is not None and (guard is None or arguments or chunk.tool_id
                                                                 or chunk.tool_name):
                                sent = True
                                yield ToolCallDelta(chunk.tool_index, chunk.tool_id, chunk.tool_name, arguments)
                    except TaskgateError as exc:
                        self._account(call, outcome.route, collector.response())
                        self._record(call, call.last_model, error=exc, output=call.last_output)
                        yield Failed(exc)
                        return
                    except (asyncio.CancelledError, GeneratorExit):
                        self._account(call, outcome.route, collector.response())
                        raise
                    finally:
                        await chunks.aclose()
                    response = collector.response()
                self._account(call, outcome.route, response)
                payload, errors = await self._checked(call, response)
                if not errors and streaming and guard is not None:  # an answer that stands: send what was held back
                    try:
                        rests = guard.flush_stream()
                    except TaskgateError as exc:
                        self._record(call, call.last_model, error=exc, output=call.last_output)
                        yield Failed(exc)
                        return
                    for key, rest in rests:
                        if key != "text":
                            yield ToolCallDelta(int(key), None, None, rest)
                        elif not hold_text:
                            yield TextDelta(rest)
                if not errors:
                    result = self._result(call, response, outcome, payload)
                    if call.cache_key is not None:
                        await self._cache.put(task.project_id, call.cache_key, result, task.config.cache_ttl)
                    if guard is not None:  # a stream's channels screened what they sent
                        result = await self._screened(call, functools.partial(guard.screen_output, scan=not streaming),
                                                      result)
                    result = self._finish(call, result, answering=streaming)
                    if self.spans.mirrored:
                        await self.spans.settled(task.project_id, call.span_id)  # its id is readable everywhere
                    yield Finished(result)
                    return
                if sent or call.attempts >= call.max_attempts:
                    error = _misfit(errors, call.attempts, sent)
                    self._record(call, call.last_model, error=error, output=call.last_output)
                    if not started:
                        raise error
                    yield Failed(error)
                    return
                if guard is not None:
                    guard.reset_stream()
                messages = [*messages, {"role": "assistant", "content": response.text},
                            reask_message(errors, xml=call.xml is not None)]
                routes = routes[routes.index(outcome.route):]  # a re-ask goes to the model that answered
        except (asyncio.CancelledError, GeneratorExit):
            self._record_cancelled(call)
            raise

    async def _screened(self, call: Call, screen: Callable[[T], T], value: T) -> T:
        """`screen(value)`, in a worker thread: a whole conversation or answer may be megabytes, and
        its scan must not hold up the other requests. A guard's refusal is recorded as the call's error."""
        try:
            return await asyncio.to_thread(screen, value)
        except TaskgateError as exc:
            self._record(call, call.last_model, error=exc, output=call.last_output)
            raise

    async def _generated_images(self, call: Call) -> Result:
        """An image model's answer: from the cache, or from its images API with fallback along the
        chain; priced per image where the model is billed so, else by its tokens; recorded once."""
        task = call.task
        cached = await self._cache.get(task.project_id, call.cache_key)
        if cached is not None:
            call.image_output = await asyncio.to_thread(image_summary, cached.images, cached.payload["mime_type"])
            return self._finish(call, cached)
        asked: list[ImageRequest] = []

        def build(route: Route) -> ImageRequest:
            wire = self._router.traits(route).images
            if wire is None:
                raise AssertionError("an image chain has only image models")
            asked.append(image_request(task, route.model, wire))
            return asked[-1]

        try:
            with capturing(call.capture):
                response, outcome = await self._router.generate_images(call.routes, build, call.budget)
        except TaskgateError as exc:
            if isinstance(exc, ProviderError):
                call.models_failed.extend(exc.models_failed)
            self._record(call, call.last_model, error=exc)
            raise
        route = outcome.route
        call.attempts += 1
        call.models_failed.extend(outcome.failed)
        call.last_model = route.choice.name
        call.usage.add(response.usage)
        per_image = self._router.traits(route).image_price
        call.cost = (per_image * len(response.images) if per_image is not None
                     else self.price(route.provider, route.model, response.usage))
        payload = image_payload(response.images, mime_type_of(asked[-1]))
        if call.validator is not None and (errors := validation_errors(call.validator, payload)):
            error = StructuredGenerationError("the image answer {image, mime_type} does not match output_schema: "
                                              + "; ".join(errors), details={"errors": errors})
            self._record(call, call.last_model, error=error)
            raise error
        result = Result(span_id=call.span_id, trace_id=call.trace_id, text=None, payload=payload,
                        images=response.images, usage=call.usage, cost=call.cost, model=route.choice.name,
                        models_failed=call.models_failed, attempts=call.attempts, script_cached=call.script_cached,
                        generation_ms=(time.perf_counter() - call.clock) * 1000)
        await self._cache.put(task.project_id, call.cache_key, result, task.config.cache_ttl)
        call.image_output = await asyncio.to_thread(image_summary, result.images, payload["mime_type"])  # hashing
        return self._finish(call, result)

    async def embed(self, task: EmbeddingTask) -> EmbeddingResult:
        """Embeddings, priced and recorded like a call (see `taskgate.engine.embeddings`)."""
        return await self._embedder.embed(task)

    # ------------------------------------------------------------------ preparation

    async def _prepare(self, task: Task, streaming: bool) -> Call:
        max_attempts = self._limits.attempts(task.config.max_attempts)  # first: a refused call stores nothing
        self.spans.admit()  # a call whose span could not be journaled is refused before it costs anything
        clock = time.perf_counter()
        started_at = datetime.now(UTC)
        validator, structured, xml = None, None, None
        parse_answer: AnswerParser = parse_json_answer
        if task.output_schema is not None:
            output = compile_schema(task.output_schema, "output_schema")
            validator = output.validator
            # The caller's schema: how a vendor is made to follow it is its adapter's business.
            structured = StructuredOutput(task.output_schema, key=output.source)
        if task.config.xml_mode:  # the model is asked for XML instead, in the prompt
            xml, structured = xml_shape(task.output_schema), None
            parse_answer = functools.partial(parse_xml_answer, shape=xml)
        if task.input_schema is not None:
            input_schema = compile_schema(task.input_schema, "input_schema")
            if task.config.validate_input:
                errors = validation_errors(input_schema.validator, task.input)
                if errors:
                    raise InputValidationError("input does not match input_schema: " + "; ".join(errors))
        if task.tools:
            _check_tool_schemas(task.tools)
        # No chain named (the default model): nothing of the project's to expand, and no coroutine for it.
        models = await self.model_names.resolve(task.project_id, task.models) if task.models else task.models
        routes = self._router.resolve(models)
        if self.quotas is not None and not self.quotas.admit_unlimited():  # before anything is stored for the call
            await self.quotas.admit([route.choice.name for route in routes])
        image_model = self._image_chain(routes, task, streaming)
        # The caller's media checked before anything is stored for the call (its function, its span),
        # off the event loop: decoding and hashing cost a few ms per MB (bench.media).
        turns, has_media, span_input = input_turns(task), False, None
        if carries_media(turns):
            turns, media, span_input = await asyncio.to_thread(self._typed_media, task, turns)
            self._check_media(routes, media)
            has_media = bool(media.types)
        # Without a parent there is nothing to look up: a new trace, without a coroutine for it.
        parent_id = task.parent_span_id
        trace_id = new_id() if parent_id is None else await self.spans.trace_for(task.project_id, parent_id)
        examples = list(task.examples)
        script_cached, revision_id = False, None
        if task.record_function:
            function, script_cached = await self.functions.ensure(task)
            revision_id = function.revision_id
            if function.few_shot_count > 0:
                examples += await self.examples.select(
                    task.project_id, function.id, task.input, function.few_shot_count
                )
        messages = build_messages(task, examples, xml, turns)
        usage = Usage()
        span_id = new_id()
        call = Call(
            task=task,
            span_id=span_id,
            trace_id=trace_id,
            started_at=started_at,
            clock=clock,
            routes=routes,
            messages=messages,
            validator=validator,
            structured=structured,
            parse_answer=parse_answer,
            xml=xml,
            cache_key=_cache_key(task, messages, routes) if task.config.cache_ttl > 0 else None,
            max_attempts=max_attempts,
            usage=usage,
            budget=Budget(self._limits, usage),
            capture=self.generations.scope(task.project_id, span_id, trace_id),
            script_cached=script_cached,
            revision_id=revision_id,
            has_media=has_media,
            span_input=span_input,
            image_model=image_model,
        )
        return call

    def _image_chain(self, routes: list[Route], task: Task, streaming: bool) -> bool:
        """Whether the chain's models generate images (`engine.images`); a 400 for what such a call
        cannot do rather than a wrong answer: a chain mixing them with chat models, a stream, a
        conversation, tools or guards."""
        traits = self._router.traits
        makers = [traits(route).images is not None for route in routes]
        if True not in makers:
            return False
        name = routes[makers.index(True)].choice.name
        if not all(makers):
            raise BadRequestError(f"model '{name}' generates images: a model chain cannot mix it with chat models")
        refused = ("streaming" if streaming else "a conversation (messages)" if task.messages is not None
                   else "tools" if task.tools else "guards" if task.guards is not None else None)
        if refused is not None:
            raise BadRequestError(f"model '{name}' generates images through its images API, which takes no "
                                  f"{refused}; call it with an input prompt (v2 or v3 call, not streamed)")
        return True

    def _typed_media(self, task: Task, turns: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], MediaSeen, Any]:
        """The caller's turns with their media checked and typed, what they carry, and the span's input
        with the media by digest (`engine.media`)."""
        typed, media = typed_messages(turns, self._limits.max_media_bytes)
        return typed, media, summarised(task.input if task.messages is None else {"messages": task.messages})

    def _check_media(self, routes: list[Route], media: MediaSeen) -> None:
        """Every model of the chain must take the call's media: a 400 naming the model and the type
        before any upstream call, rather than the vendor's refusal (or a fallback's) after one."""
        for route in routes:
            traits = self._router.traits(route)
            for kind, types in sorted(media.types.items()):
                capability = MEDIA_CAPABILITY[kind]
                if traits.refuses(capability):
                    raise BadRequestError(
                        f"model '{route.choice.name}' cannot take {kind} input ({', '.join(sorted(types))}); "
                        f"GET /v3/models?capability={capability} lists the models that can")

    # ------------------------------------------------------------------ generation

    def _request_builder(self, call: Call, messages: list[dict[str, Any]]) -> RequestBuilder:
        """Per chain entry: the call's request, with that model's options over the task's."""
        task = call.task

        def build(choice: ModelChoice, model: str) -> ChatRequest:
            options = {**task.options, **choice.options} if choice.options else task.options
            return ChatRequest(
                model=model,
                messages=messages,
                tools=task.tools,
                tool_choice=task.tool_choice,
                structured=call.structured,
                options=dict(options),
                extra_headers=choice.extra_headers,
            )

        return build

    def _account(self, call: Call, route: Route, response: ChatResponse) -> None:
        """What one attempt used, whether it finished, failed or was stopped: its usage and cost, its
        notes, and its output (for the span)."""
        call.last_output = response.text
        call.notes.extend(response.notes)
        call.usage.add(response.usage)
        cost = self.price(route.provider, route.model, response.usage)
        call.cost = None if cost is None or call.cost is None else call.cost + cost

    async def _checked(self, call: Call, response: ChatResponse) -> tuple[Any, list[str]]:
        """`_check`, in a worker thread for a long XML answer: reading one takes up to 0.35 ms per
        KB (bench/xml_mode.py), which must not hold up the other requests."""
        if call.xml is not None and len(response.text) > XML_THREAD_CHARS:
            return await asyncio.to_thread(self._check, call, response)
        return self._check(call, response)

    def _check(self, call: Call, response: ChatResponse) -> tuple[Any, list[str]]:
        """(the validated payload, []) or (None, what is wrong with the answer, to show the model)."""
        if not self._expects_json(call, response):
            return None, []
        return check_answer(response.text, call.validator, call.parse_answer)  # type: ignore[arg-type]

    @staticmethod
    def _expects_json(call: Call, response: ChatResponse) -> bool:
        """With a schema the answer must be JSON, unless the model chose to call the caller's tools."""
        return call.validator is not None and not (response.tool_calls and call.task.tools)

    # ------------------------------------------------------------------ results and recording

    def _result(self, call: Call, response: ChatResponse, outcome: Outcome, payload: Any) -> Result:
        return Result(
            span_id=call.span_id,
            trace_id=call.trace_id,
            text=None if self._expects_json(call, response) else response.text,
            payload=payload,
            tool_calls=response.tool_calls,
            finish_reason=response.finish_reason,
            stop_sequence=response.stop_sequence,
            logprobs=response.logprobs,
            usage=call.usage,
            cost=call.cost,
            model=outcome.route.choice.name,
            models_failed=call.models_failed,
            attempts=call.attempts,
            script_cached=call.script_cached,
            generation_ms=(time.perf_counter() - call.clock) * 1000,
        )

    def _finish(self, call: Call, result: Result, *, answering: bool = False) -> Result:
        """Record the call's answer. An answer whose span the journal refused (its disk filled
        during the call) does not go out: the call is recorded and refused as a 503, unless it is
        already `answering` (a stream under way, whose opening was journaled)."""
        result.span_id, result.trace_id = call.span_id, call.trace_id
        result.script_cached = call.script_cached
        result.duration_ms = (time.perf_counter() - call.clock) * 1000
        if not self._record(call, result.model, result=result) and not answering:
            error = JournalUnavailableError("the call's record could not be journaled (the disk is full); "
                                            "it was not answered; try again shortly")
            self._record(call, result.model, error=error, output=None)
            raise error
        return result

    def _record_cancelled(self, call: Call) -> None:
        """The call stopped because its task was cancelled: record it as such, unless it already was."""
        if not call.recorded:
            self._record(call, call.last_model, error=StreamCancelledError(), output=call.last_output,
                         status="cancelled")

    def _record(
        self,
        call: Call,
        model: str | None,
        *,
        result: Result | None = None,
        error: TaskgateError | None = None,
        output: Any = None,
        status: str | None = None,
    ) -> bool:
        """Record the call's span, once; whether it is journaled (see `SpanService.record`)."""
        if result is not None:
            output = result.payload if result.payload is not None else result.text
            if result.images:  # never their base64
                output = call.image_output
        meta: dict[str, Any]
        if result is None:
            meta = {"script_cached": call.script_cached}
        else:
            meta = {"script_cached": call.script_cached, "cached": result.cached,
                    "finish_reason": result.finish_reason}
            if result.tool_calls:
                meta["tool_calls"] = [asdict(t) for t in result.tool_calls]
            if result.images:
                meta["images"] = len(result.images)
        if call.notes:
            meta["notes"] = call.notes
        if call.revision_id is not None:
            meta[REVISION_KEY] = call.revision_id
        call.recorded = True
        return self.spans.record(self._span(call, model, output=output, error=error, status=status, meta=meta))

    @staticmethod
    def _span(call: Call, model: str | None, *, output: Any, error: TaskgateError | None, status: str | None,
              meta: dict[str, Any] | None = None) -> SpanRecord:
        task = call.task
        return SpanRecord(
            id=call.span_id,
            trace_id=call.trace_id,
            project_id=task.project_id,
            name=task.function_name,
            type=task.span_type,
            parent_id=task.parent_span_id,
            start_time=call.started_at,
            end_time=datetime.now(UTC),
            input=call.span_input if call.has_media else
            task.input if task.messages is None else {"messages": task.messages},  # never media's base64
            output=output,
            error=error.detail if error is not None else None,
            status=status or ("error" if error is not None else "ok"),
            model_chain=[r.choice.name for r in call.routes],
            model_used=model,
            models_failed=list(call.models_failed),
            attempts=call.attempts,
            usage=call.usage.as_dict(),
            cost=call.cost,
            tags=dict(task.tags),
            meta=meta if meta is not None else {"script_cached": call.script_cached},
            function_name=task.function_name if task.record_function else None,
        )


def _misfit(errors: list[str], attempts: int, sent: bool) -> StructuredGenerationError:
    """The error of an answer that broke the schema and may not be asked again."""
    if sent:
        message = "the streamed answer does not match output_schema: " + "; ".join(errors)
    else:
        message = f"no answer matched output_schema after {attempts} attempts; last errors: " + "; ".join(errors)
    return StructuredGenerationError(message, details={"errors": errors})


def _check_tool_schemas(tools: list[dict[str, Any]] | None) -> None:
    """Tool parameters go upstream as they are, but are held to the same rules as every schema:
    self-contained and bounded (a 400 naming the tool otherwise). Cached like the others."""
    for index, tool in enumerate(tools or ()):
        function = tool.get("function")
        parameters = function.get("parameters") if isinstance(function, dict) else None
        if parameters is not None:
            compile_schema(parameters, f"tools[{index}] parameters")


def _cache_key(task: Task, messages: list[dict[str, Any]], routes: list[Route]) -> str:
    """Project, function, effective prompt, schemas, input, tools and model chain (a custom model
    by its version, so changing its endpoint or identifier is not answered from the cache).

    Sorted keys let equal values share a key, except in the schemas and tools, which are hashed as
    written: the same schema in another property order asks for its fields in another order."""
    digest = hashlib.sha256(canonical(
        [
            task.project_id,
            task.function_name,
            messages,
            task.input,
            task.tool_choice,
            task.options,
            [[r.choice.name, r.choice.options, *([r.choice.custom.version] if r.choice.custom else [])]
             for r in routes],
        ]
    ))
    digest.update(b"\n")  # neither part holds a raw newline: the boundary is unambiguous
    digest.update(as_written([task.input_schema, task.output_schema, task.tools]))
    return digest.hexdigest()


