"""opperai==2.1.1's `knowledge` client (the v2 knowledge API) against taskgate, every method end to end.

Usage: v3_knowledge.py '<json config>' with name, embedding_model and pdf (base64). The server's URL and
key come from OPPER_BASE_URL / OPPER_API_KEY. Prints one JSON document with what the client saw.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from opperai import ApiError, Opper

UNKNOWN = "0190a8c2-7d3e-7a1b-8c4d-5e6f7a8b9c0d"


def plain(value: Any) -> Any:
    """A reply as JSON: the client returns dataclasses (and lists of them)."""
    if isinstance(value, list):
        return [plain(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def refused(call: Callable[[], Any]) -> dict[str, Any]:
    try:
        call()
    except ApiError as exc:
        return {"status": exc.status, "body": exc.body}
    return {"status": None}


def settled(opper: Opper, kb: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while True:
        listed = plain(opper.knowledge.list_files(kb))
        if all(item["status"] in ("completed", "failed") for item in listed) or time.monotonic() > deadline:
            return listed
        time.sleep(0.05)


def main() -> None:
    cfg = json.loads(sys.argv[1])
    opper = Opper()
    seen: dict[str, Any] = {}
    made = opper.knowledge.create(name=cfg["name"], embedding_model=cfg["embedding_model"])
    seen["create"] = plain(made)
    kb = made.id
    seen["add"] = plain(opper.knowledge.add(kb, content="Stockholm is the capital of Sweden.", key="stockholm",
                                            metadata={"country": "se", "rank": 1}, chunk_size=100, chunk_overlap=10))
    opper.knowledge.add(kb, content="Paris is the capital of France.", key="paris",
                        metadata={"country": "fr", "rank": 2}, chunk_size=100, chunk_overlap=10)
    opper.knowledge.add(kb, content="Cats sleep most of the day.", key="cats", metadata={"country": "none", "rank": 3},
                        chunk_size=100, chunk_overlap=10)
    seen["list"] = plain(opper.knowledge.list(limit=100))
    seen["get"] = plain(opper.knowledge.get(kb))
    seen["by_name"] = plain(opper.knowledge.get_by_name(cfg["name"]))
    seen["query"] = plain(opper.knowledge.query(kb, query="capital of Sweden", top_k=2))
    seen["filtered"] = plain(opper.knowledge.query(
        kb, query="capital of Sweden", top_k=3, rerank=False,
        filters=[{"field": "country", "operation": "in", "value": ["fr", "none"]}]))
    seen["ranked_filter"] = plain(opper.knowledge.query(
        kb, query="capital", top_k=3, filters=[{"field": "rank", "operation": ">", "value": 1}]))
    seen["document"] = plain(opper.knowledge.get_document(kb, "paris"))
    seen["delete_some"] = plain(opper.knowledge.delete_documents(
        kb, filters=[{"field": "country", "operation": "!=", "value": "se"}]))
    seen["after_delete"] = plain(opper.knowledge.query(kb, query="capital cats", top_k=5))
    seen["text"] = plain(opper.knowledge.upload_file(kb, b"Otters hold hands while they sleep.", filename="otters.txt",
                                                     chunk_size=500, chunk_overlap=50, metadata={"kind": "text"}))
    seen["pdf"] = plain(opper.knowledge.upload_file(kb, base64.b64decode(cfg["pdf"]), filename="penguins.pdf",
                                                    metadata={"kind": "pdf"}))
    seen["files"] = settled(opper, kb)
    seen["query_pdf"] = plain(opper.knowledge.query(kb, query="penguins huddle cold", top_k=1))
    seen["query_text"] = plain(opper.knowledge.query(
        kb, query="otters sleep", top_k=3, filters=[{"field": "kind", "operation": "=", "value": "text"}]))
    opper.knowledge.delete_file(kb, seen["pdf"]["id"])
    seen["files_after_delete"] = plain(opper.knowledge.list_files(kb))
    seen["query_after_file_delete"] = plain(opper.knowledge.query(kb, query="penguins huddle cold"))
    seen["duplicate"] = refused(lambda: opper.knowledge.create(name=cfg["name"],
                                                               embedding_model=cfg["embedding_model"]))
    seen["empty_query"] = refused(lambda: opper.knowledge.query(kb, query=" "))
    seen["bad_top_k"] = refused(lambda: opper.knowledge.query(kb, query="x", top_k=10_000))
    seen["bad_operator"] = refused(lambda: opper.knowledge.query(
        kb, query="x", filters=[{"field": "kind", "operation": "LIKE", "value": "%"}]))
    seen["unsupported"] = refused(lambda: opper.knowledge.upload_file(kb, b"MZ\x90\x00", filename="run.exe"))
    seen["unknown_kb"] = refused(lambda: opper.knowledge.get(UNKNOWN))
    seen["hostile_name"] = refused(lambda: opper.knowledge.get_by_name("x'; DROP TABLE knowledge_bases; --"))
    opper.knowledge.delete(kb)
    seen["deleted_get"] = refused(lambda: opper.knowledge.get(kb))
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
