"""Projects and API keys. Keys are stored as their sha256 only; the plaintext is shown once."""

from __future__ import annotations

import hashlib
import secrets

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from taskgate.ids import new_id
from taskgate.store.codec import utcnow
from taskgate.store.tables import api_keys, projects

KEY_PREFIX = "tg_"


def ensure_project(conn: Connection, name: str) -> str:
    """The project's id, creating it on first use. Racing creators meet on the unique name."""
    query = sa.select(projects.c.id).where(projects.c.name == name)
    existing = conn.execute(query).scalar_one_or_none()
    if existing is not None:
        return str(existing)
    conn.execute(projects.insert().values(id=new_id(), name=name, created_at=utcnow()))
    return str(conn.execute(query).scalar_one())


def new_key() -> str:
    """`tg_` and 32 url-safe characters (192 random bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(24)


def key_hash(key: str) -> str:
    """The stored form of a key: one unsalted SHA-256.

    Salting and slow hashes (bcrypt, argon2) exist to stop a dictionary attack on guessable
    secrets such as passwords. A minted key carries 192 random bits, so a leaked hash cannot be
    reversed by guessing, and an unsalted digest lets every request find its key by one indexed
    look-up instead of trying a slow hash against every stored key. Operator-chosen bootstrap keys
    (TASKGATE_API_KEYS) are never stored, only held in memory.
    """
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(conn: Connection, project_name: str) -> str:
    project_id = ensure_project(conn, project_name)
    key = new_key()
    conn.execute(api_keys.insert().values(id=new_id(), project_id=project_id, key_hash=key_hash(key),
                                          created_at=utcnow()))
    return key


def project_name(conn: Connection, project_id: str) -> str | None:
    found = conn.execute(sa.select(projects.c.name).where(projects.c.id == project_id)).scalar_one_or_none()
    return None if found is None else str(found)


def project_for_key_hash(conn: Connection, digest: str) -> str | None:
    query = sa.select(api_keys.c.project_id).where(api_keys.c.key_hash == digest, api_keys.c.revoked_at.is_(None))
    found = conn.execute(query).scalar_one_or_none()
    return None if found is None else str(found)
