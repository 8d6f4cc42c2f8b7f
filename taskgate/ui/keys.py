"""The project's API keys, through the key service the admin API uses (`engine.quotas.keys`): listed
with their name, rights and limits; a new one is shown once, on the page that made it; revoking marks
it revoked, and every process refuses it within the authenticator's refresh.

Only a session opened with an admin key sees or changes them, as with `/v2/admin/keys`: a limited key
must not make itself an unlimited one. Keys from TASKGATE_API_KEYS are configuration, not stored, so
they are not listed and cannot be revoked here."""

from __future__ import annotations

from starlette.responses import RedirectResponse, Response

from taskgate.api.span_bodies import MAX_ID_CHARS
from taskgate.errors import ForbiddenError, NotFoundError
from taskgate.ui.guard import Visit


async def key_list(visit: Visit) -> Response:
    await _require_admin(visit)
    return await _page(visit, new_key=None, status=200)


async def _page(visit: Visit, new_key: str | None, status: int) -> Response:
    keys = await visit.ctx.keys.list(visit.project_id, include_revoked=False)
    notice = "Key revoked." if visit.request.query_params.get("revoked") else ""
    return visit.page("keys.html", status, title="API keys", keys=keys, new_key=new_key, notice=notice)


async def create_key(visit: Visit) -> Response:
    """The new key is in this response only: it is not stored, and the page is not cached (no-store)."""
    await _require_admin(visit)
    _, key = await visit.ctx.keys.create(visit.project_id, {})
    return await _page(visit, new_key=key, status=201)


async def revoke_key(visit: Visit) -> Response:
    await _require_admin(visit)
    key_id = visit.request.path_params["key_id"]
    if len(key_id) > MAX_ID_CHARS:
        raise NotFoundError("the project has no such key")
    await visit.ctx.keys.revoke(visit.project_id, key_id)
    return RedirectResponse("/ui/keys?revoked=1", status_code=303)


async def _require_admin(visit: Visit) -> None:
    session = visit.session
    caller = await visit.ctx.auth.caller_for_digest(session.key_digest) if session is not None else None
    if caller is None or not caller.admin:
        raise ForbiddenError("only a session opened with an admin key can manage the project's keys")
