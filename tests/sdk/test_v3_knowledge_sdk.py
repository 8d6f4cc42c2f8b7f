"""The real opperai==2.1.1 `knowledge` client against `taskgate serve`, on SQLite and Postgres: create,
list, get, by name, add, query with filters, delete by filter, a text file and a PDF uploaded, files
listed and deleted, the base deleted, and the refusals the client raises as ApiError."""

from __future__ import annotations

import base64
import json

import pytest

from tests.e2e.test_v2_functions import unique
from tests.e2e.test_v2_knowledge import WORDS_MODEL
from tests.file_samples import pdf_with
from tests.fixtures import SdkVenvs
from tests.harness import ServerProcess

pytestmark = pytest.mark.sdk


def test_knowledge_client(sdk_venv: SdkVenvs, any_server: ServerProcess) -> None:
    name = unique("kb")
    config = {"name": name, "embedding_model": WORDS_MODEL,
              "pdf": base64.b64encode(pdf_with("Penguins huddle together against the cold.")).decode()}
    done = sdk_venv.run("opperai-2.1.1", "v3_knowledge.py", json.dumps(config), server=any_server)
    assert done.returncode == 0, done.stderr + done.stdout
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    kb = seen["create"]["id"]
    assert seen["create"]["name"] == name and seen["create"]["embedding_model"] == WORDS_MODEL
    assert seen["add"]["key"] == "stockholm" and seen["add"]["metadata"] == {"country": "se", "rank": 1}
    assert kb in [item["id"] for item in seen["list"]]
    assert seen["get"]["id"] == kb and seen["get"]["count"] == 3 and seen["by_name"] == seen["get"]
    assert [hit["key"] for hit in seen["query"]] == ["stockholm", "paris"]
    assert seen["query"][0]["content"] == "Stockholm is the capital of Sweden."
    assert seen["query"][0]["metadata"] == {"country": "se", "rank": 1}
    assert [hit["key"] for hit in seen["filtered"]] == ["paris", "cats"]
    assert {hit["key"] for hit in seen["ranked_filter"]} == {"paris", "cats"}
    assert seen["document"]["key"] == "paris" and seen["document"]["metadata"] == {"country": "fr", "rank": 2}
    assert seen["delete_some"]["deleted_count"] == 2
    assert [hit["key"] for hit in seen["after_delete"]] == ["stockholm"]
    assert seen["text"]["original_filename"] == "otters.txt" and seen["text"]["metadata"] == {"kind": "text"}
    assert seen["pdf"]["original_filename"] == "penguins.pdf"
    assert sorted((item["original_filename"], item["status"]) for item in seen["files"]) == [
        ("otters.txt", "completed"), ("penguins.pdf", "completed")]
    assert [hit["key"] for hit in seen["query_pdf"]] == [seen["pdf"]["key"]]
    assert seen["query_pdf"][0]["content"] == "Penguins huddle together against the cold."
    assert [hit["key"] for hit in seen["query_text"]] == [seen["text"]["key"]]
    assert [item["original_filename"] for item in seen["files_after_delete"]] == ["otters.txt"]
    assert seen["pdf"]["key"] not in [hit["key"] for hit in seen["query_after_file_delete"]]
    assert seen["duplicate"]["status"] == 409
    assert seen["empty_query"]["status"] == 400 and seen["bad_top_k"]["status"] == 400
    assert seen["bad_operator"]["status"] == 400 and seen["unsupported"]["status"] == 415
    assert seen["unknown_kb"]["status"] == 404 and seen["hostile_name"]["status"] == 404
    assert seen["deleted_get"]["status"] == 404
    for refusal in ("duplicate", "empty_query", "bad_top_k", "bad_operator", "unsupported", "unknown_kb"):
        assert isinstance(seen[refusal]["body"], dict), refusal  # the spec's JSON error body, parsed by the client
