"""Signing in with an API key and out again. The key itself is never kept: the session cookie holds
its sha256 and the project it opens (see `taskgate.ui.sessions`)."""

from __future__ import annotations

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
    project_id = None
    if key and len(key) <= MAX_KEY_CHARS:
        project_id = await visit.ctx.auth.project_for_digest(key_hash(key))
    if project_id is None:
        return visit.page("sign_in.html", 401, next=target,
                          error="That API key is not valid." if key else "Enter an API key.")
    _, cookie = visit.ui.signer.open(project_id, key_hash(key))
    response = RedirectResponse(target, status_code=303)
    secure = visit.request.url.scheme == "https"
    response.set_cookie(COOKIE_NAME, cookie, max_age=visit.ui.signer.lifetime_s, path="/ui", httponly=True,
                        samesite="strict", secure=secure)
    return response


async def sign_out(visit: Visit) -> Response:
    if visit.session is not None:
        visit.ui.signer.sign_out(visit.session)
    response = RedirectResponse("/ui/sign-in", status_code=303)
    response.delete_cookie(COOKIE_NAME, path="/ui", httponly=True, samesite="strict")
    return response


async def home(visit: Visit) -> Response:
    return RedirectResponse(HOME, status_code=303)
