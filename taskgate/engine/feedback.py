"""What is said about a span after it ran: feedback, metrics and events, and saving it as an example.

All three are span events in one store table (see `taskgate.store.tables.span_events`), each API
reading back only those it made, so v3 readers see v2 feedback and metrics as events too. The span
is always looked up through the span service first: it may still wait in the recorder (a call that
has just returned), and another project's span must be as unknown as a missing one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from taskgate.engine.examples import ExampleService
from taskgate.engine.functions import FunctionService
from taskgate.engine.spans import SpanService
from taskgate.errors import BadRequestError, NotFoundError
from taskgate.ids import new_id
from taskgate.store.base import EventFilter, ExampleRecord, SpanEvent, SpanRecord, Store

EVENT_KINDS = ("guardrail", "feedback", "evaluation")
# Who made an event: the v2 metric and feedback endpoints, or the v3 events endpoint.
METRIC, FEEDBACK, EVENT = "metric", "feedback", "event"
DEFAULT_AUTOSAVE_SCORE = 0.8


@dataclass(frozen=True, slots=True)
class SavedExample:
    dataset_id: str
    example: ExampleRecord


@dataclass(frozen=True, slots=True)
class Feedback:
    event: SpanEvent
    example_saved: bool


def metric_data(dimension: str, value: float, comment: str | None) -> dict[str, Any]:
    return {"dimension": dimension, "value": value, "comment": comment}


class FeedbackService:
    def __init__(self, store: Store, spans: SpanService, functions: FunctionService, examples: ExampleService,
                 autosave_score: float = DEFAULT_AUTOSAVE_SCORE) -> None:
        self._store = store
        self._spans = spans
        self._functions = functions
        self._examples = examples
        self._autosave_score = autosave_score

    async def span(self, project_id: str, span_id: str) -> SpanRecord:
        span = await self._spans.find(project_id, span_id)
        if span is None:
            raise NotFoundError(f"span '{span_id}' was not found")
        return span

    # ---- examples and feedback

    async def save_example(self, project_id: str, span_id: str, comment: str | None = None) -> SavedExample:
        """Copy the span's input and output into its function's examples (its dataset), through the
        example service so the next call's few-shot selection sees it."""
        return await self._save(await self.span(project_id, span_id), comment)

    async def _save(self, span: SpanRecord, comment: str | None) -> SavedExample:
        if span.function_name is None:
            raise BadRequestError(f"span '{span.id}' was not made by a function call, so it has no dataset")
        if span.status != "ok" or span.output is None:
            raise BadRequestError(f"span '{span.id}' has no output to save as an example")
        function = await self._functions.get(span.project_id, span.function_name)
        if function is None:
            raise NotFoundError(f"function '{span.function_name}' of span '{span.id}' no longer exists")
        example = ExampleRecord(id="", function_id=function.id, input=span.input, output=span.output,
                                comment=comment)
        [stored] = await self._examples.add(span.project_id, function.id, [example])
        return SavedExample(dataset_id=function.dataset_id, example=stored)

    async def give_feedback(self, project_id: str, span_id: str, score: float, comment: str | None,
                            save_to_dataset: bool | None) -> Feedback:
        """Record the span's feedback, replacing any before it. `save_to_dataset` None saves the
        span as an example when the score is positive (at least the autosave score) and the span
        can be saved (a successful function call); True saves it or fails, False never does."""
        span = await self.span(project_id, span_id)
        if save_to_dataset is None:
            save_to_dataset = (score >= self._autosave_score and span.function_name is not None
                               and span.status == "ok" and span.output is not None)
        if save_to_dataset:
            await self._save(span, comment)
        event = self._event(span, FEEDBACK, "feedback", "human", {"score": score, "comment": comment})
        await self._store.add_span_event(project_id, event, replace=True)
        return Feedback(event=event, example_saved=save_to_dataset)

    async def feedback_of(self, span: SpanRecord) -> SpanEvent | None:
        """The latest feedback (two given at the same moment on Postgres may both stay stored)."""
        found, _ = await self._store.list_span_events(span.project_id, EventFilter(span_id=span.id, origin=FEEDBACK),
                                                      limit=None)
        return found[-1] if found else None

    # ---- metrics

    async def add_metric(self, project_id: str, span_id: str, dimension: str, value: float,
                         comment: str | None) -> SpanEvent:
        span = await self.span(project_id, span_id)
        event = self._event(span, METRIC, "evaluation", "metric", metric_data(dimension, value, comment))
        return await self._store.add_span_event(project_id, event)

    async def metrics(self, project_id: str, span_id: str, limit: int, offset: int) -> tuple[list[SpanEvent], int]:
        await self.span(project_id, span_id)
        return await self._store.list_span_events(project_id, EventFilter(span_id=span_id, origin=METRIC),
                                                  limit, offset)

    async def metric(self, project_id: str, span_id: str, metric_id: str) -> SpanEvent:
        await self.span(project_id, span_id)
        found = await self._store.get_span_event(project_id, span_id, METRIC, metric_id)
        if found is None:
            raise NotFoundError(f"metric '{metric_id}' of span '{span_id}' was not found")
        return found

    async def update_metric(self, project_id: str, span_id: str, metric_id: str,
                            changes: dict[str, Any]) -> SpanEvent:
        """`changes` holds the metric fields to set (dimension, value, comment)."""
        current = await self.metric(project_id, span_id, metric_id)
        updated = await self._store.update_span_event(project_id, span_id, METRIC, metric_id,
                                                      {**current.data, **changes})
        if updated is None:  # deleted meanwhile
            raise NotFoundError(f"metric '{metric_id}' of span '{span_id}' was not found")
        return updated

    async def delete_metric(self, project_id: str, span_id: str, metric_id: str) -> None:
        await self.span(project_id, span_id)
        if not await self._store.delete_span_event(project_id, span_id, METRIC, metric_id):
            raise NotFoundError(f"metric '{metric_id}' of span '{span_id}' was not found")

    # ---- events (v3): every origin's

    async def add_event(self, project_id: str, span_id: str, kind: str, source: str,
                        data: dict[str, Any]) -> SpanEvent:
        span = await self.span(project_id, span_id)
        return await self._store.add_span_event(project_id, self._event(span, EVENT, kind, source, data))

    async def add_events(self, project_id: str, span_id: str, kind: str, source: str,
                         datas: list[dict[str, Any]]) -> list[SpanEvent]:
        """Several events of one kind on one span (a call's guard findings), with one look-up of it."""
        span = await self.span(project_id, span_id)
        return [await self._store.add_span_event(project_id, self._event(span, EVENT, kind, source, data))
                for data in datas]

    async def span_events(self, project_id: str, span_id: str, kind: str | None, limit: int,
                          offset: int) -> tuple[list[SpanEvent], int]:
        await self.span(project_id, span_id)
        return await self._store.list_span_events(project_id, EventFilter(span_id=span_id, kind=kind), limit, offset)

    async def trace_events(self, project_id: str, trace_id: str, *, kind: str | None = None,
                           origin: str | None = None, limit: int | None = None,
                           offset: int = 0) -> tuple[list[SpanEvent], int]:
        """Events across the trace's spans (all of them when `limit` is None); the caller knows
        the trace exists."""
        which = EventFilter(trace_id=trace_id, kind=kind, origin=origin)
        return await self._store.list_span_events(project_id, which, limit, offset)

    @staticmethod
    def _event(span: SpanRecord, origin: str, kind: str, source: str, data: dict[str, Any]) -> SpanEvent:
        return SpanEvent(id=new_id(), span_id=span.id, trace_id=span.trace_id, origin=origin, kind=kind,
                         source=source, data=data, created_at=datetime.now(UTC))

