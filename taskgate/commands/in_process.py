"""The server's own app run inside a command, on the data directory, when no server is named.

`taskgate call` with no `--url` builds the app `taskgate serve` runs (`create_app`), starts its
lifespan, and sends it the requests it would send a server, through `asgi_client.py`: the same
engine, providers (their keys from the environment, the bundled local model when none), recorder
and answers, and one client code path for both modes. Leaving the block shuts the app down, which
writes the call's span to the store.

The store must exist already (made by `taskgate serve` or `taskgate keys create`): a mistyped
`--data-dir` is reported, not turned silently into a new, empty store. The call's project is the
one the read commands would read (`local.py`): TASKGATE_API_KEY's, `--project`, or the only one.
The app accepts a random key made for this process alone, so nothing is written to the store to
let it in. A server may be running on the same data directory (SQLite's WAL lets both write): the
app here leaves that server's background work alone (`Settings.serves_store`), and its span journal
locks a slot of its own beside the server's (`telemetry/journal.py`), so neither touches the other's.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator

from taskgate.app import create_app
from taskgate.commands.asgi_client import AppTransport, lifespan
from taskgate.commands.local import project_of
from taskgate.commands.remote import RemoteServer
from taskgate.config import Settings

IN_PROCESS_URL = "http://taskgate.in-process"  # never resolved: the transport hands requests to the app


@contextlib.asynccontextmanager
async def in_process(settings: Settings, project: str | None) -> AsyncIterator[RemoteServer]:
    """A client of the app run here, on the data directory's store, for the command's project."""
    where, project_id = await project_of(settings, project)
    key = f"tg_session_{secrets.token_urlsafe(32)}"
    app = create_app(settings.model_copy(update={"serves_store": False, "session_keys": {key: project_id}}))
    async with lifespan(app, where):
        client = RemoteServer(IN_PROCESS_URL, key, transport=AppTransport(app), where=where)
        try:
            yield client
        finally:
            await client.close()
