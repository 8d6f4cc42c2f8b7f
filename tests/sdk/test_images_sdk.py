"""Image models through the real opperai clients: 1.7.2 reads `images`, 2.1.1's `generate_image`
reads and saves `{image, mime_type}`; the fake's log shows the images API was asked."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.fakes.openai_wire import fake_png
from tests.fakes.provider import FakeProvider
from tests.fixtures import SdkVenvs
from tests.harness import ServerProcess

pytestmark = pytest.mark.sdk


def test_opperai_1_7_2_reads_images(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider) -> None:
    result = sdk_venv.run("opperai-1.7.2", "images_opperai_v2.py", server=server)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["images"] == [base64.b64encode(fake_png("Watercolour\n\na harbour at dawn", 0)).decode()]
    assert seen["message"] is None and seen["cost"]["total"] == pytest.approx(0.04)
    assert [r.path for r in fake.requests] == ["/openai/v1/images/generations"]


def test_opperai_2_1_1_generate_image(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider,
                                      tmp_path: Path) -> None:
    result = sdk_venv.run("opperai-2.1.1", "images_opperai_v3.py", str(tmp_path), server=server)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["saved"] == "crane.jpg" and seen["bytes"] == len(fake_png("a paper crane", 0, "jpeg"))
    assert seen["meta"]["image_gen_calls"] == 1 and seen["meta"]["cost"] > 0
    [sent] = fake.requests
    assert sent.path == "/openai/v1/images/generations"
    assert sent.json == {"model": "gpt-image-1", "prompt": "a paper crane", "size": "1024x1024", "n": 1,
                         "output_format": "jpeg"}
