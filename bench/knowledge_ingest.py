"""A 200-page PDF ingested into a knowledge base, end to end, on the offline default embedding model.

A benchmark, not a test. It writes a PDF of `--pages` pages of English-like text (about 2,400
characters a page, drawn from a seeded generator), starts `taskgate serve` on a fresh SQLite data
directory, creates a knowledge base without `embedding_model` (so `TASKGATE_DEFAULT_EMBEDDING_MODEL`,
`local/all-minilm-l6-v2`), uploads the file through `POST /v2/knowledge/{id}/upload`, and polls
`GET /v2/knowledge/{id}/files` until the file is `completed` (or `failed`). It prints the upload's
answer time, the time to searchable, the chunks made and chunks per second, and checks that a
query finds a sentence of the last page.

Run from a checkout: `python -m bench.knowledge_ingest [--pages 200] [--chunk-size 2000]`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

from bench.common import ROOT, free_port
from tests.file_samples import multipart, pdf_of

KEY = "tg_bench_ingest"
WORDS = ("river", "mountain", "library", "engine", "garden", "market", "winter", "signal", "harbour", "lantern",
         "orchard", "valley", "letter", "bridge", "candle", "forest", "station", "meadow", "compass", "pattern",
         "ledger", "window", "thunder", "castle", "silver", "copper", "feather", "mirror", "canyon", "island")


def page_text(rng: random.Random, page: int) -> list[str]:
    """About 2,400 characters: 40 lines of words, the first naming its page."""
    lines = [f"Page {page} opens with the {rng.choice(WORDS)} and the {rng.choice(WORDS)}."]
    while len(lines) < 40:
        lines.append(" ".join(rng.choice(WORDS) for _ in range(9)).capitalize() + ".")
    return lines


def pdf_pages(pages: list[list[str]]) -> bytes:
    """The pages as a PDF, each line shown in Helvetica (ASCII text without parentheses)."""
    return pdf_of(["BT /F1 10 Tf 40 760 Td " + "".join(f"({line}) Tj 0 -14 Td " for line in lines) + "ET"
                   for lines in pages])


def call(method: str, url: str, body: bytes | None = None, content_type: str = "application/json") -> Any:
    request = urllib.request.Request(url, data=body, method=method,
                                     headers={"Authorization": f"Bearer {KEY}", "Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=600) as reply:
        return json.loads(reply.read() or b"null")


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/health", timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--chunk-size", type=int, default=2000)
    args = parser.parse_args()
    rng = random.Random(18)
    pages = [page_text(rng, number) for number in range(1, args.pages + 1)]
    document = pdf_pages(pages)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as data_dir:
        env = {**{k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))},
               "TASKGATE_API_KEYS": KEY}
        server = subprocess.Popen([sys.executable, "-c", "from taskgate.cli import main; main()", "serve", "--host",
                                   "127.0.0.1", "--port", str(port), "--data-dir", data_dir, "--log-level", "warning"],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_ready(url)
            base = call("POST", f"{url}/v2/knowledge", json.dumps({"name": "bench-ingest"}).encode())
            body, content_type = multipart({"text_processing.chunk_size": str(args.chunk_size)},
                                           {"file": ("bench.pdf", document, "application/pdf")})
            started = time.perf_counter()
            uploaded = call("POST", f"{url}/v2/knowledge/{base['id']}/upload", body, content_type)
            answered = time.perf_counter() - started
            while True:
                files = call("GET", f"{url}/v2/knowledge/{base['id']}/files")["data"]
                [entry] = [item for item in files if item["id"] == uploaded["id"]]
                if entry["status"] in ("completed", "failed"):
                    break
                time.sleep(0.2)
            searchable = time.perf_counter() - started
            if entry["status"] != "completed":
                raise SystemExit(f"ingestion failed: {entry}")
            segments = call("GET", f"{url}/v2/knowledge/{base['id']}/documents/{uploaded['key']}")["segments"]
            last = pages[-1][0]
            found = call("POST", f"{url}/v2/knowledge/{base['id']}/query",
                         json.dumps({"query": last, "top_k": 3}).encode())
        finally:
            server.terminate()
            server.wait(timeout=30)
    characters = sum(len(line) + 1 for lines in pages for line in lines)
    print(f"{args.pages} pages, {len(document) / 1024:.0f} KB PDF, {characters} characters, chunk size "
          f"{args.chunk_size}: upload answered in {answered * 1000:.0f} ms; searchable after {searchable:.1f} s; "
          f"{len(segments)} chunks ({len(segments) / searchable:.1f} chunks/s end to end); "
          f"the last page's first sentence {'found' if any(last in hit['content'] for hit in found) else 'NOT found'} "
          f"in the top 3")


if __name__ == "__main__":
    main()
