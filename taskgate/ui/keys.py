"""The project's API keys: listed by id, date and the start of their hash; a new one is shown once,
on the page that made it; revoking deletes it (through the authenticator, which forgets it too).

Keys from TASKGATE_API_KEYS are configuration, not stored, so they are not listed and cannot be
revoked here."""

from __future__ import annotations

from starlette.responses import RedirectResponse, Response

from taskgate.api.span_bodies import MAX_ID_CHARS
from taskgate.errors import NotFoundError
from taskgate.ui.guard import Visit


async def key_list(visit: Visit) -> Response:
    return await _page(visit, new_key=None, status=200)


async def _page(visit: Visit, new_key: str | None, status: int) -> Response:
    keys = await visit.ctx.auth.list_keys(visit.project_id)
    notice = "Key revoked." if visit.request.query_params.get("revoked") else ""
    return visit.page("keys.html", status, title="API keys", keys=keys, new_key=new_key, notice=notice,
                      current_hash=visit.session.key_digest if visit.session else "")


async def create_key(visit: Visit) -> Response:
    """The new key is in this response only: it is not stored, and the page is not cached (no-store)."""
    _, key = await visit.ctx.auth.create_key(visit.project_id)
    return await _page(visit, new_key=key, status=201)


async def revoke_key(visit: Visit) -> Response:
    key_id = visit.request.path_params["key_id"]
    if len(key_id) > MAX_ID_CHARS or not await visit.ctx.auth.revoke_key(visit.project_id, key_id):
        raise NotFoundError("the project has no such key")
    return RedirectResponse("/ui/keys?revoked=1", status_code=303)


