"""Several independent answers to one task (OpenAI's `n`), each its own engine call.

Each choice is a whole call of its own, priced and recorded as its own span, and they run at once:
the caller waits for about one call rather than n. The first failure stops the others, whose spans
are recorded as cancelled, as a client leaving would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any

from taskgate.engine.task import ChoiceEvent, Event, Failed, Result, Task

Run = Callable[[Task], Coroutine[Any, Any, Result]]
Stream = Callable[[Task], AsyncGenerator[Event, None]]
Queue = asyncio.Queue[tuple[int, Event | None]]  # a choice's event, or None when its stream ended


async def run_choices(run: Run, task: Task, n: int) -> list[Result]:
    """The `n` results in order; the first failure is raised as it is."""
    try:
        async with asyncio.TaskGroup() as group:
            runs = [group.create_task(run(task)) for _ in range(n)]
    except BaseExceptionGroup as failures:
        raise failures.exceptions[0] from None
    return [each.result() for each in runs]


async def stream_choices(stream: Stream, task: Task, n: int) -> AsyncGenerator[ChoiceEvent, None]:
    """Every choice's `Started` (in order, once all have started), then their events as they come.

    A failure before every choice has started is raised, as `Engine.stream` raises it; after, it is
    that choice's `Failed`, the last event. Closing this generator closes every choice's stream.
    """
    streams = [stream(task) for _ in range(n)]
    queue: Queue = asyncio.Queue()
    pumps: list[asyncio.Task[None]] = []
    try:
        starts = await asyncio.gather(*(anext(each) for each in streams), return_exceptions=True)
        for start in starts:
            if isinstance(start, BaseException):
                raise start
        for index, start in enumerate(starts):
            yield ChoiceEvent(index, start)  # type: ignore[arg-type]  # no exception is left among them
        pumps = [asyncio.create_task(_pump(index, each, queue)) for index, each in enumerate(streams)]
        running = n
        while running:
            index, event = await queue.get()
            if event is None:
                running -= 1
                continue
            yield ChoiceEvent(index, event)
            if isinstance(event, Failed):
                return
    finally:
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        for each in streams:
            await each.aclose()


async def _pump(index: int, events: AsyncGenerator[Event, None], queue: Queue) -> None:
    """One choice's events into the shared queue, then its end."""
    try:
        async for event in events:
            queue.put_nowait((index, event))
    finally:
        queue.put_nowait((index, None))
