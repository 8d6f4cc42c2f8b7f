"""UI sessions as rows: the store, not a process's memory, says whether a session cookie still opens pages.

A row is made at sign-in, read by its primary key on every page, and deleted at sign-out. It names the
stored key it was opened with, and the read joins that key's row: once the key is revoked (its
`revoked_at` set, by any process, the admin API or the CLI) or deleted (ON DELETE CASCADE), the session
opens nothing, from the revoking transaction on. A sign-in racing a revoke cannot outlive it either:
its row is refused by the same join. Sign-ins prune the rows whose cookies have expired.
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
                          .where(api_keys.c.key_hash == key_digest, api_keys.c.revoked_at.is_(None))).first()
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
    """(project id, whether it was opened with a configured key) of a live session whose stored key
    is not revoked, or None. One statement: the session by primary key, its key by primary key."""
    query = (sa.select(ui_sessions.c.project_id, ui_sessions.c.api_key_id)
             .select_from(ui_sessions.outerjoin(api_keys, api_keys.c.id == ui_sessions.c.api_key_id))
             .where(ui_sessions.c.id == session_id, ui_sessions.c.expires_at > now,
                    sa.or_(ui_sessions.c.api_key_id.is_(None),
                           sa.and_(api_keys.c.id.is_not(None), api_keys.c.revoked_at.is_(None)))))
    row = conn.execute(query).first()
    return None if row is None else (str(row.project_id), row.api_key_id is None)


def close_session(conn: Connection, session_id: str) -> None:
    conn.execute(ui_sessions.delete().where(ui_sessions.c.id == session_id))
