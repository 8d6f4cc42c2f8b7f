"""Signed, expiring tokens for the URLs that upload a knowledge file's bytes or download them.

The URLs are Taskgate's own and carry no API key (like a cloud store's presigned URLs, whose shape
the v2 wire copies), so the token is what authorises them: an HMAC over what it allows (the action,
the project, the knowledge base, the file) and when it expires, under a key derived from the
server's secret key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

from taskgate.errors import UnauthorizedError

URL_SECONDS = 900  # how long an upload or download URL works
UPLOAD, DOWNLOAD = "upload", "download"


@dataclass(frozen=True, slots=True)
class Grant:
    action: str
    project_id: str
    base_id: str
    file_id: str


class FileUrlSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def token(self, grant: Grant, now: float | None = None) -> str:
        expires = int(now if now is not None else time.time()) + URL_SECONDS
        payload = f"{grant.project_id}:{expires}"
        return _b64(payload.encode()) + "." + _b64(self._mac(grant, payload))

    def project_of(self, token: str, action: str, base_id: str, file_id: str) -> str:
        """The project the token was given to, when it grants `action` on this file and has not expired;
        UnauthorizedError otherwise."""
        refused = UnauthorizedError("the file URL is invalid or has expired: ask for a new one")
        encoded, _, signature = token.partition(".")
        try:
            payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("ascii")
            given = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        except (ValueError, UnicodeDecodeError):
            raise refused from None
        project_id, _, expires = payload.partition(":")
        expected = self._mac(Grant(action, project_id, base_id, file_id), payload)
        if not hmac.compare_digest(given, expected) or not expires.isdigit() or int(expires) < time.time():
            raise refused
        return project_id

    def _mac(self, grant: Grant, payload: str) -> bytes:
        message = "\n".join((grant.action, grant.base_id, grant.file_id, payload)).encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")
