"""The text of a file uploaded to a knowledge base: plain text and Markdown as they are, HTML
without its tags (the standard library's parser), PDF through pypdf and DOCX through python-docx.

The format is told by the file name's extension, else by the content type the caller gave, else, when
neither says anything (no extension, no or a generic content type) and the bytes are at hand (a
direct upload), by the bytes: opperai 2.1.1 sends a file without a name as `upload`,
`application/octet-stream`. Any other is refused at upload (415). A file that
then cannot be read raises `UnreadableFileError`, whose message becomes the file's `error`.
"""

from __future__ import annotations

import io
import posixpath
from html.parser import HTMLParser

from taskgate.errors import UnsupportedMediaTypeError

TEXT, MARKDOWN, HTML, PDF, DOCX = "text", "markdown", "html", "pdf", "docx"

_BY_EXTENSION = {".txt": TEXT, ".text": TEXT, ".md": MARKDOWN, ".markdown": MARKDOWN, ".html": HTML,
                 ".htm": HTML, ".pdf": PDF, ".docx": DOCX}
_BY_CONTENT_TYPE = {"text/plain": TEXT, "text/markdown": MARKDOWN, "text/x-markdown": MARKDOWN, "text/html": HTML,
                    "application/pdf": PDF,
                    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": DOCX}
CONTENT_TYPES = {TEXT: "text/plain", MARKDOWN: "text/markdown", HTML: "text/html", PDF: "application/pdf",
                 DOCX: "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}
_SKIPPED_TAGS = {"script", "style", "template", "noscript", "head"}
_BLOCK_TAGS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "pre",
               "blockquote", "table", "ul", "ol", "hr", "title"}


class UnreadableFileError(Exception):
    """The file is of a supported type but its content cannot be read as one."""


def format_of(filename: str, content_type: str | None, content: bytes | None = None) -> str:
    """The file's format; UnsupportedMediaTypeError for any other."""
    extension = posixpath.splitext(filename.lower())[1]
    found = _BY_EXTENSION.get(extension)
    if found is None and content_type:
        found = _BY_CONTENT_TYPE.get(content_type.split(";")[0].strip().lower())
    generic = not content_type or content_type.split(";")[0].strip().lower() == "application/octet-stream"
    if found is None and content is not None and not extension and generic:  # nothing said: the bytes tell
        found = _sniffed(content)
    if found is None:
        raise UnsupportedMediaTypeError(
            f"'{filename}' is not a supported file type: upload plain text (.txt), Markdown (.md), HTML (.html), "
            "PDF (.pdf) or Word (.docx)")
    return found


def _sniffed(content: bytes) -> str | None:
    """The format the bytes show: a PDF's header, a Word document's zip entry, else UTF-8 text without
    NUL (HTML when it opens like a page); None for anything else."""
    if content.startswith(b"%PDF-"):
        return PDF
    if content.startswith(b"PK\x03\x04"):
        return DOCX if b"word/" in content[:65536] else None
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    if not text or "\x00" in text:
        return None
    return HTML if text[:1024].lstrip().lower().startswith(("<!doctype html", "<html")) else TEXT


def text_of(file_format: str, content: bytes) -> str:
    """The file's text; UnreadableFileError when the content is not what its format says, or holds no text."""
    readers = {TEXT: _decoded, MARKDOWN: _decoded, HTML: _html_text, PDF: _pdf_text, DOCX: _docx_text}
    text = readers[file_format](content)
    if not text.strip():
        raise UnreadableFileError("the file holds no text")
    return text


def _decoded(content: bytes) -> str:
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(f"the file is not UTF-8 text (byte {exc.start})") from None


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _html_text(content: bytes) -> str:
    collector = _TextCollector()
    collector.feed(_decoded(content))
    collector.close()
    lines = (" ".join(line.split()) for line in "".join(collector.parts).splitlines())
    return "\n".join(line for line in lines if line)


def _pdf_text(content: bytes) -> str:
    from pypdf import PdfReader  # imported on first use: a server that reads no PDF does not pay for it

    try:
        reader = PdfReader(io.BytesIO(content))
        if reader.is_encrypted:
            raise UnreadableFileError("the PDF is encrypted")
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except UnreadableFileError:
        raise
    except Exception as exc:  # pypdf raises many kinds on a damaged file; each is this file's fault
        raise UnreadableFileError(f"the PDF cannot be read: {exc}") from None


def _docx_text(content: bytes) -> str:
    from docx import Document  # imported on first use, as pypdf

    try:
        document = Document(io.BytesIO(content))
        paragraphs = [paragraph.text for paragraph in document.paragraphs]
        cells = [cell.text for table in document.tables for row in table.rows for cell in row.cells]
    except Exception as exc:  # a damaged zip or XML: python-docx raises many kinds
        raise UnreadableFileError(f"the Word document cannot be read: {exc}") from None
    return "\n".join(paragraphs + cells)
