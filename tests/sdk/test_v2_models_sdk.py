"""The real opperai==1.7.2 `language_models` methods, and the real `openai` client naming an
alias, against `taskgate serve` (SQLite) whose custom model is served by the fake upstream."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.fakes.common import Behaviour
from tests.fakes.provider import FakeProvider
from tests.fixtures import SdkVenvs
from tests.harness import ServerProcess
from tests.http_client import post

pytestmark = pytest.mark.sdk
SECRET = "sk-sdk-custom-secret"


def run(sdk_venv: SdkVenvs, server: ServerProcess, venv: str, script: str, config: dict[str, Any]) -> Any:
    done = sdk_venv.run(venv, script, json.dumps(config), server=server)
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_language_models_methods_and_a_call_through_the_alias(sdk_venv: SdkVenvs, server: ServerProcess,
                                                               fake: FakeProvider) -> None:
    tag = uuid.uuid4().hex[:8]
    config = {"custom_name": f"mine/sdk-{tag}", "alias_name": f"sdk-alias-{tag}", "api_base": fake.openai_base_url,
              "api_key": SECRET}
    fake.script("flaky-model", Behaviour(status=503))
    seen = run(sdk_venv, server, "opperai-1.7.2", "v2_platform_models.py", config)
    assert seen["list"]["total"] > 3
    assert set(seen["list"]["first"]) >= {"hosting_provider", "name", "location", "input_cost_per_token"}
    created = seen["created"]
    assert created["name"] == config["custom_name"] and created["extra"] == {"api_base": fake.openai_base_url}
    assert created in seen["list_custom"]
    assert seen["get_custom"] == seen["get_custom_by_name"] == created
    assert seen["update_custom"]["extra"]["api_version"] == "v1"
    assert seen["duplicate"] == {"class": "ConflictError", "status": 409}
    assert seen["missing"] == {"class": "NotFoundError", "status": 404}
    alias = seen["alias"]
    assert alias["fallback_models"] == ["openai/flaky-model", config["custom_name"]]
    assert alias in seen["list_aliases"] and seen["get_alias"] == seen["get_alias_by_name"] == alias
    assert seen["update_alias"]["description"] == "changed"
    assert seen["loop"]["status"] == 400
    assert seen["call"]["message"].startswith("Hello from gpt-4o-mini")
    assert [r.model for r in fake.requests if r.path.endswith("/chat/completions")] == ["flaky-model", "gpt-4o-mini"]
    assert fake.requests[-1].headers["authorization"] == f"Bearer {SECRET}"
    assert seen["after_delete"] == [{"class": "NotFoundError", "status": 404}] * 2
    assert SECRET not in json.dumps(seen)


def test_the_openai_client_names_an_alias(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider) -> None:
    name = f"compat-alias-{uuid.uuid4().hex[:8]}"
    reply = post(f"{server.url}/v2/models/aliases", {"name": name, "fallback_models": ["anthropic/claude-haiku-4-5"]})
    assert reply.status == 200
    config = {"base_url": f"{server.url}/v3/compat", "api_key": server.api_key, "scenario": "stream_text",
              "model": name}
    out = run(sdk_venv, server, "openai", "compat_openai.py", config)
    assert out["text"] == fake.default_text("claude-haiku-4-5")
    assert [r.path for r in fake.requests] == ["/anthropic/v1/messages"]
