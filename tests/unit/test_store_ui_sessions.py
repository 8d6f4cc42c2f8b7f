"""UI sessions as store rows, on a SQLite file and on Postgres: opened, read, closed, pruned when
expired, and ended with their key, as two authenticators (two processes) sharing one store see them."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from taskgate.server.auth import Authenticator
from taskgate.store import SqlStore
from taskgate.store.accounts import key_hash
from taskgate.store.tables import api_keys, ui_sessions

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _session_id() -> str:
    return hashlib.sha256(uuid.uuid4().bytes).hexdigest()


def _later(seconds: float = 3600) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


async def _key_id(store: SqlStore, project_id: str, digest: str) -> str:
    with store.database.engine.connect() as conn:
        return str(conn.execute(sa.select(api_keys.c.id).where(api_keys.c.key_hash == digest,
                                                               api_keys.c.project_id == project_id)).scalar_one())


async def _stored_key(store: SqlStore) -> tuple[str, str, str]:
    """(key, its digest, its project id) of a new stored key in a project of its own."""
    project_id = await store.ensure_project(f"ui-sessions-{uuid.uuid4().hex}")
    _, key = await store.keys.create(project_id, None, False, {})
    return key, key_hash(key), project_id


def _rows(store: SqlStore, session_id: str) -> int:
    with store.database.engine.connect() as conn:
        return len(conn.execute(sa.select(ui_sessions.c.id).where(ui_sessions.c.id == session_id)).all())


async def test_a_session_is_open_until_closed(store: SqlStore) -> None:
    _, digest, project_id = await _stored_key(store)
    session_id = _session_id()
    assert await store.ui_session_owner(session_id) is None
    assert await store.open_ui_session(session_id, digest, _later(), None) == project_id
    assert await store.ui_session_owner(session_id) == (project_id, False)
    await store.close_ui_session(session_id)
    assert await store.ui_session_owner(session_id) is None
    await store.close_ui_session(session_id)  # twice (a double-clicked sign-out) is no error


async def test_an_unknown_key_opens_nothing_and_a_configured_one_is_recorded_without_a_key_row(
        store: SqlStore) -> None:
    project_id = await store.ensure_project(f"configured-{uuid.uuid4().hex}")
    unknown = _session_id()
    assert await store.open_ui_session(unknown, key_hash("tg_never-issued"), _later(), None) is None
    assert _rows(store, unknown) == 0
    configured = _session_id()
    assert await store.open_ui_session(configured, key_hash("configured"), _later(), project_id) == project_id
    assert await store.ui_session_owner(configured) == (project_id, True)


async def test_a_stored_key_s_own_project_wins_over_a_configured_guess(store: SqlStore) -> None:
    _, digest, project_id = await _stored_key(store)
    other = await store.ensure_project(f"other-{uuid.uuid4().hex}")
    session_id = _session_id()
    assert await store.open_ui_session(session_id, digest, _later(), other) == project_id


async def test_an_expired_session_is_refused_and_pruned_by_the_next_sign_in(store: SqlStore) -> None:
    _, digest, project_id = await _stored_key(store)
    expired = _session_id()
    assert await store.open_ui_session(expired, digest, _later(-1), None) == project_id
    assert await store.ui_session_owner(expired) is None
    assert _rows(store, expired) == 1
    assert await store.open_ui_session(_session_id(), digest, _later(), None) == project_id
    assert _rows(store, expired) == 0


async def test_revoking_or_deleting_the_key_ends_its_sessions_and_no_other(store: SqlStore) -> None:
    _, digest, project_id = await _stored_key(store)
    _, other_digest, _ = await _stored_key(store)
    doomed, kept = _session_id(), _session_id()
    await store.open_ui_session(doomed, digest, _later(), None)
    await store.open_ui_session(kept, other_digest, _later(), None)
    assert await store.keys.revoke(project_id, await _key_id(store, project_id, digest)) is not None
    assert await store.ui_session_owner(doomed) is None
    assert await store.ui_session_owner(kept) is not None
    assert await store.open_ui_session(_session_id(), digest, _later(), None) is None
    with store.database.engine.begin() as conn:  # a key deleted outright takes its rows with it
        conn.execute(api_keys.delete().where(api_keys.c.key_hash == digest))
    assert _rows(store, doomed) == 0


async def test_a_sign_in_that_raced_a_revoke_opens_nothing(store: SqlStore) -> None:
    """The row written just before the revoke committed is refused by the page's read, which joins the key."""
    _, digest, project_id = await _stored_key(store)
    session_id = _session_id()
    assert await store.open_ui_session(session_id, digest, _later(), None) == project_id
    with store.database.engine.begin() as conn:  # the revoke, as another process commits it
        conn.execute(api_keys.update().where(api_keys.c.key_hash == digest).values(revoked_at=datetime.now(UTC)))
    assert _rows(store, session_id) == 1 and await store.ui_session_owner(session_id) is None


async def test_a_taken_id_or_a_vanished_key_refuses_the_sign_in(store: SqlStore) -> None:
    """What guards a sign-in racing a revoke: the database refuses a row naming a deleted key (the
    foreign key, on both backends), and the store answers None rather than raising."""
    _, digest, project_id = await _stored_key(store)
    session_id = _session_id()
    assert await store.open_ui_session(session_id, digest, _later(), None) == project_id
    assert await store.open_ui_session(session_id, digest, _later(), None) is None  # the id is taken
    with pytest.raises(IntegrityError):
        await store.database.write(lambda conn: conn.execute(ui_sessions.insert().values(
            id=_session_id(), project_id=project_id, api_key_id=str(uuid.uuid4()), expires_at=_later())))


async def test_two_processes_see_each_other_s_sign_outs_and_revokes(store: SqlStore) -> None:
    """Two authenticators on one store, as two `taskgate serve` processes: B's key cache still holds a
    key A revoked, yet B neither keeps a session of it nor opens a new one."""
    key, digest, project_id = await _stored_key(store)
    a, b = Authenticator(store), Authenticator(store)
    assert await b.project_for_digest(digest) == project_id  # now cached in B
    signed_out, of_revoked = _session_id(), _session_id()
    assert await a.open_ui_session(signed_out, digest, _later()) == project_id
    assert await b.open_ui_session(of_revoked, digest, _later()) == project_id
    assert await b.ui_session_project(signed_out, digest) == project_id
    await a.close_ui_session(signed_out)
    assert await b.ui_session_project(signed_out, digest) is None
    assert await store.keys.revoke(project_id, await _key_id(store, project_id, digest)) is not None  # by A
    assert await b.ui_session_project(of_revoked, digest) is None
    assert await b.project_for_digest(digest) == project_id  # B's caller cache holds it for REFRESH_S...
    assert await b.open_ui_session(_session_id(), digest, _later()) is None  # ...but no session opens
    assert key.startswith("tg_")


async def test_a_configured_key_s_session_ends_where_the_key_is_no_longer_configured(store: SqlStore) -> None:
    configured = f"configured-{uuid.uuid4().hex}"
    a = Authenticator(store)
    await a.bootstrap([configured])
    digest = key_hash(configured)
    project_id = await a.project_for_digest(digest)
    assert project_id is not None
    session_id = _session_id()
    assert await a.open_ui_session(session_id, digest, _later()) == project_id
    assert await a.ui_session_project(session_id, digest) == project_id
    restarted_without_it = Authenticator(store)
    await restarted_without_it.bootstrap([f"another-{uuid.uuid4().hex}"])
    assert await restarted_without_it.ui_session_project(session_id, digest) is None
    # a session row of a configured key cannot be borrowed by a cookie naming another key
    assert await a.ui_session_project(session_id, key_hash("some other key")) is None
