"""No request leaves a reference cycle behind, on any call path.

An object in a cycle is freed only by the garbage collector, so a request that leaves one makes
the collector run more often, each pass pausing the event loop (0.1-0.5 ms here), and a failed
request's cycle keeps its whole traceback alive until then. Here the real app runs in this process
(uvicorn on uvloop with the protocol `taskgate serve` uses, in a thread) against the fake upstream,
and the collector is asked what it would have had to free after a run of each kind of request.
"""

from __future__ import annotations

import gc
import http.client
import threading
import time
from asyncio import selector_events
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import uvicorn
import uvloop

from taskgate.app import create_app
from taskgate.config import Settings
from taskgate.server.uvicorn_options import server_options
from tests.fakes.provider import Behaviour, FakeProvider
from tests.harness import API_KEY, free_port, server_env

REQUESTS = 40
TOLERATED = 10  # one-off objects (a query compiled the first time), far below one per request
SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
CHAT = {"messages": [{"role": "user", "content": "hi"}]}
CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "v2 call": ("/v2/call", {"name": "t", "input": "hi"}),
    "v2 call, output_schema": ("/v2/call", {"name": "t", "input": "hi", "output_schema": SCHEMA}),
    "v2 stream": ("/v2/call/stream", {"name": "t", "input": "hi"}),
    "v2 stream, output_schema": ("/v2/call/stream", {"name": "t", "input": "hi", "output_schema": SCHEMA}),
    "v3 function call": ("/v3/functions/t/call", {"input": "hi"}),
    "compat": ("/v3/compat/chat/completions", {"model": "openai/gpt-4o-mini", **CHAT}),
    "compat stream": ("/v3/compat/chat/completions",
                      {"model": "openai/gpt-4o-mini", "stream": True, "stream_options": {"include_usage": True},
                       **CHAT}),
    "compat stream, anthropic": ("/v3/compat/chat/completions",
                                 {"model": "anthropic/claude-3-5-haiku-latest", "stream": True, **CHAT}),
    "compat, n=2": ("/v3/compat/chat/completions", {"model": "openai/gpt-4o-mini", "n": 2, **CHAT}),
    "compat stream, n=2": ("/v3/compat/chat/completions", {"model": "openai/gpt-4o-mini", "n": 2, "stream": True,
                                                           **CHAT}),
    "messages": ("/v3/compat/v1/messages", {"model": "openai/gpt-4o-mini", "max_tokens": 50, **CHAT}),
    "messages stream, anthropic": ("/v3/compat/v1/messages", {"model": "anthropic/claude-3-5-haiku-latest",
                                                              "max_tokens": 50, "stream": True, **CHAT}),
    "bad request": ("/v3/compat/chat/completions", {"model": "openai/gpt-4o-mini", "messages": []}),
    "upstream 500": ("/v3/compat/chat/completions", {"model": "openai/cycles-500", **CHAT}),
    "upstream 500, v2": ("/v2/call", {"name": "t", "input": "hi", "model": "openai/cycles-500"}),
    "upstream 500, then fallback": ("/v3/compat/chat/completions",
                                    {"model": ["openai/cycles-500", "openai/gpt-4o-mini"], **CHAT}),
    "upstream error mid-stream": ("/v3/compat/chat/completions",
                                  {"model": "openai/cycles-midway", "stream": True, **CHAT}),
    "upstream error mid-stream, v2": ("/v2/call/stream", {"name": "t", "input": "hi",
                                                          "model": "openai/cycles-midway"}),
    "responses": ("/v3/compat/responses", {"model": "openai/gpt-4o-mini", "input": "hi"}),
    "responses stream": ("/v3/compat/responses", {"model": "openai/gpt-4o-mini", "input": "hi", "stream": True}),
    "openresponses stream, output_schema": ("/v3/compat/openresponses", {
        "model": "anthropic/claude-3-5-haiku-latest", "input": "hi", "stream": True,
        "text": {"format": {"type": "json_schema", "name": "output", "schema": SCHEMA}}}),
    "responses, bad item": ("/v3/compat/responses", {"input": [{"type": "function_call_output", "call_id": "c"}]}),
    "responses, error mid-stream": ("/v3/compat/responses",
                                    {"model": "openai/cycles-midway", "input": "hi", "stream": True}),
}
SCRIPTED = {"cycles-500": Behaviour(status=500), "cycles-midway": Behaviour(fail_after=2)}


@pytest.fixture(scope="module")
def in_process_server(fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    env = server_env(fake_provider, {"TASKGATE_DATA_DIR": str(tmp_path_factory.mktemp("cycles"))})
    settings = Settings.from_env(env, host="127.0.0.1", port=free_port())
    config = uvicorn.Config(create_app(settings), **server_options(settings))
    server = uvicorn.Server(config)
    loop = uvloop.new_event_loop()  # its own loop: no event loop policy changes for the other tests
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),), daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            pytest.fail("the in-process server did not start")
        thread.join(0.02)
    yield settings.port
    server.should_exit = True
    thread.join(15)
    loop.close()


def garbage_after(connection: http.client.HTTPConnection, path: str, body: dict[str, Any]) -> list[object]:
    """What the collector finds after REQUESTS calls (DEBUG_SAVEALL keeps it for inspection)."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(REQUESTS):
            post(connection, path, body)
        time.sleep(0.2)  # span batches and stream tails settle on the server's own loop
        gc.collect()
        return without_the_fakes(list(gc.garbage))
    finally:
        gc.garbage.clear()
        gc.set_debug(0)


def without_the_fakes(garbage: list[object]) -> list[object]:
    """Leave out the fake upstream's closed connections and what hangs off them.

    The fake runs on asyncio's selector loop in its own thread; the server under test runs on
    uvloop. A selector transport in the garbage is the fake's (stdlib asyncio leaves a cycle when a
    peer drops a connection, as the gateway does after an upstream error).
    """
    in_garbage = {id(item) for item in garbage}
    fakes: set[int] = set()
    pending = [item for item in garbage if isinstance(item, selector_events._SelectorTransport)]
    while pending:
        item = pending.pop()
        if id(item) not in fakes:
            fakes.add(id(item))
            pending.extend(child for child in gc.get_referents(item) if id(child) in in_garbage)
    return [item for item in garbage if id(item) not in fakes]


def post(connection: http.client.HTTPConnection, path: str, body: dict[str, Any]) -> None:
    connection.request("POST", path, orjson.dumps(body),
                       {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"})
    response = connection.getresponse()
    response.read()
    assert response.status in (200, 400, 502)


@pytest.mark.parametrize("kind", list(CALLS))
def test_a_run_of_requests_leaves_nothing_for_the_collector(
    in_process_server: int, fake: FakeProvider, kind: str
) -> None:
    path, body = CALLS[kind]
    for model, behaviour in SCRIPTED.items():
        fake.script(model, *[behaviour] * (REQUESTS + 10))
    connection = http.client.HTTPConnection("127.0.0.1", in_process_server, timeout=30)
    try:
        for _ in range(5):  # first calls fill caches and pools
            post(connection, path, body)
        garbage = garbage_after(connection, path, body)
    finally:
        connection.close()
    kinds = Counter(type(item).__qualname__ for item in garbage).most_common(8)
    assert len(garbage) <= TOLERATED, f"{len(garbage)} objects in cycles after {REQUESTS} requests: {kinds}"
