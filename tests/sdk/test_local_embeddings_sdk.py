"""`local/all-minilm-l6-v2` through the real clients: openai's and opperai 1.7.2's `embeddings.create`
against a real `taskgate serve`, the vectors normalised and semantically sane."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.e2e.test_local_embeddings import MODEL, TEXTS
from tests.e2e.test_v2_analytics_embeddings import new_key
from tests.fakes.provider import FakeProvider
from tests.fixtures import SdkVenvs
from tests.harness import ServerProcess
from tests.unit.test_local_embeddings import needs_model

pytestmark = [pytest.mark.sdk, needs_model]


def _sane(rows: list[list[float]]) -> None:
    vectors = np.array(rows)
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


def test_openai_client(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider) -> None:
    config = {"base_url": f"{server.url}/v3/compat", "api_key": server.api_key, "scenario": "local_embeddings",
              "model": MODEL, "texts": TEXTS}
    done = sdk_venv.run("openai", "compat_openai.py", json.dumps(config), server=server)
    assert done.returncode == 0, done.stderr + done.stdout
    out = json.loads(done.stdout.strip().splitlines()[-1])
    _sane(out["vectors"])
    assert out["model"] == MODEL and out["prompt_tokens"] > 0
    assert out["refused"] is not None and "384-dimensional" in out["refused"]
    assert fake.requests == []


def test_opperai_1_7_2_client(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider) -> None:
    done = sdk_venv.run("opperai-1.7.2", "v2_platform_analytics.py", "local_embeddings", server=server,
                        env={"OPPER_HTTP_BEARER": new_key(server), "TEXTS": json.dumps(TEXTS)})
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    _sane([item["embedding"] for item in out["named"]["data"]])
    assert out["named"]["model"] == MODEL
    assert np.allclose(out["as_object"]["data"][0]["embedding"], out["named"]["data"][0]["embedding"], atol=1e-6)
