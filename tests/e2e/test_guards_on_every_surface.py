"""The compat guard headers on the Responses and Anthropic Messages surfaces too: the guard is the
engine's, so each surface gets it from the headers it shares with chat completions, and reports it
in the same response headers."""

from __future__ import annotations

import json

import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess
from tests.http_client import post

EMAIL = "jane.doe@example.com"
SURFACES = {
    "responses": ("/v3/compat/responses", {"model": "openai/gpt-4o-mini", "input": f"mail {EMAIL} please"}),
    "openresponses": ("/v3/compat/openresponses", {"model": "openai/gpt-4o-mini", "input": f"mail {EMAIL} please"}),
    "messages": ("/v3/compat/v1/messages", {"model": "openai/gpt-4o-mini", "max_tokens": 64,
                                             "messages": [{"role": "user", "content": f"mail {EMAIL} please"}]}),
}


@pytest.mark.parametrize("surface", list(SURFACES))
def test_redact_keeps_the_finding_from_the_provider_and_says_so(surface: str, server: ServerProcess,
                                                                 fake: FakeProvider) -> None:
    path, body = SURFACES[surface]
    reply = post(f"{server.url}{path}", body,
                 headers={"X-Opper-Guard-Input": "pii", "X-Opper-Guard-Action": "redact"})
    assert reply.status == 200, reply.body
    sent = json.dumps(fake.requests[-1].json)
    assert EMAIL not in sent and "[EMAIL_1]" in sent
    assert reply.headers["x-opper-guard-flagged"] == "true"
    assert "input/pii/email=1" in reply.headers["x-opper-guard-findings"]


@pytest.mark.parametrize("surface", list(SURFACES))
def test_block_is_a_400_and_nothing_reaches_the_provider(surface: str, server: ServerProcess,
                                                        fake: FakeProvider) -> None:
    path, body = SURFACES[surface]
    reply = post(f"{server.url}{path}", body,
                 headers={"X-Opper-Guard-Input": "pii", "X-Opper-Guard-Action": "block"})
    assert reply.status == 400
    assert EMAIL not in reply.body.decode()
    assert fake.requests == []


@pytest.mark.parametrize("surface", list(SURFACES))
def test_an_unknown_guard_is_a_400_on_every_surface(surface: str, server: ServerProcess, fake: FakeProvider) -> None:
    path, body = SURFACES[surface]
    reply = post(f"{server.url}{path}", body, headers={"X-Opper-Guard-Input": "toxicity"})
    assert reply.status == 400
    assert fake.requests == []
