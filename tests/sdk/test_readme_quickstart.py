"""The README's quick start runs as written: each snippet marked `<!-- quickstart: NAME -->` is taken
from the README and run against a real `taskgate serve`, with only its URL (http://127.0.0.1:8000)
swapped for the test server's. Python snippets run in their client's own virtualenv (NAME is the
venv: opperai-1.7.2, opperai-2.1.1, openai), the curl and CLI ones in bash, with TASKGATE_API_KEY
set as the quick start tells the reader to."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import orjson
import pytest

from tests.fakes.provider import Behaviour, FakeProvider
from tests.fixtures import SdkVenvs
from tests.harness import ServerProcess, clean_env, taskgate_command

pytestmark = pytest.mark.sdk

README = Path(__file__).resolve().parents[2] / "README.md"
README_URL = "http://127.0.0.1:8000"
_SNIPPET = re.compile(r"<!-- quickstart: (?P<name>[\w.-]+) -->\n```(?P<lang>\w+)\n(?P<code>.*?)```", re.S)
CAPITAL = {"capital": "Stockholm"}


def snippets() -> dict[str, str]:
    return {match["name"]: match["code"] for match in _SNIPPET.finditer(README.read_text())}


def snippet(name: str, server: ServerProcess) -> str:
    code = snippets()[name]
    assert README_URL in code, f"the {name} snippet no longer names {README_URL}"
    return code.replace(README_URL, server.url)


def test_the_quick_start_has_every_client() -> None:
    assert set(snippets()) == {"curl", "opperai-1.7.2", "opperai-2.1.1", "openai", "cli"}


def bash(code: str, server: ServerProcess, cwd: Path, path_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = clean_env({"TASKGATE_API_KEY": server.api_key})
    if path_dir is not None:
        env["PATH"] = f"{path_dir}:{env['PATH']}"
    return subprocess.run(["bash", "-euo", "pipefail", "-c", code], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120)


def test_curl(server: ServerProcess, fake: FakeProvider, tmp_path: Path) -> None:
    fake.script("gpt-4o-mini", Behaviour(json=CAPITAL))
    done = bash(snippet("curl", server), server, tmp_path)
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["json_payload"] == CAPITAL


@pytest.mark.parametrize(("venv", "shown"), [("opperai-1.7.2", "{'capital': 'Stockholm'}"),
                                             ("opperai-2.1.1", "Stockholm")])
def test_opperai(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider, tmp_path: Path, venv: str,
                 shown: str) -> None:
    fake.script("gpt-4o-mini", Behaviour(json=CAPITAL))
    script = tmp_path / "quickstart.py"
    script.write_text(snippet(venv, server))
    done = sdk_venv.run(venv, script, env={"TASKGATE_API_KEY": server.api_key})
    assert done.returncode == 0, done.stderr
    assert shown in done.stdout
    assert "Give the capital of the country." in orjson.dumps(fake.requests[-1].json).decode()


def test_openai(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider, tmp_path: Path) -> None:
    fake.script("gpt-4o-mini", Behaviour(text="Stockholm."))
    script = tmp_path / "quickstart.py"
    script.write_text(snippet("openai", server))
    done = sdk_venv.run("openai", script, env={"TASKGATE_API_KEY": server.api_key})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Stockholm."


def test_cli(server: ServerProcess, fake: FakeProvider, tmp_path: Path) -> None:
    """The CLI block, `taskgate` being this checkout's (a shim on PATH), in a scratch directory."""
    fake.script("gpt-4o-mini", Behaviour(json=CAPITAL))
    shim = tmp_path / "bin" / "taskgate"
    shim.parent.mkdir()
    root = Path(__file__).resolve().parents[2]
    shim.write_text(f"#!/bin/sh\ncd {root} && exec {' '.join(taskgate_command())} \"$@\"\n")
    shim.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    code = snippet("cli", server).replace("@capital.json", f"@{work}/capital.json")
    done = bash(code, server, work, shim.parent)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    chunks = [orjson.loads(line) for line in lines if line.startswith("{")]
    assert "span_id" in chunks[0] and {"delta": "Stockholm", "json_path": "response.capital",
                                       "chunk_type": "json"} in chunks
    listings = [orjson.loads(line) for line in lines if line.startswith("[")]
    traces, usage, functions = listings
    assert traces and traces[0]["name"] == "capital"
    assert any(row.get("model") == "openai/gpt-4o-mini" for row in usage)
    assert any(item["name"] == "capital" and item["calls"] >= 1 for item in functions)
