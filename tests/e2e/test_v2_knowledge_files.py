"""v2 knowledge-base files over raw HTTP against `taskgate serve`, on SQLite and Postgres alike:
direct multipart uploads of each format, the upload-URL flow (signed, expiring, on Taskgate itself),
ingestion off the request path with its status, listing, download URLs, deletion with the file's
chunks, and the hostile matrix."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e.test_v2_functions import UNKNOWN, assert_error, other_key, v2
from tests.e2e.test_v2_knowledge import make_base, query
from tests.fakes.provider import FakeProvider
from tests.file_samples import docx_with, multipart, pdf_with
from tests.harness import ServerProcess
from tests.http_client import KEY, Reply, get, post, request
from tests.span_lookup import wait_until

FILE_KEYS = {"id", "key", "original_filename", "document_id", "metadata"}


def upload(server: ServerProcess, base_id: str, filename: str, content: bytes, content_type: str = "text/plain",
           key: str = KEY, **fields: str) -> Reply:
    body, form_type = multipart(fields, {"file": (filename, content, content_type)})
    return post(v2(server, f"/knowledge/{base_id}/upload"), raw=body, headers={"Content-Type": form_type}, key=key)


def files(server: ServerProcess, base_id: str) -> list[dict[str, Any]]:
    reply = get(v2(server, f"/knowledge/{base_id}/files"))
    assert reply.status == 200, reply.body
    data: list[dict[str, Any]] = reply.json()["data"]
    return data


def settled(server: ServerProcess, base_id: str, file_id: str) -> dict[str, Any]:
    """The file once its ingestion has ended (completed or failed)."""
    found: dict[str, Any] = {}

    def done() -> bool:
        found.update(next(item for item in files(server, base_id) if item["id"] == file_id))
        return found["status"] in ("completed", "failed")

    assert wait_until(done, timeout=30), found
    return found


def local(server: ServerProcess, url: str) -> str:
    """A URL Taskgate gave, checked to point at the server itself."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == server.url, url
    return url


def test_a_text_upload_is_ingested_searched_and_deleted(any_server: ServerProcess) -> None:
    base_id = make_base(any_server)["id"]
    reply = upload(any_server, base_id, "glaciers.txt", b"Glaciers carve valleys slowly over centuries.",
                   metadata='{"topic": "ice"}', **{"text_processing.chunk_size": "100",
                                                    "text_processing.chunk_overlap": "10"})
    assert reply.status == 201, reply.body
    made = reply.json()
    assert set(made) == FILE_KEYS and made["original_filename"] == "glaciers.txt"
    assert made["metadata"] == {"topic": "ice"} and isinstance(made["document_id"], int)
    listed = settled(any_server, base_id, made["id"])
    assert listed["status"] == "completed" and listed["error"] is None and listed["size"] == 45
    assert listed["document_id"] == made["document_id"]
    hits = query(any_server, base_id, query="glaciers valleys").json()
    assert [hit["key"] for hit in hits] == [made["key"]] and hits[0]["metadata"] == {"topic": "ice"}
    filtered = query(any_server, base_id, query="glaciers", filters=[{"field": "topic", "operation": "=",
                                                                       "value": "fire"}]).json()
    assert filtered == []
    assert request("DELETE", v2(any_server, f"/knowledge/{base_id}/files/{made['id']}")).status == 204
    assert files(any_server, base_id) == [] and query(any_server, base_id, query="glaciers").json() == []
    assert_error(get(v2(any_server, f"/knowledge/{base_id}/documents/{made['key']}")), 404)
    assert_error(request("DELETE", v2(any_server, f"/knowledge/{base_id}/files/{made['id']}")), 404)


@pytest.mark.parametrize(("filename", "content", "content_type", "expected"), [
    ("notes.md", b"# Volcanoes\n\nLava flows downhill.", "text/markdown",
     "# Volcanoes\n\nLava flows downhill."),
    ("page.html", b"<html><head><script>var secret = 1;</script></head><body><h1>Tides</h1>"
                  b"<p>The moon pulls &amp; the sea follows.</p></body></html>", "text/html",
     "Tides\nThe moon pulls & the sea follows."),
    ("paper.pdf", pdf_with("Penguins huddle together against the cold."), "application/pdf",
     "Penguins huddle together against the cold."),
    ("report.docx", docx_with("Bees dance to show where flowers are."), "application/octet-stream",
     "Bees dance to show where flowers are."),
    ("README", b"Plain words with no extension.", "text/plain", "Plain words with no extension."),
])
def test_each_format_is_read(any_server: ServerProcess, filename: str, content: bytes, content_type: str,
                             expected: str) -> None:
    base_id = make_base(any_server)["id"]
    reply = upload(any_server, base_id, filename, content, content_type)
    assert reply.status == 201, reply.body
    made = reply.json()
    assert settled(any_server, base_id, made["id"])["status"] == "completed"
    document = get(v2(any_server, f"/knowledge/{base_id}/documents/{made['key']}")).json()
    assert "\n".join(segment["content"] for segment in document["segments"]).strip() == expected


def test_the_upload_url_flow(any_server: ServerProcess) -> None:
    base_id = make_base(any_server)["id"]
    reply = get(v2(any_server, f"/knowledge/{base_id}/upload_url?filename=otters.txt"))
    assert reply.status == 200, reply.body
    grant = reply.json()
    assert set(grant) == {"url", "fields", "id"} and grant["fields"] == {}
    url = local(any_server, grant["url"])
    assert files(any_server, base_id) == []  # not listed before it is registered
    register = {"filename": "otters.txt", "file_id": grant["id"], "content_type": "text/plain",
                "metadata": {"animal": "otter"}, "configuration": {"text_processing.chunk_size": 200}}
    assert_error(post(v2(any_server, f"/knowledge/{base_id}/register_file"), register), 400)  # no bytes yet
    content = b"Otters hold hands while they sleep."
    assert request("PUT", url, key=None, raw=content, headers={"Content-Type": "text/plain"}).status == 204
    assert_error(request("PUT", url.replace("token=", "token=x"), key=None, raw=b"evil"), 401)
    assert_error(request("PUT", url.split("?")[0], key=None, raw=b"evil"), 400)
    reply = post(v2(any_server, f"/knowledge/{base_id}/register_file"), register)
    assert reply.status == 201, reply.body
    made = reply.json()
    assert set(made) == FILE_KEYS and made["id"] == grant["id"] and made["metadata"] == {"animal": "otter"}
    assert_error(post(v2(any_server, f"/knowledge/{base_id}/register_file"), register), 409)
    assert_error(request("PUT", url, key=None, raw=b"replaced"), 404)  # registered: the URL is spent
    assert settled(any_server, base_id, made["id"])["status"] == "completed"
    assert [hit["key"] for hit in query(any_server, base_id, query="otters sleep").json()] == [made["key"]]
    reply = get(v2(any_server, f"/knowledge/{base_id}/files/{made['id']}/download_url"))
    assert reply.status == 200, reply.body
    download = reply.json()
    assert set(download) == {"url", "expires_in"} and download["expires_in"] > 0
    got = get(local(any_server, download["url"]), key=None)
    assert got.status == 200 and got.body == content
    assert got.headers["content-disposition"] == "attachment; filename*=UTF-8''otters.txt"
    assert_error(get(download["url"].replace(base_id, UNKNOWN), key=None), 401)  # the token names the base
    assert_error(get(url, key=None), 401)  # an upload token does not download


def test_a_multipart_post_to_the_upload_url(any_server: ServerProcess) -> None:
    base_id = make_base(any_server)["id"]
    grant = get(v2(any_server, f"/knowledge/{base_id}/upload_url?filename=deer.md")).json()
    body, form_type = multipart({}, {"file": ("deer.md", b"Deer shed antlers each winter.", "text/markdown")})
    assert post(grant["url"], key=None, raw=body, headers={"Content-Type": form_type}).status == 204
    reply = post(v2(any_server, f"/knowledge/{base_id}/register_file"),
                 {"filename": "deer.md", "file_id": grant["id"], "content_type": "text/markdown"})
    assert reply.status == 201, reply.body
    assert settled(any_server, base_id, grant["id"])["status"] == "completed"


def test_a_corrupt_pdf_fails_clearly_and_nothing_is_searchable(any_server: ServerProcess) -> None:
    base_id = make_base(any_server)["id"]
    good = pdf_with("Whales sing across oceans.")
    reply = upload(any_server, base_id, "whales.pdf", good[: len(good) // 2] + b"garbage", "application/pdf")
    assert reply.status == 201, reply.body
    failed = settled(any_server, base_id, reply.json()["id"])
    assert failed["status"] == "failed" and "PDF" in failed["error"]
    assert query(any_server, base_id, query="whales sing").json() == []
    assert get(v2(any_server, f"/knowledge/{base_id}")).json()["count"] == 0


@pytest.mark.parametrize(("content", "expected"), [
    (b"\xff\xfe\x00not utf-8 \xc3", "UTF-8"), (b"   \n\t ", "no text"),
])
def test_unreadable_text_fails_clearly(any_server: ServerProcess, content: bytes, expected: str) -> None:
    base_id = make_base(any_server)["id"]
    reply = upload(any_server, base_id, "bad.txt", content)
    assert reply.status == 201, reply.body
    failed = settled(any_server, base_id, reply.json()["id"])
    assert failed["status"] == "failed" and expected in failed["error"]


def test_a_file_over_the_body_limit_is_413(any_server: ServerProcess) -> None:
    base_id = make_base(any_server)["id"]
    assert_error(upload(any_server, base_id, "huge.txt", b"x" * (11 * 1024 * 1024)), 413)
    grant = get(v2(any_server, f"/knowledge/{base_id}/upload_url?filename=huge.txt")).json()
    assert_error(request("PUT", grant["url"], key=None, raw=b"x" * (11 * 1024 * 1024)), 413)
    assert files(any_server, base_id) == []


@pytest.mark.parametrize("filename", ["run.exe", "archive.zip", "image.png", "sheet.xlsx"])
def test_unsupported_types_are_415(any_server: ServerProcess, filename: str) -> None:
    base_id = make_base(any_server)["id"]
    assert_error(upload(any_server, base_id, filename, b"MZ\x90\x00", "application/octet-stream"), 415)
    assert_error(get(v2(any_server, f"/knowledge/{base_id}/upload_url?filename={filename}")), 415)
    assert files(any_server, base_id) == []


@pytest.mark.parametrize(("content", "status", "answer"), [
    (b"%PDF-1.4 not really", 201, "failed"), (b"Plain words about penguins.", 201, "completed"),
    (b"<!DOCTYPE html><p>penguins</p>", 201, "completed"), (b"\x00\x01\x02", 415, None),
    (b"\xff\xfe\xfd", 415, None), (b"PK\x03\x04zip of something else", 415, None),
])
def test_a_file_that_names_no_type_is_typed_by_its_bytes(any_server: ServerProcess, content: bytes, status: int,
                                                          answer: str | None) -> None:
    """As opperai 2.1.1 sends a file given without a name: `upload`, application/octet-stream."""
    base_id = make_base(any_server)["id"]
    reply = upload(any_server, base_id, "upload", content, "application/octet-stream")
    assert reply.status == status, reply.body
    if answer is not None:
        assert settled(any_server, base_id, reply.json()["id"])["status"] == answer


def test_path_traversal_names_are_only_labels(any_server: ServerProcess) -> None:
    base_id = make_base(any_server)["id"]
    reply = upload(any_server, base_id, "../../etc/passwd.txt", b"root is not here.")
    assert reply.status == 201, reply.body
    assert reply.json()["original_filename"] == "passwd.txt"
    windows = upload(any_server, base_id, "..\\..\\boot.ini.md", b"nothing to see.")
    assert windows.status == 201 and windows.json()["original_filename"] == "boot.ini.md"
    assert_error(upload(any_server, base_id, "../../etc/passwd", b"\x00\x01", "application/octet-stream"), 415)
    assert_error(upload(any_server, base_id, "../..", b"x"), 400)
    assert_error(get(v2(any_server, f"/knowledge/{base_id}/upload_url?filename=..%2F")), 400)
    assert_error(get(v2(any_server, f"/knowledge/{base_id}/upload_url?filename=a%0Ab.txt")), 400)
    assert_error(get(v2(any_server, f"/knowledge/{base_id}/upload_url?filename={'a' * 400}.txt")), 400)
    assert not (any_server.data_dir.parent / "etc").exists()


@pytest.mark.parametrize(("fields", "part", "status"), [
    ({"text_processing.chunk_size": "0"}, "file", 400),
    ({"text_processing.chunk_size": "abc"}, "file", 400),
    ({"chunkSize": "100", "chunkOverlap": "100"}, "file", 400),
    ({"text_processing.chunk_overlap": "-1"}, "file", 400),
    ({"metadata": "not json"}, "file", 400),
    ({"metadata": "[1, 2]"}, "file", 400),
    ({}, "document", 400),  # no part named file
])
def test_bad_upload_forms_are_400(any_server: ServerProcess, fields: dict[str, str], part: str, status: int) -> None:
    base_id = make_base(any_server)["id"]
    body, form_type = multipart(fields, {part: ("a.txt", b"hello", "text/plain")})
    reply = post(v2(any_server, f"/knowledge/{base_id}/upload"), raw=body, headers={"Content-Type": form_type})
    assert_error(reply, status)
    assert files(any_server, base_id) == []


def test_odd_bodies_are_refused(any_server: ServerProcess) -> None:
    base_id = make_base(any_server)["id"]
    url = v2(any_server, f"/knowledge/{base_id}/upload")
    assert_error(post(url, {"file": "a.txt"}), 415)  # JSON, not multipart
    assert_error(post(url, raw=b"--nope\r\n", headers={"Content-Type": "multipart/form-data; boundary=x"}), 400)
    assert_error(post(url, raw=b"", headers={"Content-Type": "multipart/form-data"}), 400)
    register = v2(any_server, f"/knowledge/{base_id}/register_file")
    assert_error(post(register, {"filename": "a.txt"}), 400)
    assert_error(post(register, [1]), 400)
    assert_error(post(register, {"filename": "a.txt", "file_id": UNKNOWN, "content_type": "text/plain"}), 404)
    assert_error(post(register, {"filename": "a.txt", "file_id": "../x", "content_type": "text/plain"}), 404)
    assert_error(post(register, {"filename": "a.txt", "file_id": UNKNOWN, "content_type": 5}), 400)
    assert_error(get(v2(any_server, f"/knowledge/{base_id}/upload_url")), 400)
    assert_error(get(v2(any_server, f"/knowledge/{base_id}/files?limit=-1")), 400)


def test_unknown_and_other_project_ids_are_404(any_server: ServerProcess) -> None:
    base_id = make_base(any_server)["id"]
    made = upload(any_server, base_id, "a.txt", b"mine alone").json()
    settled(any_server, base_id, made["id"])
    stranger = other_key(any_server)
    for key, base, file_id in [(KEY, UNKNOWN, made["id"]), (stranger, base_id, made["id"]), (KEY, base_id, UNKNOWN),
                               (KEY, "x" * 300, made["id"])]:
        prefix = v2(any_server, f"/knowledge/{base}")
        assert_error(get(f"{prefix}/files/{file_id}/download_url", key=key), 404)
        assert_error(request("DELETE", f"{prefix}/files/{file_id}", key=key), 404)
        if file_id == made["id"]:
            assert_error(get(f"{prefix}/files", key=key), 404)
            assert_error(get(f"{prefix}/upload_url?filename=a.txt", key=key), 404)
            assert_error(upload(any_server, base, "a.txt", b"x", key=key), 404)
            assert_error(post(f"{prefix}/register_file", {"filename": "a.txt", "file_id": file_id,
                                                           "content_type": "text/plain"}, key=key), 404)
    assert_error(get(v2(any_server, f"/knowledge/{base_id}/files"), key=None), 401)
    assert [item["id"] for item in files(any_server, base_id)] == [made["id"]]


def test_deleting_the_base_deletes_its_files(any_server: ServerProcess) -> None:
    base_id = make_base(any_server)["id"]
    made = upload(any_server, base_id, "a.txt", b"short lived").json()
    settled(any_server, base_id, made["id"])
    download = get(v2(any_server, f"/knowledge/{base_id}/files/{made['id']}/download_url")).json()
    assert request("DELETE", v2(any_server, f"/knowledge/{base_id}")).status == 204
    assert_error(get(download["url"], key=None), 404)


def test_a_restart_ingests_the_files_left_unfinished(fake: FakeProvider, tmp_path: Path) -> None:
    """A server stopped mid-ingestion (made here by undoing a finished one in the stopped server's
    database) leaves its file `processing`; the next start ingests it."""
    server = ServerProcess(fake, tmp_path)
    with server:
        base_id = make_base(server)["id"]
        made = upload(server, base_id, "moles.txt", b"Moles dig tunnels under gardens.").json()
        assert settled(server, base_id, made["id"])["status"] == "completed"
    with sqlite3.connect(tmp_path / "taskgate.db") as db:
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("DELETE FROM knowledge_documents WHERE key = ?", (made["key"],))
        db.execute("UPDATE knowledge_files SET status = 'processing' WHERE id = ?", (made["id"],))
    db.close()
    with server:
        assert settled(server, base_id, made["id"])["status"] == "completed"
        assert [hit["key"] for hit in query(server, base_id, query="moles tunnels").json()] == [made["key"]]


@pytest.mark.parametrize("extra", [
    {"metadata": "{" * 5000 + "}" * 5000}, {f"field{n}": "x" for n in range(30)}, {"metadata": "x" * (2 * 1024 * 1024)},
])
def test_huge_and_deep_form_fields_are_400(any_server: ServerProcess, extra: dict[str, str]) -> None:
    base_id = make_base(any_server)["id"]
    assert_error(upload(any_server, base_id, "a.txt", b"hello", **extra), 400)


def test_two_files_in_one_form_are_400(any_server: ServerProcess) -> None:
    base_id = make_base(any_server)["id"]
    body, form_type = multipart({}, {"file": ("a.txt", b"one", "text/plain"), "other": ("b.txt", b"two", "text/plain")})
    assert_error(post(v2(any_server, f"/knowledge/{base_id}/upload"), raw=body, headers={"Content-Type": form_type}),
                 400)
