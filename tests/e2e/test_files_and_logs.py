"""What Taskgate leaves on disk and in its logs: private files, and no user content below debug level."""

from __future__ import annotations

import json
import logging
import os
import stat
import sys
import time

import pytest
import sqlalchemy as sa

from taskgate.server.access_log import JSONFormatter
from taskgate.store.database import create_engine, normalize_url
from tests.fakes.common import Behaviour
from tests.harness import ServerProcess
from tests.http_client import post

MARKER = "SECRET-MARKER-7f3a"


def mode(path: os.PathLike[str]) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_data_directory_and_database_files_are_private(fake_provider, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)  # an existing, open directory is narrowed on start
    old_umask = os.umask(0o022)
    try:
        with ServerProcess(fake_provider, data_dir) as server:
            assert post(f"{server.url}/v2/call", {"name": "perm", "input": "x"}).status == 200
            time.sleep(0.3)
            assert mode(data_dir) == 0o700
            database = data_dir / "taskgate.db"
            for path in (database, data_dir / "taskgate.db-wal", data_dir / "taskgate.db-shm"):
                assert path.exists(), path
                assert mode(path) == 0o600, (path, oct(mode(path)))
    finally:
        os.umask(old_umask)


def test_an_existing_world_readable_database_is_narrowed(fake_provider, tmp_path):
    data_dir = tmp_path / "old"
    data_dir.mkdir()
    database = data_dir / "taskgate.db"
    database.touch(mode=0o644)
    os.chmod(database, 0o644)
    with ServerProcess(fake_provider, data_dir):
        assert mode(database) == 0o600


def test_keys_create_makes_a_private_store(tmp_path):
    from typer.testing import CliRunner

    from taskgate.cli import app

    data_dir = tmp_path / "cli"
    result = CliRunner().invoke(app, ["keys", "create", "--project", "p", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert mode(data_dir) == 0o700
    assert mode(data_dir / "taskgate.db") == 0o600


def test_sql_errors_do_not_carry_their_parameters(tmp_path):
    engine = create_engine(normalize_url(f"sqlite:///{tmp_path / 'p.db'}"))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE)")
            conn.execute(sa.text("INSERT INTO t (v) VALUES (:v)"), {"v": MARKER})
        with pytest.raises(sa.exc.IntegrityError) as caught, engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO t (v) VALUES (:v)"), {"v": MARKER})
        assert MARKER not in str(caught.value)
        assert "hidden" in str(caught.value)
    finally:
        engine.dispose()


def _formatted(level: int) -> str:
    formatter = JSONFormatter()
    logger = logging.getLogger("taskgate")
    before = logger.level
    logger.setLevel(level)
    try:
        try:
            try:
                raise KeyError(f"input was {MARKER}")
            except KeyError as inner:
                raise ValueError(f"while handling {MARKER}") from inner
        except ValueError:
            record = logging.LogRecord("taskgate.x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
        return formatter.format(record)
    finally:
        logger.setLevel(before)


def test_logged_exceptions_keep_type_and_stack_but_not_their_message():
    line = json.loads(_formatted(logging.INFO))
    assert MARKER not in line["error"]
    assert "ValueError" in line["error"] and "KeyError" in line["error"]
    assert "test_files_and_logs.py" in line["error"]  # the stack is still there


def test_debug_logging_shows_exception_messages_whole():
    assert MARKER in json.loads(_formatted(logging.DEBUG))["error"]


def test_content_free_messages_are_kept():
    formatter = JSONFormatter()
    try:
        raise OSError(28, "No space left on device")
    except OSError:
        record = logging.LogRecord("taskgate.x", logging.ERROR, __file__, 1, "write failed", None, sys.exc_info())
    assert "No space left on device" in formatter.format(record)


def test_server_logs_carry_no_request_or_response_content(fake_provider, tmp_path):
    with ServerProcess(fake_provider, tmp_path / "logs") as server:
        fake_provider.script("gpt-4o-mini", Behaviour(text=f"answer {MARKER}"),
                             Behaviour(raw_body=f'{{"broken {MARKER}'.encode()))
        assert post(f"{server.url}/v2/call", {"name": "c", "input": MARKER}).status == 200
        assert post(f"{server.url}/v2/call", {"name": "c", "input": MARKER}).status >= 500
        orphan = {"name": "c", "input": MARKER, "parent_span_id": MARKER}
        assert post(f"{server.url}/v2/call", orphan).status == 404
        post(f"{server.url}/v3/compat/chat/completions", {"model": "openai/gpt-4o-mini", "messages": [
            {"role": "user", "content": MARKER}]})
        time.sleep(0.6)  # log lines go out in batches
        text = server.stderr_text()
    assert text  # the server did log (the start line at least)
    assert MARKER not in text

