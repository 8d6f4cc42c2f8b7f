"""The real opperai==1.7.2 `rerank` and `ocr` methods against `taskgate serve`, the fake upstream
serving the rerank wire and the vision model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_v2_ocr import PNG, b64
from tests.e2e.test_v2_rerank import rerank_env
from tests.fakes.common import Behaviour
from tests.fakes.provider import FakeProvider
from tests.fixtures import SdkVenvs
from tests.harness import ServerProcess

pytestmark = pytest.mark.sdk


@pytest.fixture(scope="module")
def rerank_server(fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(fake_provider, Path(tmp_path_factory.mktemp("taskgate-sdk-rerank")),
                            env=rerank_env(fake_provider))
    process.start()
    yield process
    process.stop()


def test_rerank_and_ocr_methods(sdk_venv: SdkVenvs, rerank_server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(json={"pages": [{"index": 0, "markdown": "# Scan"}]}))
    config = {"rerank_model": "cohere/rerank-v3.5", "ocr_model": "openai/gpt-4o-mini", "png_base64": b64(PNG)}
    done = sdk_venv.run("opperai-1.7.2", "v2_rerank_ocr.py", json.dumps(config), server=rerank_server)
    assert done.returncode == 0, done.stderr + done.stdout
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    ranked = seen["rerank"]
    assert [result["index"] for result in ranked["results"]] == [1, 0]
    assert ranked["results"][0]["document"] == {"text": "stockholm is the capital of sweden", "metadata": {"id": "s"}}
    assert ranked["model"] == "cohere/rerank-v3.5" and ranked["usage"]["search_units"] == 1
    assert seen["rerank_models"]["data"][0]["name"] == "cohere/rerank-v3.5"
    assert seen["rerank_empty"]["status"] == 400
    assert seen["ocr"]["pages"][0]["markdown"] == "# Scan"
    assert seen["ocr"]["usage_info"] == {"pages_processed": 1, "doc_size_bytes": len(PNG)}
    assert seen["ocr"]["cost"]["total"] > 0
    assert seen["ocr_models"]["meta"]["total_count"] == 3
    assert seen["ocr_bad"]["status"] == 400
