"""UI sessions: a signed, expiring cookie naming the project and the key it was opened with.

Signed rather than stored: every replica can check one with the data directory's secret key (or
TASKGATE_SECRET_KEY), and no table grows with sign-ins. The cookie carries the key's sha256 (never
the key), so a session dies with its key: each request asks the authenticator whether that hash
still names the project. A sign-out is remembered in memory until the session would have expired
anyway, so the signed-out cookie is refused by this process even if it was copied first.

CSRF: every POST carries a token that is an HMAC of the session's nonce, in a form field or the
`x-csrf-token` header. A page of another site can neither read it nor make it, and the cookie is
SameSite=Strict besides.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import orjson

from taskgate.lru import BoundedLRU

COOKIE_NAME = "taskgate_session"
SESSION_SECONDS = 12 * 3600
MAX_COOKIE_CHARS = 1024  # a real one is about 250; a longer one is refused before any decoding
_SIGNED_OUT_MAX = 100_000
_SIGNED_OUT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Session:
    project_id: str
    key_digest: str
    expires: int  # unix seconds
    nonce: str


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Makes and checks session cookies and their CSRF tokens with one secret."""

    def __init__(self, secret: str, lifetime_s: int = SESSION_SECONDS) -> None:
        # A key of its own, derived from the data directory's secret: a cookie signature is then no
        # oracle for anything else that secret protects.
        self._key = hashlib.sha256(b"taskgate-ui-session\x00" + secret.encode()).digest()
        self.lifetime_s = lifetime_s
        self._signed_out: BoundedLRU[str, int] = BoundedLRU(_SIGNED_OUT_MAX, _SIGNED_OUT_BYTES, lambda k, v: len(k) + 8)

    def _mac(self, purpose: bytes, payload: bytes) -> str:
        return _b64(hmac.new(self._key, purpose + b"\x00" + payload, hashlib.sha256).digest())

    def open(self, project_id: str, key_digest: str, now: float | None = None) -> tuple[Session, str]:
        """A new session and its cookie value."""
        session = Session(project_id, key_digest, int((now or time.time()) + self.lifetime_s),
                          secrets.token_urlsafe(16))
        payload = orjson.dumps([session.project_id, session.key_digest, session.expires, session.nonce])
        return session, f"{_b64(payload)}.{self._mac(b'session', payload)}"

    def read(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session a cookie holds, or None when it is missing, forged, malformed, expired or signed out."""
        if not cookie or len(cookie) > MAX_COOKIE_CHARS or cookie.count(".") != 1:
            return None
        encoded, signature = cookie.split(".")
        try:
            payload = _unb64(encoded)
        except ValueError:
            return None
        if not hmac.compare_digest(signature, self._mac(b"session", payload)):
            return None
        try:
            project_id, key_digest, expires, nonce = orjson.loads(payload)
        except (orjson.JSONDecodeError, ValueError, TypeError):
            return None
        if not (isinstance(project_id, str) and isinstance(key_digest, str) and isinstance(expires, int)
                and isinstance(nonce, str)):
            return None
        if expires <= (now or time.time()) or self._signed_out.get(nonce) is not None:
            return None
        return Session(project_id, key_digest, expires, nonce)

    def sign_out(self, session: Session) -> None:
        self._signed_out.put(session.nonce, session.expires)

    def csrf_token(self, session: Session) -> str:
        return self._mac(b"csrf", session.nonce.encode())

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf_token(session))
