"""Media input through the real clients (opperai 1.7.2 and 2.1.1, openai): the fake's request log
shows each provider's part type, and the clients see the 400s."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fakes.provider import FakeProvider
from tests.fixtures import SdkVenvs
from tests.harness import ServerProcess

pytestmark = pytest.mark.sdk


def run(sdk_venv: SdkVenvs, venv: str, script: str, server: ServerProcess) -> dict[str, Any]:
    result = sdk_venv.run(venv, script, server=server)
    assert result.returncode == 0, result.stderr
    seen: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return seen


def media_types(fake: FakeProvider) -> list[list[str]]:
    return [[part["type"] for part in request.json["messages"][-1]["content"] if part["type"] != "text"]
            for request in fake.requests]


def test_opperai_1_7_2(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider) -> None:
    seen = run(sdk_venv, "opperai-1.7.2", "media_opperai_v2.py", server)
    assert seen["audio"] and seen["pdf"]
    assert media_types(fake) == [["input_audio"], ["document"]]
    assert seen["refused"]["status"] == 400 and "cannot take audio input" in json.dumps(seen["refused"])


def test_opperai_2_1_1(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider) -> None:
    seen = run(sdk_venv, "opperai-2.1.1", "media_opperai_v3.py", server)
    assert seen["data"]
    assert media_types(fake) == [["image"]]
    assert seen["refused"]["status"] == 400 and "image/svg+xml" in seen["refused"]["body"]


def test_openai(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider) -> None:
    seen = run(sdk_venv, "openai", "media_openai.py", server)
    assert seen["audio"] and seen["pdf"]
    assert media_types(fake) == [["input_audio"], ["document"]]
    assert seen["refused"]["status"] == 400 and "base64" in seen["refused"]["body"]
