"""How a UI request reaches its page: the session checked, a POST's CSRF token checked, errors
shown as HTML pages, and the headers that keep a page from being framed or running injected code.

A page handler gets a `Visit` (the session, its CSRF token, the form of a POST) and answers a
Response; it never reads the cookie itself, so no page can forget to check it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, urlsplit

from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response

from taskgate.errors import BadRequestError, ForbiddenError, PayloadTooLargeError, TaskgateError
from taskgate.server.access_log import log_access
from taskgate.server.request_io import CLIENT_CLOSED_REQUEST, header_map, read_body
from taskgate.ui.render import Renderer
from taskgate.ui.sessions import COOKIE_NAME, Session, SessionSigner

if TYPE_CHECKING:
    from taskgate.context import AppContext

log = logging.getLogger("taskgate.ui")

MAX_FORM_BYTES = 256 * 1024  # a playground input or a comment; anything bigger is not typed into a page
MAX_FORM_FIELDS = 100
SIGN_IN_PATH = "/ui/sign-in"
# No inline script or style anywhere: what a span holds can never run, even if escaping failed.
SECURITY_HEADERS = {
    "content-security-policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


@dataclass(slots=True)
class Visit:
    """One request to a page, after the guard: whose it is and what it sent."""

    ctx: AppContext
    ui: UiContext
    request: Request
    session: Session | None
    csrf: str = ""
    form: dict[str, str] = field(default_factory=dict)

    @property
    def project_id(self) -> str:
        if self.session is None:  # only the sign-in pages take visits without a session
            raise RuntimeError("this page needs a session")
        return self.session.project_id

    def page(self, template: str, status: int = 200, **values: object) -> Response:
        return self.ui.renderer.page(template, self, status, **values)


@dataclass(slots=True)
class UiContext:
    signer: SessionSigner
    renderer: Renderer


Page = Callable[[Visit], Awaitable[Response]]


def with_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


async def current_session(ctx: AppContext, ui: UiContext, request: Request) -> Session | None:
    """The request's session if its cookie is genuine and unexpired, and the store still holds it open
    for its project (one read by primary key: not signed out, its key not revoked, on any process)."""
    session = ui.signer.read(request.cookies.get(COOKIE_NAME))
    if session is None:
        return None
    if await ctx.auth.ui_session_project(session.record_id, session.key_digest) != session.project_id:
        return None
    return session


async def read_form(request: Request) -> dict[str, str]:
    """A urlencoded form (its first value of each name), bounded in bytes and fields; a JSON body
    (the playground's) is read by its page, and gives no fields here."""
    content_type = header_map(request).get("content-type", "")
    if not content_type.startswith("application/x-www-form-urlencoded"):
        return {}
    body = await read_body(request, MAX_FORM_BYTES)
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS,
                          errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequestError(f"the form could not be read: {exc}") from exc
    form: dict[str, str] = {}
    for name, value in pairs:
        form.setdefault(name, value)
    return form


def guarded_page(ctx: AppContext, ui: UiContext, handler: Page, *, signed_in: bool = True) -> Callable[
        [Request], Awaitable[Response]]:
    """The endpoint of one page: a request without a session is sent to sign in (a GET, with the page
    to come back to) or refused (anything else); a POST without the session's CSRF token is a 403."""

    async def endpoint(request: Request) -> Response:
        start = time.perf_counter()
        visit = Visit(ctx, ui, request, None)
        try:
            visit.session = await current_session(ctx, ui, request)
            if visit.session is not None:
                visit.csrf = ui.signer.csrf_token(visit.session)
            if signed_in and visit.session is None:
                response = _to_sign_in(request)
            else:
                if request.method == "POST":
                    _check_origin(request)
                    visit.form = await read_form(request)
                    token = visit.form.get("csrf") or header_map(request).get("x-csrf-token")
                    if visit.session is not None and not ui.signer.csrf_ok(visit.session, token):
                        raise ForbiddenError("this form has expired or did not come from this site; reload the page "
                                        "and send it again")
                response = await handler(visit)
        except PayloadTooLargeError as exc:
            response = _error_page(visit, exc)
        except ClientDisconnect:
            response = Response(status_code=CLIENT_CLOSED_REQUEST)
        except TaskgateError as exc:
            response = _error_page(visit, exc)
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            response = _error_page(visit, TaskgateError("internal error; see the server log"))
        log_access(request.scope, response.status_code, start)
        return with_headers(response)

    return endpoint


def _check_origin(request: Request) -> None:
    """A POST sent by a page of another site is refused, even the sign-in form's (which has no session
    to bind a token to): browsers send `Origin` with every cross-site POST."""
    headers = header_map(request)
    origin = headers.get("origin")
    # The host alone is compared: behind a proxy that ends TLS, the page is https and the request http.
    if origin is None:
        return
    try:
        origin_host = urlsplit(origin).netloc
    except ValueError:  # "http://[" and the like
        origin_host = None
    if origin_host != headers.get("host", ""):
        raise ForbiddenError("this form was sent from another site")


def _to_sign_in(request: Request) -> Response:
    if request.method != "GET":
        return with_headers(Response("sign in first", status_code=401, media_type="text/plain"))
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{SIGN_IN_PATH}?next={quote(target[:2000], safe='')}", status_code=303)


def _error_page(visit: Visit, error: TaskgateError) -> Response:
    titles = {400: "Bad request", 401: "Not signed in", 403: "Forbidden", 404: "Not found", 413: "Too large",
              422: "Bad request"}
    return visit.ui.renderer.page("error.html", visit, error.status,
                                  title=titles.get(error.status, "Something went wrong"),
                                  detail=error.detail or "")
