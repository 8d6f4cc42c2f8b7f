"""The Cohere-style rerank wire, as Cohere (`/v2/rerank`: search units) and Jina, Together and vLLM
(`/v1/rerank`: tokens) answer it.

A document's score is the share of the query's words it contains, so tests can predict the order:
ties keep the documents' order. The answer lists every document (or `top_n`), most relevant first.
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson

from tests.fakes.common import input_tokens
from tests.fakes.openai_wire import error_body

_WORD = re.compile(r"\w+")
SEARCH_UNIT_DOCUMENTS = 100  # Cohere bills a search unit per query and up to 100 documents


def words(text: str) -> set[str]:
    return {word.lower() for word in _WORD.findall(text)}


def relevance(query: str, document: str) -> float:
    asked = words(query)
    return len(asked & words(document)) / len(asked) if asked else 0.0


def request_problem(body: Any) -> str | None:
    """What a rerank API refuses before ranking, if anything."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return "model is required"
    if not isinstance(body.get("query"), str):
        return "query is required"
    documents = body.get("documents")
    if not isinstance(documents, list) or not documents or not all(isinstance(d, str) for d in documents):
        return "documents must be a non-empty list of strings"
    top_n = body.get("top_n")
    if top_n is not None and (not isinstance(top_n, int) or isinstance(top_n, bool) or top_n < 1):
        return "top_n must be a positive integer"
    return None


def rerank_body(body: dict[str, Any], billing: str) -> tuple[int, bytes]:
    """(status, body) for a rerank request; `billing` is "search_units" (Cohere) or "tokens"."""
    problem = request_problem(body)
    if problem:
        return 400, error_body(400, problem)
    query, documents = body["query"], body["documents"]
    ranked = sorted(range(len(documents)), key=lambda index: -relevance(query, documents[index]))
    if body.get("top_n") is not None:
        ranked = ranked[:body["top_n"]]
    results = [{"index": index, "relevance_score": relevance(query, documents[index])} for index in ranked]
    answer: dict[str, Any] = {"id": "rerank-fake", "results": results}
    if billing == "search_units":
        answer["meta"] = {"billed_units": {"search_units": math.ceil(len(documents) / SEARCH_UNIT_DOCUMENTS)}}
    else:
        tokens = input_tokens(len(query) + sum(len(document) for document in documents))
        answer["model"] = body["model"]
        answer["usage"] = {"total_tokens": tokens}
    return 200, orjson.dumps(answer)
