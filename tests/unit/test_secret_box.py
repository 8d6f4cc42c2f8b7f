"""The secret key file (engine/secret_box.py): made once, private, agreed on by replicas starting at once."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from taskgate.engine.secret_box import KEY_FILE, load_secret_key


def test_the_key_is_generated_once_private_and_then_reused(tmp_path: Path) -> None:
    key = load_secret_key(None, tmp_path)
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
    assert load_secret_key(None, tmp_path) == key
    Fernet(key)
    assert load_secret_key("configured", tmp_path) == "configured"
    assert sorted(os.listdir(tmp_path)) == [KEY_FILE]  # no temporary file left behind


def test_replicas_starting_at_once_agree_on_one_key(tmp_path: Path) -> None:
    keys: list[str] = []
    start = threading.Barrier(8)

    def replica() -> None:
        start.wait()
        keys.append(load_secret_key(None, tmp_path))

    threads = [threading.Thread(target=replica) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(keys)) == 1 and len(keys) == 8


def test_a_damaged_key_file_is_named_in_the_error(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_text("not a key")
    with pytest.raises(ValueError, match="does not hold a Fernet key"):
        load_secret_key(None, tmp_path)
