"""The UI's route table, mounted by `taskgate.app` after the API dialects: every path is under `/ui`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from taskgate.engine.secret_box import load_secret_key
from taskgate.errors import NotFoundError
from taskgate.ui import functions, keys, knowledge, sign_in, traces, usage
from taskgate.ui.guard import Page, UiContext, Visit, guarded_page
from taskgate.ui.render import Renderer
from taskgate.ui.sessions import SessionSigner

if TYPE_CHECKING:
    from taskgate.context import AppContext

# (method, path, page, needs a session)
PAGES: tuple[tuple[str, str, Page, bool], ...] = (
    ("GET", "/ui", sign_in.home, True),
    ("GET", "/ui/", sign_in.home, True),
    ("GET", "/ui/sign-in", sign_in.sign_in_form, False),
    ("POST", "/ui/sign-in", sign_in.sign_in, False),
    ("POST", "/ui/sign-out", sign_in.sign_out, True),
    ("GET", "/ui/traces", traces.trace_list, True),
    ("GET", "/ui/traces/{trace_id}", traces.trace_page, True),
    ("GET", "/ui/spans/{span_id}", traces.span_page, True),
    ("POST", "/ui/spans/{span_id}/feedback", traces.give_feedback, True),
    ("POST", "/ui/spans/{span_id}/save-example", traces.save_example, True),
    ("GET", "/ui/usage", usage.usage_page, True),
    ("GET", "/ui/keys", keys.key_list, True),
    ("POST", "/ui/keys", keys.create_key, True),
    ("POST", "/ui/keys/{key_id}/revoke", keys.revoke_key, True),
    ("GET", "/ui/functions", functions.function_list, True),
    ("GET", "/ui/functions/{function_id}", functions.function_page, True),
    ("POST", "/ui/functions/{function_id}/stream", functions.playground_stream, True),
    ("GET", "/ui/knowledge", knowledge.base_list, True),
    ("GET", "/ui/knowledge/{base_id}", knowledge.base_page, True),
    ("POST", "/ui/knowledge/{base_id}/query", knowledge.query_base, True),
)


def routes(ctx: AppContext) -> list[BaseRoute]:
    signer = SessionSigner(load_secret_key(ctx.settings.secret_key, ctx.settings.data_dir))
    ui = UiContext(signer, Renderer())
    table: list[BaseRoute] = [Mount("/ui/static", app=StaticFiles(packages=[("taskgate.ui", "static")]),
                                    name="ui-static")]
    table += [Route(path, guarded_page(ctx, ui, page, signed_in=needs_session), methods=[method],
                    name=f"ui-{page.__name__}") for method, path, page, needs_session in PAGES]
    table.append(Route("/ui/{rest:path}", guarded_page(ctx, ui, not_found), methods=["GET", "POST"]))
    return table


async def not_found(visit: Visit) -> Response:
    raise NotFoundError(f"there is no page at {visit.request.url.path[:200]}")
