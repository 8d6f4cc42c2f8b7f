"""Functions: the list with each one's calls, error rate and cost (its spans of the last 30 days),
and a function's page with its revisions (and the diff between two), its examples (its dataset),
and a playground that calls it through the v2 stream (`/v2/functions/{id}/call/stream`'s code)."""

from __future__ import annotations

import difflib
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from starlette.responses import Response

from taskgate.api.span_bodies import MAX_ID_CHARS
from taskgate.api.v2 import calls
from taskgate.errors import BadRequestError, NotFoundError
from taskgate.server.request_io import read_json_object
from taskgate.store.base import FunctionDefinition, FunctionRecord, RevisionRecord
from taskgate.ui.guard import Visit

PAGE_SIZE = 50
STATS_DAYS = 30
EXAMPLES_SHOWN = 20
REVISIONS_SHOWN = 100


def _page_number(visit: Visit) -> int:
    raw = visit.request.query_params.get("page", "1")
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw[:7]) <= 1_000_000:
        raise BadRequestError("page must be a number from 1 to 1000000")
    return int(raw)


async def function_list(visit: Visit) -> Response:
    page = _page_number(visit)
    functions, total = await visit.ctx.engine.functions.listing(visit.project_id, None, "name",
                                                                PAGE_SIZE, (page - 1) * PAGE_SIZE)
    since = datetime.now(UTC) - timedelta(days=STATS_DAYS)
    stats = await visit.ctx.engine.usage.function_stats(visit.project_id, [f.name for f in functions], since)
    return visit.page("functions.html", title="Functions", functions=functions, stats=stats, page=page,
                      more=page * PAGE_SIZE < total, days=STATS_DAYS)


async def _function(visit: Visit) -> FunctionRecord:
    function_id = visit.request.path_params["function_id"]
    function = None
    if len(function_id) <= MAX_ID_CHARS:
        function = await visit.ctx.engine.functions.by_id(visit.project_id, function_id)
    if function is None:
        raise NotFoundError("the project has no such function")
    return function


def definition_text(definition: FunctionDefinition) -> str:
    """A revision as lines to compare: the prompt, then each other part as indented JSON."""
    parts: dict[str, Any] = {"model": definition.model, "input_schema": definition.input_schema,
                             "output_schema": definition.output_schema, "configuration": definition.configuration,
                             "description": definition.description}
    shown = orjson.dumps(parts, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    return f"instructions:\n{definition.instructions}\n\n{shown}\n"


def revision_diff(old: RevisionRecord, new: RevisionRecord) -> list[tuple[str, str]]:
    """The unified diff of two revisions as (kind, line): kind is '-' (removed), '+' (added) or ' '
    (context, and the diff's own header lines)."""
    lines = difflib.unified_diff(definition_text(old.definition).splitlines(),
                                 definition_text(new.definition).splitlines(),
                                 f"revision {old.number}", f"revision {new.number}", lineterm="", n=3)
    return [(" " if line.startswith(("---", "+++")) or line[:1] not in "-+" else line[:1], line) for line in lines]


def _revision_number(visit: Visit, name: str) -> int | None:
    raw = visit.request.query_params.get(name)
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise BadRequestError(f"{name} must be a revision number")
    return int(raw)


async def function_page(visit: Visit) -> Response:
    function = await _function(visit)
    found = await visit.ctx.engine.functions.revisions_page(visit.project_id, function.id, REVISIONS_SHOWN, 0)
    revisions = found[0] if found else []
    by_number = {revision.number: revision for revision in revisions}
    old_number, new_number = _revision_number(visit, "from"), _revision_number(visit, "to")
    diff = None
    if old_number is not None and new_number is not None:
        if old_number not in by_number or new_number not in by_number:
            raise NotFoundError("the function has no such revision")
        diff = revision_diff(by_number[old_number], by_number[new_number])
    examples = await visit.ctx.engine.examples.page(visit.project_id, function.id, EXAMPLES_SHOWN, 0, None)
    example_count = await visit.ctx.engine.examples.count(visit.project_id, function.id)
    numbers = sorted(by_number)
    return visit.page("function.html", title=function.name, function=function, revisions=revisions, diff=diff,
                      old_number=old_number or (numbers[-2] if len(numbers) > 1 else None),
                      new_number=new_number or (numbers[-1] if numbers else None), examples=examples,
                      example_count=example_count)


async def playground_stream(visit: Visit) -> Response:
    """The function called with the posted `{"input": ...}`, answered as the v2 stream of it."""
    function = await _function(visit)
    body = await read_json_object(visit.request, visit.ctx.settings.max_body_bytes)
    unknown = set(body) - {"input"}
    if unknown:
        raise BadRequestError(f"the playground sends only 'input', not {sorted(unknown)[0][:40]!r}")
    task = calls.parse_stored_call(body, visit.project_id, function)
    return await calls.answer_stream(visit.ctx, visit.request, task, text_deltas=True)
