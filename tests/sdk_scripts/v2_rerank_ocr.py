"""opperai==1.7.2's `rerank` and `ocr` methods against taskgate.

Usage: v2_rerank_ocr.py '<json config>' with rerank_model, ocr_model and png_base64.
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
    ranked = opper.rerank.documents(query="capital of sweden", model=cfg["rerank_model"], top_k=2,
                                    documents=[{"text": "the cat sat"}, {"text": "stockholm is the capital of sweden",
                                                                         "metadata": {"id": "s"}}])
    seen["rerank"] = plain(ranked)
    seen["rerank_models"] = plain(opper.rerank.list_models())
    seen["rerank_empty"] = refused(lambda: opper.rerank.documents(query="q", model=cfg["rerank_model"], documents=[]))
    read = opper.ocr.process_ocr_ocr_post(model=cfg["ocr_model"], document={
        "type": "base64", "content": cfg["png_base64"], "document_name": "scan.png"})
    seen["ocr"] = plain(read)
    seen["ocr_models"] = plain(opper.ocr.list_ocr_models_ocr_models_get())
    seen["ocr_bad"] = refused(lambda: opper.ocr.process_ocr_ocr_post(model=cfg["ocr_model"], document={
        "type": "base64", "content": "%%%"}))
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
