"""API-key authentication: `Authorization: Bearer <key>`, or `x-api-key: <key>` as Anthropic's
clients send it. Keys are stored as sha256 hashes (why: `store.accounts.key_hash`); lookups are
cached in memory until the key changes: `key_changed` drops it here and announces it to the other
replicas (`replicas.notices`), which drop it at once; when notices may have been missed, every
remembered stored key is dropped."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request

from taskgate.errors import UnauthorizedError
from taskgate.lru import BoundedLRU
from taskgate.replicas.notices import ChangeNotices
from taskgate.server.request_io import header_map
from taskgate.store.accounts import key_hash
from taskgate.store.base import ApiKeyRecord, Store

DEFAULT_PROJECT = "default"
SEEN_MAX_ENTRIES = 10_000
SEEN_MAX_BYTES = 4 * 1024 * 1024


class Authenticator:
    """Maps a request's key to its project id, asking the store only on a cache miss."""

    def __init__(self, store: Store, notices: ChangeNotices | None = None) -> None:
        self._store = store
        self._notices = notices or ChangeNotices()
        self._notices.on("key", self._changed_elsewhere)
        self._notices.on_reset(self._forget_stored)
        # key hash -> project id of the keys never in the store (TASKGATE_API_KEYS, session keys): never forgotten
        self._bootstrap: dict[str, str] = {}
        self._known: dict[str, str] = {}  # key hash -> project id
        # Presented key -> project id, to skip hashing on every request. Bounded by count and bytes: a
        # valid key can be presented in endless forms (surrounding spaces), each as long as a header.
        self._seen: BoundedLRU[str, str] = BoundedLRU(SEEN_MAX_ENTRIES, SEEN_MAX_BYTES, _seen_size)

    async def bootstrap(self, keys: list[str], session_keys: Mapping[str, str] | None = None) -> None:
        """Keys from TASKGATE_API_KEYS all belong to the `default` project; `session_keys` (key ->
        project id) are known to this process only (`Settings.session_keys`)."""
        for key, project_id in (session_keys or {}).items():
            self._bootstrap[key_hash(key)] = project_id
        if keys:
            project_id = await self._store.ensure_project(DEFAULT_PROJECT)
            for key in keys:
                self._bootstrap[key_hash(key)] = project_id
        self._known.update(self._bootstrap)

    async def key_changed(self, project_id: str, digest: str) -> None:
        """A stored key (by its hash) was changed or revoked: ask the store about it on its next use,
        here and on every other replica."""
        self._changed_locally(digest)
        await self._notices.announce("key", project_id, digest)

    async def _changed_elsewhere(self, _project_id: str, digest: str) -> None:
        self._changed_locally(digest)

    def _changed_locally(self, digest: str) -> None:
        if digest not in self._bootstrap:
            self._known.pop(digest, None)
        self._seen.drain()  # presented forms of that key are not indexed by hash: drop them all

    def _forget_stored(self) -> None:
        self._known = dict(self._bootstrap)
        self._seen.drain()

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
        project_id = self._known.get(digest)
        if project_id is None:
            project_id = await self._store.project_for_key_hash(digest)
            if project_id is not None:
                self._known[digest] = project_id
        return project_id

    # ---- the project's stored keys (the UI's keys page): through here, so the caches stay true

    async def list_keys(self, project_id: str) -> list[ApiKeyRecord]:
        return await self._store.list_api_keys(project_id)

    async def create_key(self, project_id: str) -> tuple[ApiKeyRecord, str]:
        return await self._store.add_api_key(project_id)

    async def revoke_key(self, project_id: str, key_id: str) -> bool:
        """Delete the key and forget it here at once (other replicas forget it when they restart)."""
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
