"""Signing in with an API key and out again. The key itself is never kept: the session cookie holds
its sha256 and the project it opens, and the store a row of the session (see `taskgate.ui.sessions`)."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

from starlette.responses import RedirectResponse, Response

from taskgate.store.accounts import key_hash
from taskgate.ui.guard import Visit
from taskgate.ui.sessions import COOKIE_NAME

HOME = "/ui/traces"
MAX_KEY_CHARS = 500


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: only a path of this UI, never another site (`//evil`, `https:`)."""
    if not target or len(target) > 2000 or not target.startswith("/ui/") or target.startswith("//"):
        return HOME
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target:
        return HOME
    return target


async def sign_in_form(visit: Visit) -> Response:
    target = _safe_next(visit.request.query_params.get("next"))
    if visit.session is not None:
        return RedirectResponse(target, status_code=303)
    return visit.page("sign_in.html", next=target, error="")


async def sign_in(visit: Visit) -> Response:
    """The key is checked as the API checks it; a wrong one shows the form again, with a 401."""
    target = _safe_next(visit.form.get("next"))
    key = visit.form.get("key", "").strip()
    cookie = await _open_session(visit, key) if key and len(key) <= MAX_KEY_CHARS else None
    if cookie is None:
        return visit.page("sign_in.html", 401, next=target,
                          error="That API key is not valid." if key else "Enter an API key.")
    response = RedirectResponse(target, status_code=303)
    secure = visit.request.url.scheme == "https"
    response.set_cookie(COOKIE_NAME, cookie, max_age=visit.ui.signer.lifetime_s, path="/ui", httponly=True,
                        samesite="strict", secure=secure)
    return response


async def _open_session(visit: Visit, key: str) -> str | None:
    """A new session's cookie, or None when the key opens no project. The store has the last word: this
    process's key cache may not know yet that another process revoked the key."""
    digest = key_hash(key)
    project_id = await visit.ctx.auth.project_for_digest(digest)
    if project_id is None:
        return None
    session, cookie = visit.ui.signer.open(project_id, digest)
    opened = await visit.ctx.auth.open_ui_session(session.record_id, digest,
                                                  datetime.fromtimestamp(session.expires, UTC))
    return cookie if opened == project_id else None


async def sign_out(visit: Visit) -> Response:
    if visit.session is not None:  # its row deleted: the cookie opens nothing anywhere, even if it was copied
        await visit.ctx.auth.close_ui_session(visit.session.record_id)
    response = RedirectResponse("/ui/sign-in", status_code=303)
    response.delete_cookie(COOKIE_NAME, path="/ui", httponly=True, samesite="strict")
    return response


async def home(visit: Visit) -> Response:
    return RedirectResponse(HOME, status_code=303)
