"""API-key authentication: `Authorization: Bearer <key>`, or `x-api-key: <key>` as Anthropic's
clients send it. Keys are stored as sha256 hashes (why: `store.accounts.key_hash`); lookups are
cached in memory. The UI's sessions are not: each page asks the store (`store.ui_sessions`), so a
sign-out or a revoked key ends a session on every process at once."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from starlette.requests import Request

from taskgate.errors import UnauthorizedError
from taskgate.lru import BoundedLRU
from taskgate.server.request_io import header_map
from taskgate.store.accounts import key_hash
from taskgate.store.base import ApiKeyRecord, Store

DEFAULT_PROJECT = "default"
SEEN_MAX_ENTRIES = 10_000
SEEN_MAX_BYTES = 4 * 1024 * 1024


class Authenticator:
    """Maps a request's key to its project id, asking the store only on a cache miss."""

    def __init__(self, store: Store) -> None:
        self._store = store
        # Key hash -> project id of the keys given at start (never stored, so never revoked).
        self._configured: dict[str, str] = {}
        self._known: dict[str, str] = {}  # key hash -> project id of stored keys seen here
        # Presented key -> project id, to skip hashing on every request. Bounded by count and bytes: a
        # valid key can be presented in endless forms (surrounding spaces), each as long as a header.
        self._seen: BoundedLRU[str, str] = BoundedLRU(SEEN_MAX_ENTRIES, SEEN_MAX_BYTES, _seen_size)

    async def bootstrap(self, keys: list[str], session_keys: Mapping[str, str] | None = None) -> None:
        """Keys from TASKGATE_API_KEYS all belong to the `default` project; `session_keys` (key ->
        project id) are known to this process only (`Settings.session_keys`)."""
        for key, project_id in (session_keys or {}).items():
            self._configured[key_hash(key)] = project_id
        if not keys:
            return
        project_id = await self._store.ensure_project(DEFAULT_PROJECT)
        for key in keys:
            self._configured[key_hash(key)] = project_id

    async def project_for(self, request: Request) -> str:
        headers = header_map(request)
        scheme, _, key = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            key = headers.get("x-api-key", "")
            if not key.strip():
                raise UnauthorizedError("missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'")
        seen = self._seen.get(key)
        if seen is not None:
            return seen
        project_id = await self.project_for_digest(key_hash(key.strip()))
        if project_id is None:
            raise UnauthorizedError("invalid API key")
        self._seen.put(key, project_id)
        return project_id

    async def project_for_digest(self, digest: str) -> str | None:
        """The project of the key with this sha256, or None when no such key exists (any more)."""
        project_id = self._configured.get(digest) or self._known.get(digest)
        if project_id is None:
            project_id = await self._store.project_for_key_hash(digest)
            if project_id is not None:
                self._known[digest] = project_id
        return project_id

    # ---- UI sessions: read from the store on every page, never cached (see the module's docstring)

    async def open_ui_session(self, session_id: str, digest: str, expires_at: datetime) -> str | None:
        """Record a session of the key with this sha256; its project, or None when the store no longer
        has the key (revoked by another process, whatever this one's cache says)."""
        return await self._store.open_ui_session(session_id, digest, expires_at, self._configured.get(digest))

    async def ui_session_project(self, session_id: str, digest: str) -> str | None:
        """The project of a live session, or None when it was signed out, expired, or its key revoked.
        A session of a configured key lives while this process is still configured with the key."""
        owner = await self._store.ui_session_owner(session_id)
        if owner is None:
            return None
        project_id, by_configured_key = owner
        if by_configured_key and self._configured.get(digest) != project_id:
            return None
        return project_id

    async def close_ui_session(self, session_id: str) -> None:
        await self._store.close_ui_session(session_id)

    # ---- the project's stored keys (the UI's keys page): through here, so the caches stay true

    async def list_keys(self, project_id: str) -> list[ApiKeyRecord]:
        return await self._store.list_api_keys(project_id)

    async def create_key(self, project_id: str) -> tuple[ApiKeyRecord, str]:
        return await self._store.add_api_key(project_id)

    async def revoke_key(self, project_id: str, key_id: str) -> bool:
        """Delete the key (and, by the foreign key, its UI sessions, for every process) and forget it here
        at once. The API keys cached by other processes are forgotten when they restart."""
        digest = await self._store.revoke_api_key(project_id, key_id)
        if digest is None:
            return False
        self._known.pop(digest, None)
        self._seen.drain()  # the presented forms of the key are not known: forget them all
        return True

    async def project_name(self, project_id: str) -> str:
        return await self._store.project_name(project_id) or project_id


def _seen_size(key: str, project_id: str) -> int:
    return len(key) + len(project_id)
