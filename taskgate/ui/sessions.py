"""UI sessions: a signed, expiring cookie naming the project and the key it was opened with, and a
row in the store (`taskgate.store.ui_sessions`) that must still be there.

The signature lets a page refuse a forged or changed cookie before touching the store. The row makes
a sign-out and a revoked key hold on every process and replica: a sign-out deletes it, each page reads
it with its key's state (a revoked key's sessions open nothing), by its id, the sha256 of the cookie's nonce (a
leaked table names no live cookie). A copied cookie replayed after its sign-out finds no row. The
cookie carries the key's sha256, never the key.

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

COOKIE_NAME = "taskgate_session"
SESSION_SECONDS = 12 * 3600
MAX_COOKIE_CHARS = 1024  # a real one is about 250; a longer one is refused before any decoding


@dataclass(frozen=True, slots=True)
class Session:
    project_id: str
    key_digest: str
    expires: int  # unix seconds
    nonce: str

    @property
    def record_id(self) -> str:
        """The id of its row in the store."""
        return hashlib.sha256(self.nonce.encode()).hexdigest()


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

    def _mac(self, purpose: bytes, payload: bytes) -> str:
        return _b64(hmac.new(self._key, purpose + b"\x00" + payload, hashlib.sha256).digest())

    def open(self, project_id: str, key_digest: str, now: float | None = None) -> tuple[Session, str]:
        """A new session and its cookie value."""
        session = Session(project_id, key_digest, int((now or time.time()) + self.lifetime_s),
                          secrets.token_urlsafe(16))
        payload = orjson.dumps([session.project_id, session.key_digest, session.expires, session.nonce])
        return session, f"{_b64(payload)}.{self._mac(b'session', payload)}"

    def read(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session a cookie holds, or None when it is missing, forged, malformed or expired. Whether
        it is still open (not signed out, its key not revoked) is the store's to say."""
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
        if expires <= (now or time.time()):
            return None
        return Session(project_id, key_digest, expires, nonce)

    def csrf_token(self, session: Session) -> str:
        return self._mac(b"csrf", session.nonce.encode())

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf_token(session))
