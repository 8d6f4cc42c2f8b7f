"""opperai==1.7.2's `knowledge` file methods against taskgate.

Usage: v2_knowledge_files.py '<json config>' with name, embedding_model and pdf (base64).
Prints one JSON document with what the client saw.
"""

from __future__ import annotations

import base64
import json
import sys
import time
import urllib.request
from typing import Any

from opperai_v2_client import opper, plain, refused

UNKNOWN = "0190a8c2-7d3e-7a1b-8c4d-5e6f7a8b9c0d"




def settled(kb: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while True:
        listed = plain(opper.knowledge.list_files(knowledge_base_id=kb))["data"]
        if all(item["status"] in ("completed", "failed") for item in listed) or time.monotonic() > deadline:
            return listed
        time.sleep(0.05)


def main() -> None:
    cfg = json.loads(sys.argv[1])
    seen: dict[str, Any] = {}
    kb = opper.knowledge.create(name=cfg["name"], embedding_model=cfg["embedding_model"]).id
    seen["text"] = plain(opper.knowledge.upload_file(
        knowledge_base_id=kb, file={"file_name": "otters.txt", "content": b"Otters hold hands while they sleep.",
                                    "content_type": "text/plain"},
        text_processing_chunk_size=500, text_processing_chunk_overlap=50, metadata=json.dumps({"kind": "text"})))
    seen["pdf"] = plain(opper.knowledge.upload_file(
        knowledge_base_id=kb, file={"file_name": "penguins.pdf", "content": base64.b64decode(cfg["pdf"]),
                                    "content_type": "application/pdf"},
        metadata=json.dumps({"kind": "pdf"})))
    grant = opper.knowledge.get_upload_url(knowledge_base_id=kb, filename="deer.md")
    seen["upload_url"] = plain(grant)
    put = urllib.request.Request(grant.url, data=b"Deer shed antlers each winter.", method="PUT")
    with urllib.request.urlopen(put) as answer:
        seen["put_status"] = answer.status
    seen["register"] = plain(opper.knowledge.register_file_upload(
        knowledge_base_id=kb, filename="deer.md", file_id=grant.id, content_type="text/markdown",
        configuration={"text_processing.chunk_size": 300}, metadata={"kind": "markdown"}))
    seen["files"] = settled(kb)
    seen["query_pdf"] = plain(opper.knowledge.query(knowledge_base_id=kb, query="penguins huddle cold", top_k=1))
    seen["query_text"] = plain(opper.knowledge.query(
        knowledge_base_id=kb, query="otters sleep", top_k=3,
        filters=[{"field": "kind", "operation": "=", "value": "text"}]))
    download = opper.knowledge.get_file_download_url(knowledge_base_id=kb, file_id=seen["pdf"]["id"])
    seen["download"] = plain(download)
    with urllib.request.urlopen(download.url) as answer:
        seen["downloaded_b64"] = base64.b64encode(answer.read()).decode()
    opper.knowledge.delete_file(knowledge_base_id=kb, file_id=seen["pdf"]["id"])
    seen["after_delete"] = plain(opper.knowledge.list_files(knowledge_base_id=kb))
    seen["query_after_delete"] = plain(opper.knowledge.query(knowledge_base_id=kb, query="penguins huddle cold"))
    seen["unsupported"] = refused(lambda: opper.knowledge.upload_file(
        knowledge_base_id=kb, file={"file_name": "run.exe", "content": b"MZ"}))
    seen["unknown_kb"] = refused(lambda: opper.knowledge.list_files(knowledge_base_id=UNKNOWN))
    seen["unknown_file"] = refused(lambda: opper.knowledge.delete_file(knowledge_base_id=kb, file_id=UNKNOWN))
    print(json.dumps(seen))


main()
