"""Guards through real clients: the `openai` SDK (X-Opper-Guard-* headers, plain and streamed, a
block raised as the SDK's BadRequestError) and `opperai==2.1.1` (a v3 body's guard, meta.guards)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.fakes.provider import Behaviour, FakeProvider
from tests.fixtures import SdkVenvs
from tests.harness import ServerProcess

pytestmark = pytest.mark.sdk

MODEL = "openai/gpt-4o-mini"


def run(sdk_venv: SdkVenvs, server: ServerProcess, venv: str, base_url: str, scenario: str, **cfg: Any) -> Any:
    config = {"base_url": base_url, "api_key": server.api_key, "scenario": scenario, "model": MODEL, **cfg}
    done = sdk_venv.run(venv, "guards_clients.py", json.dumps(config), server=server)
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_openai_sdk_redacts_and_restores(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(text="Sent to [EMAIL_1]."), Behaviour(text="Sent to [EMAIL_1] again."))
    out = run(sdk_venv, server, "openai", f"{server.url}/v3/compat", "openai_redact")
    assert out == {"content": "Sent to jane.doe@example.com.", "streamed": "Sent to jane.doe@example.com again.",
                   "findings": "input/pii/email=1"}
    assert len(fake.requests) == 2 and "jane.doe" not in json.dumps([r.json for r in fake.requests])


def test_openai_sdk_sees_a_block_as_bad_request(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider) -> None:
    out = run(sdk_venv, server, "openai", f"{server.url}/v3/compat", "openai_block")
    assert out["error"] == "BadRequestError" and out["status"] == 400
    assert out["body"]["code"] == "guard_blocked" and "AKIA" not in json.dumps(out)
    assert fake.requests == []


def test_opperai_reads_meta_guards(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(text="Done: [EMAIL_1]"))
    out = run(sdk_venv, server, "opperai-2.1.1", server.url, "opperai_meta_guards", name=f"g-{uuid.uuid4().hex[:8]}")
    assert out["data"] == "Done: jane.doe@example.com"
    assert out["guards"] == [{"type": "pii", "direction": "input", "action": "redact", "flagged": True,
                              "findings": [{"kind": "email", "where": "messages[1].content", "start": 9, "end": 29}]}]
