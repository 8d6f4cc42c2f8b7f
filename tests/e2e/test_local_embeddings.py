"""`local/all-minilm-l6-v2` through a real `taskgate serve`: `/v2/embeddings` and `/v3/compat/embeddings`,
recorded at zero cost, semantically sane, and hostile inputs refused with a clear 400."""

from __future__ import annotations

import base64
import struct

import numpy as np
import pytest

from tests.e2e.test_v2_analytics_embeddings import new_key
from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess
from tests.http_client import get, post
from tests.unit.test_local_embeddings import needs_model

MODEL = "local/all-minilm-l6-v2"
TEXTS = ["How do I reset my password?", "I forgot my login credentials; how can I change them?",
         "The stock market fell sharply today."]

pytestmark = needs_model


def _unit_vectors(rows: list[list[float]]) -> np.ndarray:
    vectors = np.array(rows)
    assert vectors.shape[1] == 384
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    return vectors


def test_v2_embeddings_with_the_local_model(server: ServerProcess, fake: FakeProvider) -> None:
    reply = post(server.url + "/v2/embeddings", {"input": TEXTS, "model": MODEL}, key=new_key(server))
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["model"] == MODEL and body["usage"]["total_tokens"] > len(TEXTS)
    vectors = _unit_vectors([item["embedding"] for item in body["data"]])
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3  # the paraphrase is far closer
    assert fake.requests == []  # nothing left the machine


def test_compat_embeddings_recorded_at_zero_cost(server: ServerProcess, fake: FakeProvider) -> None:
    key = new_key(server)
    reply = post(server.url + "/v3/compat/embeddings", {"input": TEXTS, "model": MODEL}, key=key,
                 headers={"X-Opper-Name": "local-embed"})
    assert reply.status == 200, reply.body
    _unit_vectors([item["embedding"] for item in reply.json()["data"]])
    as_base64 = post(server.url + "/v3/compat/embeddings",
                     {"input": TEXTS[0], "model": MODEL, "encoding_format": "base64"}, key=key).json()
    packed = base64.b64decode(as_base64["data"][0]["embedding"])
    decoded = struct.unpack(f"<{len(packed) // 4}f", packed)
    assert decoded == pytest.approx(reply.json()["data"][0]["embedding"], abs=1e-6)
    spans = get(server.url + "/v2/analytics/usage?group_by=model&fields=input_tokens", key=key).json()
    local = [item for item in spans if item["model"] == MODEL]
    assert local and float(local[0]["cost"]) == 0 and local[0]["input_tokens"] > 0


@pytest.mark.parametrize(("body", "message"), [
    ({"input": ["a"], "model": MODEL, "dimensions": 64}, "384-dimensional"),
    ({"input": ["x" * 40_000], "model": MODEL}, "characters"),
    ({"input": ["a"] * 2049, "model": MODEL}, "at most 2048 texts"),
    ({"input": [[1, 2, 3]], "model": MODEL}, "not token arrays"),
    ({"input": {"$ne": 1}, "model": MODEL}, "input must be"),
    ({"input": "a", "model": "local/gemma-3-270m"}, "does not embed"),
    ({"input": "a", "model": "local/../../etc/passwd"}, "does not embed"),
])
def test_hostile_inputs_get_a_clear_400(server: ServerProcess, fake: FakeProvider, body: dict, message: str) -> None:
    for path in ("/v3/compat/embeddings", "/v2/embeddings"):
        sent = dict(body)
        if path == "/v2/embeddings" and "dimensions" in sent:
            sent["model"] = {"name": MODEL, "options": {"dimensions": sent.pop("dimensions")}}
        reply = post(server.url + path, sent, key=server.api_key)
        assert reply.status == 400, (path, reply.body)
        assert message in reply.body.decode(), (path, reply.body)


def test_odd_texts_embed_like_any_other(server: ServerProcess, fake: FakeProvider) -> None:
    odd = ["", " ", "\x00\x01\x02", "😀" * 500, "\u202eevil rtl", "<script>alert(1)</script>'; DROP TABLE x;--",
           "word " * 5000, "日本語のテキスト"]
    reply = post(server.url + "/v3/compat/embeddings", {"input": odd, "model": MODEL}, key=server.api_key)
    assert reply.status == 200, reply.body
    vectors = np.array([item["embedding"] for item in reply.json()["data"]])
    assert vectors.shape == (len(odd), 384) and np.isfinite(vectors).all()


def test_local_rerank_orders_by_meaning(server: ServerProcess, fake: FakeProvider) -> None:
    """The offline fallback of `/v2/rerank`: the local embedding model's cosine similarity, at zero cost."""
    documents = ["The stock market fell sharply today.", "Steps to change a forgotten login password.",
                 "A recipe for lemon cake."]
    reply = post(server.url + "/v2/rerank", {"model": MODEL, "query": "I cannot sign in, how do I reset my password?",
                                             "documents": [{"text": text} for text in documents], "top_k": 2},
                 key=new_key(server))
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["results"][0]["index"] == 1 and len(body["results"]) == 2
    assert body["results"][0]["relevance_score"] > body["results"][1]["relevance_score"]
    assert body["cost"]["total"] == 0 and fake.requests == []
    listed = get(server.url + "/v2/rerank/models").json()["data"]
    assert {"hosting_provider": "local", "name": MODEL, "location": "local", "cost_per_request": None} in listed
    refused = post(server.url + "/v2/rerank", {"model": "local/gemma-3-270m", "query": "q",
                                               "documents": [{"text": "d"}]})
    assert refused.status == 400
    assert "local reranking is by local/all-minilm-l6-v2" in refused.json()["error"]["message"]
