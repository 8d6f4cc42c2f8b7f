"""The one small interface every provider adapter implements.

Messages, tools and tool_choice use the OpenAI Chat Completions shapes (plain dicts), because
that is the lingua franca of our callers: the OpenAI-compatible adapter passes them through and
the Anthropic adapter translates them. Adapters know nothing of spans, caches, costs or dialects.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from taskgate.errors import BadRequestError, TaskgateError

E = TypeVar("E")


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.cache_read_tokens += other.cache_read_tokens
        self.cache_write_tokens += other.cache_write_tokens

    def as_dict(self) -> dict[str, int]:
        """Every count by its own name, with the total: how a span records usage."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
        }


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # raw JSON text, as the model produced it


@dataclass(slots=True)
class StructuredOutput:
    """Ask the adapter for native constrained JSON output matching the caller's `schema`.

    How a vendor is made to follow it (OpenAI's strict mode, Anthropic's forced tool, a llama.cpp
    grammar) is the adapter's knowledge, not the engine's. `key` is the schema's compact JSON, keys in
    the caller's order, when the engine has it at hand: an adapter keeps what it derives from a schema
    per distinct `key`, without serialising the schema again on every call. Whatever it derives keeps
    the caller's property order, which is part of the schema's meaning.
    """

    schema: dict[str, Any]
    name: str = "output"
    key: bytes | None = None


@dataclass(slots=True)
class ChatRequest:
    model: str  # the provider's own model id (after the "provider/" prefix)
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None  # OpenAI shape: {"type": "function", "function": {...}}
    tool_choice: Any = None  # OpenAI shape: "auto" | "none" | "required" | {"type":"function",...}
    structured: StructuredOutput | None = None
    options: dict[str, Any] = field(default_factory=dict)  # temperature, max_tokens, stop, top_p, ...
    extra_headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ChatResponse:
    """A whole completion. With `structured`, `text` holds the JSON text of the object."""

    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str = "stop"  # stop | length | tool_calls | content_filter
    usage: Usage = field(default_factory=Usage)
    model: str = ""  # as reported by the upstream
    notes: list[str] = field(default_factory=list)  # adapter remarks worth a span attribute (e.g. a fallback)
    logprobs: list[dict[str, Any]] | None = None  # per-token log probabilities (OpenAI's `logprobs.content`)
    # The stop sequence the answer ended on, when the upstream says which (Anthropic's `stop_sequence`;
    # OpenAI's finish_reason "stop" does not tell a stop sequence from the model's own end).
    stop_sequence: str | None = None


@dataclass(slots=True)
class ChatChunk:
    """One streamed piece. Exactly one of the payload fields is set in practice.

    With `structured`, `text` carries fragments of the JSON text (for Anthropic: the forced
    tool's `input_json_delta` fragments), so callers need not care how the adapter got it.
    """

    text: str = ""
    tool_index: int | None = None  # set for a tool-call fragment
    tool_id: str | None = None  # first fragment of an index only
    tool_name: str | None = None  # first fragment of an index only
    tool_arguments: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    notes: Sequence[str] = ()  # set on the final chunk, as ChatResponse.notes (no list per piece)
    logprobs: list[dict[str, Any]] | None = None  # the log probabilities of this piece's text, when asked for
    stop_sequence: str | None = None  # set with the finish, as ChatResponse.stop_sequence


class ChunkCollector:
    """A stream's pieces gathered into the ChatResponse a non-streamed call would have returned.

    The engine collects what it relays with one, so that a streamed attempt is accounted, checked
    and recorded exactly like a completed one; the scripted adapter collects its scripted pieces.
    """

    __slots__ = ("_response", "_text", "_tools")

    def __init__(self) -> None:
        self._response = ChatResponse(text="")
        self._text: list[str] = []
        self._tools: dict[int, ToolCall] = {}

    def add(self, chunk: ChatChunk) -> None:
        if chunk.text:
            self._text.append(chunk.text)
        if chunk.logprobs is not None:
            if self._response.logprobs is None:
                self._response.logprobs = []
            self._response.logprobs.extend(chunk.logprobs)
        if chunk.tool_index is not None:
            tool = self._tools.get(chunk.tool_index)
            if tool is None:
                tool = self._tools[chunk.tool_index] = ToolCall(id="", name="", arguments="")
            tool.id = chunk.tool_id or tool.id
            tool.name = chunk.tool_name or tool.name
            tool.arguments += chunk.tool_arguments
        if chunk.finish_reason:
            self._response.finish_reason = chunk.finish_reason
        if chunk.stop_sequence is not None:
            self._response.stop_sequence = chunk.stop_sequence
        if chunk.usage is not None:
            self._response.usage.add(chunk.usage)
        if chunk.notes:
            self._response.notes.extend(chunk.notes)

    def response(self) -> ChatResponse:
        """What has arrived so far, as one response: whole at the stream's end, partial when it
        failed or was stopped (what it used is accounted all the same)."""
        response = self._response
        response.text = "".join(self._text)
        response.tool_calls = [self._tools[index] for index in sorted(self._tools)]
        return response


class PieceReader(Generic[E]):
    """One stream's pieces, read from the batches of events its network reads delivered.

    Pieces that one read delivered are merged (`coalesce`): they gain nothing from travelling apart,
    and every piece costs a trip through the engine and a write to the client. Until the stream's
    first output, though, events are decoded one at a time and the first output goes on alone: the
    client's first delta must not wait for the rest of its read (after a slow moment, dozens of
    events can arrive in one). Reading stops after the event that finishes the stream.
    """

    __slots__ = ("_finished", "_merge", "_pieces_of")

    def __init__(self, pieces_of: Callable[[E], list[ChatChunk]], finished: Callable[[], bool]) -> None:
        self._pieces_of = pieces_of
        self._finished = finished
        self._merge = False  # set once the first output has gone on

    def read(self, events: Iterable[E]) -> Iterator[ChatChunk]:
        """The pieces of one read's events. An event carrying an upstream error raises it, after
        the pieces before it: text that arrived ahead of a failure was output, and counts as such."""
        remaining = iter(events)
        if not self._merge:
            for event in remaining:
                pieces = self._pieces_of(event)
                yield from pieces
                if self._finished():
                    return
                if pieces:
                    self._merge = True
                    break
        pieces, failure = _merged(remaining, self._pieces_of, self._finished)
        yield from pieces
        if failure is not None:
            try:
                raise failure
            finally:  # this frame joins the error's traceback: holding the error too would be a cycle
                failure = None


def _merged(
    events: Iterable[E], pieces_of: Callable[[E], list[ChatChunk]], finished: Callable[[], bool]
) -> tuple[list[ChatChunk], TaskgateError | None]:
    pieces: list[ChatChunk] = []
    for event in events:
        try:
            pieces += pieces_of(event)
        except TaskgateError as exc:
            return coalesce(pieces), exc
        if finished():
            break
    return coalesce(pieces), None


def coalesce(chunks: list[ChatChunk]) -> list[ChatChunk]:
    """Merge neighbouring text pieces, and neighbouring argument pieces of one tool call.

    Adapters call this on what one network read delivered: pieces that arrived together gain
    nothing from travelling apart, and every piece costs a trip through the engine and a write to
    the client. Pieces carrying anything else (a tool's id, a finish, usage) stay as they are.
    Argument pieces are appended to the piece before them in place: pass pieces made for this call.
    """
    merged: list[ChatChunk] = []
    text_run: list[ChatChunk] = []  # the text-only pieces since the last other piece
    for chunk in chunks:
        if _text_only(chunk):
            text_run.append(chunk)
            continue
        if text_run:
            merged.append(_joined(text_run))
            text_run = []
        last = merged[-1] if merged else None
        if (
            last is not None and _arguments_only(chunk) and last.tool_index == chunk.tool_index
            and last.finish_reason is None and last.usage is None and not last.notes
        ):
            last.tool_arguments += chunk.tool_arguments
        else:
            merged.append(chunk)
    if text_run:
        merged.append(_joined(text_run))
    return merged


def _joined(run: list[ChatChunk]) -> ChatChunk:
    """Text pieces as one, their log probabilities (when asked for) in order."""
    if len(run) == 1:
        return run[0]
    text = "".join(chunk.text for chunk in run)
    if all(chunk.logprobs is None for chunk in run):
        return ChatChunk(text=text)
    return ChatChunk(text=text, logprobs=[entry for chunk in run for entry in chunk.logprobs or ()])


def _text_only(chunk: ChatChunk) -> bool:
    return (chunk.tool_index is None and chunk.finish_reason is None and chunk.usage is None
            and not chunk.notes)


def _arguments_only(chunk: ChatChunk) -> bool:
    return (chunk.tool_index is not None and chunk.tool_id is None and chunk.tool_name is None
            and not chunk.text and chunk.finish_reason is None and chunk.usage is None and not chunk.notes)


@dataclass(slots=True)
class EmbeddingResponse:
    vectors: list[list[float]]
    usage: Usage = field(default_factory=Usage)
    model: str = ""


@dataclass(slots=True)
class RerankRequest:
    """Documents to order by relevance to `query` (the Cohere-style rerank wire's fields)."""

    model: str  # the provider's own model id
    query: str
    documents: list[str]
    top_n: int | None = None  # None: every document, ranked
    options: dict[str, Any] = field(default_factory=dict)  # timeout; vendor extras such as max_chunks_per_doc


@dataclass(slots=True)
class RerankResponse:
    """Each document's relevance, most relevant first: `(index into the request's documents, score)`."""

    ranking: list[tuple[int, float]]
    usage: Usage = field(default_factory=Usage)  # tokens, when the vendor counts them
    search_units: int = 0  # what Cohere bills by, when the vendor reports it
    model: str = ""


def no_rerank(provider: str, why: str) -> BadRequestError:
    """The 400 of a provider without a rerank API, saying which providers have one."""
    return BadRequestError(f"provider '{provider}' {why} has no rerank API; rerank through a provider "
                           "that offers one (cohere/..., jina/..., together/..., vllm/... or one configured "
                           "with `rerank_path`); GET /v2/rerank/models lists the configured rerank models")


@dataclass(slots=True)
class ImageRequest:
    model: str  # the provider's own model id
    prompt: str
    options: dict[str, Any] = field(default_factory=dict)  # n, size, quality, style, response_format, ...
    extra_headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class GeneratedImage:
    b64: str | None  # the image's base64, when the vendor sent it inline
    url: str | None = None  # where the vendor put it, when it sent a link instead
    revised_prompt: str | None = None


@dataclass(slots=True)
class ImageResponse:
    images: list[GeneratedImage]
    usage: Usage = field(default_factory=Usage)  # token-billed models report it; per-image ones do not


class Adapter(Protocol):
    """A provider wire format. Raise only `taskgate.errors` types (ProviderError and friends)."""

    async def complete(self, request: ChatRequest) -> ChatResponse: ...

    def stream(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]: ...

    async def embed(self, model: str, inputs: list[str], options: dict[str, Any]) -> EmbeddingResponse: ...

    async def rerank(self, request: RerankRequest) -> RerankResponse: ...
    async def generate_images(self, request: ImageRequest) -> ImageResponse: ...

    async def aclose(self) -> None: ...
