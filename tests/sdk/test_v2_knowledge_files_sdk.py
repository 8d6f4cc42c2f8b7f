"""The real opperai==1.7.2 `knowledge` file methods against `taskgate serve`, on SQLite and Postgres:
`upload_file` with a text file and a PDF, the upload-URL flow, listing, download and delete."""

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


def test_knowledge_file_methods(sdk_venv: SdkVenvs, any_server: ServerProcess) -> None:
    pdf = pdf_with("Penguins huddle together against the cold.")
    config = {"name": unique("kb"), "embedding_model": WORDS_MODEL, "pdf": base64.b64encode(pdf).decode()}
    done = sdk_venv.run("opperai-1.7.2", "v2_knowledge_files.py", json.dumps(config), server=any_server)
    assert done.returncode == 0, done.stderr + done.stdout
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["text"]["original_filename"] == "otters.txt" and seen["text"]["metadata"] == {"kind": "text"}
    assert seen["pdf"]["original_filename"] == "penguins.pdf" and isinstance(seen["pdf"]["document_id"], int)
    assert seen["upload_url"]["url"].startswith(any_server.url) and seen["put_status"] == 204
    assert seen["register"]["id"] == seen["upload_url"]["id"]
    assert sorted((item["original_filename"], item["status"]) for item in seen["files"]) == [
        ("deer.md", "completed"), ("otters.txt", "completed"), ("penguins.pdf", "completed")]
    assert [hit["key"] for hit in seen["query_pdf"]] == [seen["pdf"]["key"]]
    assert seen["query_pdf"][0]["content"] == "Penguins huddle together against the cold."
    assert [hit["key"] for hit in seen["query_text"]] == [seen["text"]["key"]]
    assert seen["download"]["url"].startswith(any_server.url) and seen["download"]["expires_in"] > 0
    assert base64.b64decode(seen["downloaded_b64"]) == pdf
    assert {item["original_filename"] for item in seen["after_delete"]["data"]} == {"otters.txt", "deer.md"}
    assert seen["pdf"]["key"] not in [hit["key"] for hit in seen["query_after_delete"]]
    assert seen["unsupported"]["status"] == 415
    assert seen["unknown_kb"]["status"] == 404 and seen["unknown_file"]["status"] == 404
