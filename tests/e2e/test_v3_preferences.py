"""v3 `route.prefer`, `hints` and `reasoning_summary` over HTTP: each honoured (the model the fake
upstream was asked for, the options it received) or refused with a 400 naming it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess
from tests.http_client import Reply, post

ROUTE_MODELS = "fast=openai/gpt-4.1-nano,quality=anthropic/claude-sonnet-4-6"


@pytest.fixture(scope="module")
def routed(fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose operator mapped two preferences to models; `balanced` and `cheap` are unmapped."""
    with ServerProcess(fake_provider, tmp_path_factory.mktemp("routed"),
                       env={"TASKGATE_ROUTE_MODELS": ROUTE_MODELS}) as process:
        yield process


def call(server: ServerProcess, **fields: Any) -> Reply:
    return post(f"{server.url}/v3/call", {"name": "prefs", "input": "hi", **fields})


def refused(reply: Reply, fragment: str) -> None:
    assert reply.status == 400, reply.body
    assert fragment in reply.json()["error"]["message"]


@pytest.mark.parametrize(("fields", "upstream_model"), [
    ({"route": {"prefer": "fast"}}, "gpt-4.1-nano"),
    ({"hints": {"prefer": "quality"}}, "claude-sonnet-4-6"),
    ({"route": {"prefer": "fast"}, "hints": {"prefer": "fast"}}, "gpt-4.1-nano"),
    ({"route": {"prefer": "balanced"}}, "gpt-4o-mini"),  # unmapped: the server's default model
    ({"route": {"prefer": "fast"}, "model": "anthropic/claude-haiku-4-5"}, "claude-haiku-4-5"),  # a named model wins
    ({"route": None, "hints": None}, "gpt-4o-mini"),
])
def test_prefer_picks_the_operators_model(routed: ServerProcess, fake: FakeProvider, fields: dict[str, Any],
                                          upstream_model: str) -> None:
    reply = call(routed, **fields)
    assert reply.status == 200, reply.body
    assert fake.requests[-1].model == upstream_model


def test_generation_hints_reach_the_upstream(routed: ServerProcess, fake: FakeProvider) -> None:
    hints = {"temperature": 0.3, "top_p": 0.8, "max_tokens": 50, "reasoning_effort": "low"}
    for stream in (False, True):
        assert call(routed, hints=hints, stream=stream).status == 200
        sent = fake.requests[-1].json
        assert {key: sent[key] for key in hints} == hints
    assert call(routed, hints={"reasoning_effort": "high"}, reasoning_effort="high").status == 200


@pytest.mark.parametrize(("fields", "fragment"), [
    ({"route": {"prefer": "cheap"}}, "route.prefer 'cheap' has no model on this server"),
    ({"route": {"prefer": "fastest"}}, "route.prefer"),
    ({"route": {"prefer": 1}}, "route.prefer"),
    ({"route": "fast"}, "route"),
    ({"route": {"prefer": "fast", "region": "eu"}}, "region"),
    ({"route": {"prefer": "fast"}, "hints": {"prefer": "quality"}}, "disagree"),
    ({"hints": {"seed": 1}}, "seed"),
    ({"hints": {"temperature": 9}}, "hints.temperature"),
    ({"hints": {"max_tokens": 0}}, "hints.max_tokens"),
    ({"hints": {"max_tokens": True}}, "hints.max_tokens"),
    ({"hints": {"reasoning_effort": "extreme"}}, "hints.reasoning_effort"),
    ({"hints": {"reasoning_effort": "low"}, "reasoning_effort": "high"}, "disagree"),
    ({"hints": []}, "hints"),
    ({"reasoning_summary": "auto"}, "reasoning_summary"),
    ({"reasoning_summary": {"detail": "concise"}}, "reasoning_summary"),
])
def test_what_cannot_be_honoured_is_refused(routed: ServerProcess, fake: FakeProvider, fields: dict[str, Any],
                                            fragment: str) -> None:
    refused(call(routed, **fields), fragment)
    assert fake.requests == []


def test_an_unmapped_preference_is_refused_on_the_default_server(server: ServerProcess, fake: FakeProvider) -> None:
    refused(call(server, route={"prefer": "fast"}), "TASKGATE_ROUTE_MODELS")
    assert call(server, route={"prefer": "balanced"}, reasoning_summary=None).status == 200


def test_an_unknown_preference_in_the_configuration_stops_the_server(fake: FakeProvider, tmp_path: Path) -> None:
    process = ServerProcess(fake, tmp_path, env={"TASKGATE_ROUTE_MODELS": "cheep=openai/gpt-4o-mini"})
    with pytest.raises(RuntimeError, match="cheep: not one of fast, cheap, quality, balanced"):
        process.start()
