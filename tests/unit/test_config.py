"""Settings: a bad value is a clear start-up error naming the variable, never a traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

from taskgate.config import LOCAL_DEFAULT_MODEL, ConfigError, Settings


@pytest.mark.parametrize(("name", "value", "message"), [
    ("TASKGATE_HEARTBEAT_SECONDS", "0", "greater than 0"),
    ("TASKGATE_SPAN_FLUSH_SECONDS", "-1", "greater than 0"),
    ("TASKGATE_MAX_BODY_BYTES", "lots", "must be a number"),
    ("TASKGATE_LOCAL_QUEUE", "0", "greater than 0"),
])
def test_bad_numbers_name_their_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=name) as caught:
        Settings.from_env({name: value})
    assert message in str(caught.value)


def test_serve_refuses_a_bad_setting_with_exit_code_2(tmp_path: Path) -> None:
    taskgate = Path(sys.executable).with_name("taskgate")
    result = subprocess.run([str(taskgate), "serve", "--data-dir", str(tmp_path)], capture_output=True, text=True,
                            env={"TASKGATE_HEARTBEAT_SECONDS": "0", "PATH": "/usr/bin:/bin"}, timeout=60)
    assert result.returncode == 2
    assert "TASKGATE_HEARTBEAT_SECONDS must be greater than 0" in result.stderr


def test_no_provider_key_means_the_local_model() -> None:
    assert Settings.from_env({}).default_model == LOCAL_DEFAULT_MODEL
    assert Settings.from_env({"OPENAI_API_KEY": "sk"}).default_model.startswith("openai/")
    assert Settings.from_env({"TASKGATE_DEFAULT_MODEL": "anthropic/x"}).default_model == "anthropic/x"
