"""opperai==1.7.2's `knowledge` methods (those without files) against taskgate.

Usage: v2_knowledge.py '<json config>' with name and embedding_model.
Prints one JSON document with what the client saw.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from opperai_v2_client import opper, plain, refused


def main() -> None:
    cfg = json.loads(sys.argv[1])
    seen: dict[str, Any] = {}
    made = opper.knowledge.create(name=cfg["name"], embedding_model=cfg["embedding_model"])
    seen["create"] = plain(made)
    kb = made.id
    seen["add"] = plain(opper.knowledge.add(knowledge_base_id=kb, key="stockholm", metadata={"country": "se"},
                                            content="Stockholm is the capital of Sweden.",
                                            configuration={"text_processing.chunk_size": 100,
                                                                           "text_processing.chunk_overlap": 10}))
    opper.knowledge.add(knowledge_base_id=kb, key="paris", metadata={"country": "fr"},
                        content="Paris is the capital of France.")
    opper.knowledge.add(knowledge_base_id=kb, key="cats", metadata={"country": "none"},
                        content="Cats sleep most of the day.")
    seen["query"] = plain(opper.knowledge.query(knowledge_base_id=kb, query="capital of Sweden", top_k=2))
    seen["filtered"] = plain(opper.knowledge.query(
        knowledge_base_id=kb, query="capital of Sweden", top_k=3, rerank=False,
        filters=[{"field": "country", "operation": "in", "value": ["fr", "none"]}]))
    seen["get"] = plain(opper.knowledge.get(knowledge_base_id=kb))
    seen["by_name"] = plain(opper.knowledge.get_by_name(knowledge_base_name=cfg["name"]))
    seen["list"] = plain(opper.knowledge.list(limit=100))
    seen["document"] = plain(opper.knowledge.get_document_by_key_knowledge_knowledge_base_id_documents_document_key_get(
        knowledge_base_id=kb, document_key="paris"))
    seen["delete_some"] = plain(opper.knowledge.delete_documents(
        knowledge_base_id=kb, filters=[{"field": "country", "operation": "=", "value": "fr"}]))
    seen["delete_rest"] = plain(opper.knowledge.delete_documents(knowledge_base_id=kb))
    seen["duplicate"] = refused(lambda: opper.knowledge.create(name=cfg["name"],
                                                               embedding_model=cfg["embedding_model"]))
    seen["empty_query"] = refused(lambda: opper.knowledge.query(knowledge_base_id=kb, query=" "))
    seen["overlap_too_big"] = refused(lambda: opper.knowledge.add(knowledge_base_id=kb, content="x",
                                                                  configuration={"text_processing.chunk_size": 100}))
    seen["bad_top_k"] = refused(lambda: opper.knowledge.query(knowledge_base_id=kb, query="x", top_k=10_000))
    opper.knowledge.delete(knowledge_base_id=kb)
    seen["deleted_get"] = refused(lambda: opper.knowledge.get(knowledge_base_id=kb))
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
