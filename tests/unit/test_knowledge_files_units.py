"""Knowledge files' pure parts: the signed URL tokens (what they grant, their expiry, tampering),
the formats told from names and content types, and kept file names."""

from __future__ import annotations

import base64
import time

import pytest

from taskgate.engine.knowledge.file_urls import DOWNLOAD, UPLOAD, URL_SECONDS, FileUrlSigner, Grant
from taskgate.engine.knowledge.files import file_name
from taskgate.engine.knowledge.parsing import UnreadableFileError, format_of, text_of
from taskgate.errors import BadRequestError, UnauthorizedError, UnsupportedMediaTypeError

SIGNER = FileUrlSigner(b"k" * 32)
GRANT = Grant(UPLOAD, "project", "base", "file")


def test_a_token_grants_what_it_names_until_it_expires() -> None:
    token = SIGNER.token(GRANT)
    assert SIGNER.project_of(token, UPLOAD, "base", "file") == "project"
    for action, base, file in [(DOWNLOAD, "base", "file"), (UPLOAD, "other", "file"), (UPLOAD, "base", "other")]:
        with pytest.raises(UnauthorizedError):
            SIGNER.project_of(token, action, base, file)
    expired = SIGNER.token(GRANT, now=time.time() - URL_SECONDS - 5)
    with pytest.raises(UnauthorizedError):
        SIGNER.project_of(expired, UPLOAD, "base", "file")
    with pytest.raises(UnauthorizedError):
        FileUrlSigner(b"x" * 32).project_of(token, UPLOAD, "base", "file")


@pytest.mark.parametrize("token", ["", ".", "abc", "!!!.???", "cHJvamVjdDox.AAAA", "\x00.\x00"])
def test_forged_tokens_are_refused(token: str) -> None:
    with pytest.raises(UnauthorizedError):
        SIGNER.project_of(token, UPLOAD, "base", "file")


def test_a_token_for_another_project_cannot_be_made_by_editing_it() -> None:
    encoded, _, signature = SIGNER.token(GRANT).partition(".")
    payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode().replace("project", "stolen")
    forged = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=") + "." + signature
    with pytest.raises(UnauthorizedError):
        SIGNER.project_of(forged, UPLOAD, "base", "file")


@pytest.mark.parametrize(("name", "content_type", "expected"), [
    ("a.TXT", None, "text"), ("a.md", "application/pdf", "markdown"), ("a", "text/html; charset=utf-8", "html"),
    ("a.pdf", None, "pdf"), ("a.docx", None, "docx"), ("noext", "TEXT/PLAIN", "text"),
])
def test_formats(name: str, content_type: str | None, expected: str) -> None:
    assert format_of(name, content_type) == expected


@pytest.mark.parametrize(("name", "content_type"), [("a.exe", None), ("a.doc", "application/msword"), ("a", None),
                                                    ("a.pdf.zip", "application/zip")])
def test_other_formats_are_415(name: str, content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaTypeError):
        format_of(name, content_type)


@pytest.mark.parametrize(("raw", "kept"), [("../../etc/passwd.txt", "passwd.txt"), ("C:\\x\\y.md", "y.md"),
                                           (" a b.txt ", "a b.txt")])
def test_names_keep_their_last_segment(raw: str, kept: str) -> None:
    assert file_name(raw) == kept


@pytest.mark.parametrize("raw", ["", "/", "a/..", "..", "a\nb.txt", "x" * 301])
def test_bad_names_are_400(raw: str) -> None:
    with pytest.raises(BadRequestError):
        file_name(raw)


@pytest.mark.parametrize(("file_format", "content"), [
    ("pdf", b""), ("pdf", b"%PDF-1.4\n%%EOF"), ("docx", b"PK\x03\x04 not a zip"), ("text", b"\xff\xfe"),
    ("html", b"<script>only()</script>"),
])
def test_unreadable_content(file_format: str, content: bytes) -> None:
    with pytest.raises(UnreadableFileError):
        text_of(file_format, content)
