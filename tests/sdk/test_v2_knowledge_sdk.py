"""The real opperai==1.7.2 `knowledge` methods (all but the file ones) against `taskgate serve`, on
SQLite and Postgres, the fake upstream embedding by words."""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_v2_functions import unique
from tests.e2e.test_v2_knowledge import WORDS_MODEL
from tests.fixtures import SdkVenvs
from tests.harness import ServerProcess

pytestmark = pytest.mark.sdk


def test_knowledge_methods(sdk_venv: SdkVenvs, any_server: ServerProcess) -> None:
    name = unique("kb")
    done = sdk_venv.run("opperai-1.7.2", "v2_knowledge.py", json.dumps({"name": name, "embedding_model": WORDS_MODEL}),
                        server=any_server)
    assert done.returncode == 0, done.stderr + done.stdout
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    kb = seen["create"]["id"]
    assert seen["create"]["name"] == name and seen["create"]["embedding_model"] == WORDS_MODEL
    assert seen["add"] == {"id": seen["add"]["id"], "key": "stockholm", "metadata": {"country": "se"}}
    assert [hit["key"] for hit in seen["query"]] == ["stockholm", "paris"]
    assert seen["query"][0]["content"] == "Stockholm is the capital of Sweden."
    assert [hit["key"] for hit in seen["filtered"]] == ["paris", "cats"]
    assert seen["get"]["id"] == kb and seen["get"]["count"] == 3 and seen["by_name"] == seen["get"]
    assert kb in [item["id"] for item in seen["list"]["data"]]
    assert seen["document"]["key"] == "paris" and seen["document"]["metadata"] == {"country": "fr"}
    assert [segment["content"] for segment in seen["document"]["segments"]] == ["Paris is the capital of France."]
    assert seen["delete_some"] == {"deleted_count": 1} and seen["delete_rest"] == {"deleted_count": 2}
    assert seen["duplicate"]["status"] == 409
    assert seen["overlap_too_big"]["status"] == 400  # the client sends its default overlap, 200
    assert seen["empty_query"]["status"] == 400 and seen["bad_top_k"]["status"] == 400
    assert seen["deleted_get"]["status"] == 404
