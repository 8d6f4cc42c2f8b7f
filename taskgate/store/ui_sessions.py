"""UI sessions as rows: the store, not a process's memory, says whether a session cookie still opens pages.

A row is made at sign-in, read by its primary key on every page, and deleted at sign-out. It names the
stored key it was opened with, and the foreign key's ON DELETE CASCADE deletes it with that key: a
revoked key's sessions end in the revoking transaction, for every process that reads the store. A row
made while the key is being revoked either waits for the revoke and is deleted with the key (Postgres
locks the key's row for the foreign-key check) or fails that check, and the sign-in is refused.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from taskgate.store.tables import api_keys, ui_sessions


def open_session(conn: Connection, session_id: str, key_digest: str, expires_at: datetime,
                 configured_project_id: str | None, now: datetime) -> str | None:
    """Record a session of the key with this sha256; the project it opens, or None when the key is
    neither stored nor configured. The sessions that have expired are pruned on the way."""
    conn.execute(ui_sessions.delete().where(ui_sessions.c.expires_at <= now))
    stored = conn.execute(sa.select(api_keys.c.id, api_keys.c.project_id)
                          .where(api_keys.c.key_hash == key_digest)).first()
    if stored is not None:
        key_id, project_id = str(stored.id), str(stored.project_id)
    elif configured_project_id is not None:
        key_id, project_id = None, configured_project_id
    else:
        return None
    conn.execute(ui_sessions.insert().values(id=session_id, project_id=project_id, api_key_id=key_id,
                                             expires_at=expires_at))
    return project_id


def session_owner(conn: Connection, session_id: str, now: datetime) -> tuple[str, bool] | None:
    """(project id, whether it was opened with a configured key) of a live session, or None."""
    row = conn.execute(sa.select(ui_sessions.c.project_id, ui_sessions.c.api_key_id)
                       .where(ui_sessions.c.id == session_id, ui_sessions.c.expires_at > now)).first()
    return None if row is None else (str(row.project_id), row.api_key_id is None)


def close_session(conn: Connection, session_id: str) -> None:
    conn.execute(ui_sessions.delete().where(ui_sessions.c.id == session_id))
