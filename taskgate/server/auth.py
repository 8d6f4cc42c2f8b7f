"""API-key authentication: `Authorization: Bearer <key>`, or `x-api-key: <key>` as Anthropic's
clients send it. Keys are stored as sha256 hashes (why: `store.accounts.key_hash`).

A key is looked up with its limits and its project's, and the answer is kept for `REFRESH_S`: a key
revoked or limited by the CLI takes effect here within that time, and at once when it was changed
through an admin API: this replica's (`key_changed`), or, with Redis, another replica's, whose change
notice (`replicas.notices`) makes this one forget what it read. The request's caller is
made current (`engine.quotas.caller`) for the limit checks of its model calls.

The UI's sessions are not cached: each page reads its session's row with its key's state from the
store (`store.ui_sessions`), so a sign-out or a revoked key ends a session on every process at once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime

from starlette.requests import Request

from taskgate.engine.quotas.caller import Caller, admit_caller
from taskgate.engine.quotas.rules import NO_QUOTA, quota_of
from taskgate.errors import UnauthorizedError
from taskgate.lru import BoundedLRU
from taskgate.replicas.notices import ChangeNotices
from taskgate.server.request_io import header_map
from taskgate.store.accounts import key_hash
from taskgate.store.base import Store

DEFAULT_PROJECT = "default"
SEEN_MAX_ENTRIES = 10_000
SEEN_MAX_BYTES = 4 * 1024 * 1024
REFRESH_S = 5.0


class Authenticator:
    """Maps a request's key to its caller (project, rights, limits), asking the store only on a
    cache miss or once the cached answer is `REFRESH_S` old."""

    def __init__(self, store: Store, notices: ChangeNotices | None = None) -> None:
        self._store = store
        self._notices = notices or ChangeNotices()
        self._notices.on("key", self._changed_elsewhere)
        self._notices.on_reset(self.forget)
        self._bootstrap: set[str] = set()  # hashes of TASKGATE_API_KEYS
        self._default_project = ""
        self._session: dict[str, str] = {}  # hashes of this process's own keys -> project id
        self._callers: dict[str, tuple[float, Caller]] = {}  # key hash -> (when read, caller)
        # Presented key -> its hash, to skip hashing on every request. Bounded by count and bytes: a
        # valid key can be presented in endless forms (surrounding spaces), each as long as a header.
        self._seen: BoundedLRU[str, str] = BoundedLRU(SEEN_MAX_ENTRIES, SEEN_MAX_BYTES, _seen_size)

    async def bootstrap(self, keys: list[str], session_keys: Mapping[str, str] | None = None) -> None:
        """Keys from TASKGATE_API_KEYS all belong to the `default` project, and are its operators;
        `session_keys` (key -> project id) are known to this process only (`Settings.session_keys`:
        the app a CLI command runs in process), with their project's limits and no rights over keys."""
        self._session = {key_hash(key): project_id for key, project_id in (session_keys or {}).items()}
        if not keys:
            return
        self._default_project = await self._store.ensure_project(DEFAULT_PROJECT)
        self._bootstrap = {key_hash(key) for key in keys}

    async def project_for(self, request: Request) -> str:
        return (await self.caller_for(request)).project_id

    async def caller_for(self, request: Request) -> Caller:
        """The request's caller, made current for its model calls; 401 for a missing, unknown or
        revoked key."""
        headers = header_map(request)
        scheme, _, key = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            key = headers.get("x-api-key", "")
            if not key.strip():
                raise UnauthorizedError("missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'")
        digest = self._seen.get(key)
        seen = digest is not None
        if digest is None:
            digest = key_hash(key.strip())
        # A key read within REFRESH_S (nearly every request) is answered without a coroutine.
        caller = self._held(digest)
        if caller is None:
            caller = await self._caller(digest)
        if not seen:
            self._seen.put(key, digest)
        admit_caller(caller)
        return caller

    async def caller_for_digest(self, digest: str) -> Caller | None:
        """The caller of the key with this sha256 (a UI session holds it), or None when no such key
        exists any more (revoked or deleted)."""
        try:
            return await self._caller(digest)
        except UnauthorizedError:
            return None

    async def project_for_digest(self, digest: str) -> str | None:
        caller = await self.caller_for_digest(digest)
        return caller.project_id if caller is not None else None

    # ---- UI sessions: read from the store on every page, never cached (see the module's docstring)

    async def open_ui_session(self, session_id: str, digest: str, expires_at: datetime) -> str | None:
        """Record a session of the key with this sha256; its project, or None when the store has no live
        key of it (revoked by another process, whatever this one's cache says)."""
        return await self._store.open_ui_session(session_id, digest, expires_at, self._configured_project(digest))

    async def ui_session_project(self, session_id: str, digest: str) -> str | None:
        """The project of a live session, or None when it was signed out, expired, or its key revoked.
        A session of a configured key lives while this process is still configured with the key."""
        owner = await self._store.ui_session_owner(session_id)
        if owner is None:
            return None
        project_id, by_configured_key = owner
        if by_configured_key and self._configured_project(digest) != project_id:
            return None
        return project_id

    async def close_ui_session(self, session_id: str) -> None:
        await self._store.close_ui_session(session_id)

    def _configured_project(self, digest: str) -> str | None:
        """The project of a key this process was given (TASKGATE_API_KEYS, or its own), never stored."""
        if digest in self._bootstrap:
            return self._default_project
        return self._session.get(digest)

    def forget(self) -> None:
        """Read every caller again at its next request."""
        self._callers.clear()

    def key_changed(self) -> None:
        """A key or project changed here: forget what was read, here and on every other replica."""
        self.forget()
        self._notices.announce_soon("key", "", "*")

    async def _changed_elsewhere(self, _project_id: str, _subject: str) -> None:
        self.forget()

    def _held(self, digest: str) -> Caller | None:
        """The caller read for `digest` less than REFRESH_S ago, if any."""
        held = self._callers.get(digest)
        return held[1] if held is not None and time.monotonic() - held[0] <= REFRESH_S else None

    async def _caller(self, digest: str) -> Caller:
        held = self._held(digest)
        if held is not None:
            return held
        now = time.monotonic()
        caller = await self._load(digest)
        self._callers[digest] = (now, caller)
        return caller

    async def _load(self, digest: str) -> Caller:
        if digest in self._bootstrap:
            project_quota = quota_of(await self._store.keys.project_limits(self._default_project))
            return Caller(None, self._default_project, admin=True, operator=True, key_quota=NO_QUOTA,
                          project_quota=project_quota)
        session_project = self._session.get(digest)
        if session_project is not None:
            project_quota = quota_of(await self._store.keys.project_limits(session_project))
            return Caller(None, session_project, admin=False, operator=False, key_quota=NO_QUOTA,
                          project_quota=project_quota)
        grant = await self._store.keys.grant(digest)
        if grant is None:
            self._callers.pop(digest, None)
            raise UnauthorizedError("invalid API key")
        record, project_limits = grant
        return Caller(record.id, record.project_id, admin=record.admin, operator=False,
                      key_quota=quota_of(record.limits), project_quota=quota_of(project_limits))

    async def project_name(self, project_id: str) -> str:
        return await self._store.project_name(project_id) or project_id


def _seen_size(key: str, digest: str) -> int:
    return len(key) + len(digest)
