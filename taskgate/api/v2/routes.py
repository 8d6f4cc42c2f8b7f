"""The v2 dialect's route table (`opperai==1.7.2`).

Every path is served under `/v2` and at the root too: 1.7.2 appends the operation path to
whatever `server_url` it was given.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from taskgate.api.v2 import (
    analytics,
    calls,
    datasets,
    embeddings,
    feedback,
    functions,
    knowledge,
    knowledge_files,
    metrics,
    model_names,
    models,
    ocr,
    rerank,
    spans,
    traces,
)
from taskgate.server.dispatch import Endpoint, endpoint_routes

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from taskgate.context import AppContext

_UNDER_V2 = [
    Endpoint("POST", "/v2/call", calls.call),
    Endpoint("POST", "/v2/call/stream", calls.stream),
    Endpoint("POST", "/v2/spans", spans.create),
    Endpoint("GET", "/v2/spans/{span_id}", spans.get),
    Endpoint("PATCH", "/v2/spans/{span_id}", spans.update),
    Endpoint("DELETE", "/v2/spans/{span_id}", spans.delete),
    # Functions. Matched in order: by-name before the id routes (a name may contain `/revisions/x`),
    # and `/call/stream` before `/call/{revision_id}`.
    Endpoint("POST", "/v2/functions", functions.create),
    Endpoint("GET", "/v2/functions", functions.list_functions),
    Endpoint("GET", "/v2/functions/by-name/{name:path}", functions.get_by_name),
    Endpoint("GET", "/v2/functions/{function_id}", functions.get),
    Endpoint("PATCH", "/v2/functions/{function_id}", functions.update),
    Endpoint("DELETE", "/v2/functions/{function_id}", functions.delete),
    Endpoint("GET", "/v2/functions/{function_id}/revisions", functions.list_revisions),
    Endpoint("GET", "/v2/functions/{function_id}/revisions/{revision_id}", functions.get),
    Endpoint("POST", "/v2/functions/{function_id}/call", functions.call),
    Endpoint("POST", "/v2/functions/{function_id}/call/stream", functions.stream),
    Endpoint("POST", "/v2/functions/{function_id}/call/stream/{revision_id}", functions.stream),
    Endpoint("POST", "/v2/functions/{function_id}/call/{revision_id}", functions.call),
    # Datasets: an entry is created on the dataset's own path (no `/entries`, spec §2.1).
    Endpoint("POST", "/v2/datasets/{dataset_id}", datasets.create_entry),
    Endpoint("GET", "/v2/datasets/{dataset_id}/entries", datasets.list_entries),
    Endpoint("POST", "/v2/datasets/{dataset_id}/entries/query", datasets.query_entries),
    Endpoint("GET", "/v2/datasets/{dataset_id}/entries/{entry_id}", datasets.get_entry),
    Endpoint("PATCH", "/v2/datasets/{dataset_id}/entries/{entry_id}", datasets.update_entry),
    Endpoint("DELETE", "/v2/datasets/{dataset_id}/entries/{entry_id}", datasets.delete_entry),
    Endpoint("GET", "/v2/models", models.list_models),
    *model_names.endpoints("/v2/models/custom", "model_id", model_names.CUSTOM),
    *model_names.endpoints("/v2/models/aliases", "alias_id", model_names.ALIASES),
    Endpoint("POST", "/v2/spans/{span_id}/save_examples", feedback.save_examples),
    Endpoint("POST", "/v2/spans/{span_id}/feedback", feedback.submit),
    Endpoint("POST", "/v2/spans/{span_id}/metrics", metrics.create),
    Endpoint("GET", "/v2/spans/{span_id}/metrics", metrics.list_metrics),
    Endpoint("GET", "/v2/spans/{span_id}/metrics/{metric_id}", metrics.get),
    Endpoint("PATCH", "/v2/spans/{span_id}/metrics/{metric_id}", metrics.update),
    Endpoint("DELETE", "/v2/spans/{span_id}/metrics/{metric_id}", metrics.delete),
    Endpoint("GET", "/v2/traces", traces.list_traces),
    Endpoint("GET", "/v2/traces/{trace_id}", traces.get_trace),
    Endpoint("GET", "/v2/analytics/usage", analytics.usage),
    Endpoint("POST", "/v2/knowledge", knowledge.create),
    Endpoint("GET", "/v2/knowledge", knowledge.list_bases),
    Endpoint("GET", "/v2/knowledge/by-name/{name:path}", knowledge.get_by_name),
    Endpoint("GET", "/v2/knowledge/{knowledge_base_id}", knowledge.get),
    Endpoint("DELETE", "/v2/knowledge/{knowledge_base_id}", knowledge.delete),
    Endpoint("POST", "/v2/knowledge/{knowledge_base_id}/add", knowledge.add),
    Endpoint("POST", "/v2/knowledge/{knowledge_base_id}/query", knowledge.query),
    Endpoint("DELETE", "/v2/knowledge/{knowledge_base_id}/query", knowledge.delete_documents),
    Endpoint("GET", "/v2/knowledge/{knowledge_base_id}/documents/{document_key:path}", knowledge.get_document),
    Endpoint("GET", "/v2/knowledge/{knowledge_base_id}/upload_url", knowledge_files.upload_url),
    Endpoint("POST", "/v2/knowledge/{knowledge_base_id}/register_file", knowledge_files.register_file),
    Endpoint("POST", "/v2/knowledge/{knowledge_base_id}/upload", knowledge_files.upload),
    Endpoint("GET", "/v2/knowledge/{knowledge_base_id}/files", knowledge_files.list_files),
    Endpoint("GET", "/v2/knowledge/{knowledge_base_id}/files/{file_id}/download_url", knowledge_files.download_url),
    Endpoint("DELETE", "/v2/knowledge/{knowledge_base_id}/files/{file_id}", knowledge_files.delete_file),
    Endpoint("PUT", "/v2/knowledge/{knowledge_base_id}/files/{file_id}/content", knowledge_files.put_content),
    Endpoint("POST", "/v2/knowledge/{knowledge_base_id}/files/{file_id}/content", knowledge_files.put_content),
    Endpoint("GET", "/v2/knowledge/{knowledge_base_id}/files/{file_id}/content", knowledge_files.get_content),
    Endpoint("POST", "/v2/embeddings", embeddings.create),
    Endpoint("POST", "/v2/rerank", rerank.documents),
    Endpoint("GET", "/v2/rerank/models", rerank.list_models),
    Endpoint("POST", "/v2/ocr", ocr.process),
    Endpoint("GET", "/v2/ocr/models", ocr.list_models),
]
ROUTES = _UNDER_V2 + [replace(entry, path=entry.path.removeprefix("/v2")) for entry in _UNDER_V2]


def routes(ctx: AppContext) -> list[BaseRoute]:
    return endpoint_routes(ctx, ROUTES)
