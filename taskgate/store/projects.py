"""The projects a store holds, by name: how `taskgate` commands reading a data directory find theirs."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from taskgate.store.tables import projects


def project_ids(conn: Connection) -> dict[str, str]:
    """Every project's id by its name, in name order."""
    return {str(name): str(project_id) for name, project_id in
            conn.execute(sa.select(projects.c.name, projects.c.id).order_by(projects.c.name))}
