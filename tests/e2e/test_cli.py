"""The everyday CLI (`call`, `traces`, `trace`, `usage`, `functions`) through typer's CliRunner, against a
real `taskgate serve` with the fake provider, and against the same server's data directory read in
process: both must give the same answers. Bad input fails with one clear line and a non-zero status,
never a traceback."""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path

import orjson
import pytest
from click.testing import Result
from typer.testing import CliRunner

from taskgate.cli import app
from taskgate.commands.json_assembly import JsonAssembly
from tests.fakes.common import Behaviour
from tests.harness import API_KEY, ServerProcess, free_port
from tests.http_client import get, post

MODEL = "openai/gpt-4o-mini"
PEOPLE = {
    "type": "object",
    "properties": {
        "people": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "age": {"type": "integer"}}, "required": ["name", "age"]}},
        "summary": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["people", "summary", "tags"],
}
ANSWER = {"people": [{"name": "John \"JD\" Doe ✏️", "age": 41}, {"name": "Ann", "age": 29}],
          "summary": "Two people.\nBoth busy.", "tags": []}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run(args: list[str], *, server: ServerProcess | None = None, key: str | None = API_KEY,
        env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    """`taskgate ARGS` in process, with only the variables given (the developer's shell left out)."""
    cleared: dict[str, str | None] = {name: None for name in os.environ
                                      if name.startswith("TASKGATE_") or name.endswith(("_API_KEY", "_BASE_URL"))}
    given = {**({"TASKGATE_URL": server.url} if server else {}), **({"TASKGATE_API_KEY": key} if key else {}),
             **(env or {})}
    return CliRunner().invoke(app, args, env={**cleared, **given}, input=stdin)


def plain(text: str) -> str:
    return _ANSI.sub("", text)


def succeeded(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result


def failed(result: Result, message: str, status: int = 1) -> str:
    """A failure as the user sees it: the status, one `taskgate:` line on stderr, no traceback."""
    assert result.exit_code == status, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert result.stderr.startswith("taskgate: "), result.stderr
    assert message in result.stderr, result.stderr
    return result.stderr


def unique(name: str) -> str:
    return f"cli-{name}-{uuid.uuid4().hex[:8]}"


def local_env(server: ServerProcess) -> dict[str, str]:
    """Reading the server's store (its data directory, or its Postgres database) in process, with the
    server's own bootstrap key (project `default`)."""
    database = {"TASKGATE_DATABASE_URL": server.env["TASKGATE_DATABASE_URL"]} \
        if "TASKGATE_DATABASE_URL" in server.env else {}
    return {"TASKGATE_DATA_DIR": str(server.data_dir), "TASKGATE_API_KEYS": API_KEY, **database}


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "people.json").write_text(orjson.dumps(PEOPLE).decode())
    (tmp_path / "input.json").write_text('{"text": "John Doe is 41, Ann is 29"}')
    (tmp_path / "not-json.txt").write_text("this is not JSON {")
    return tmp_path


# ---- call


def test_call_prints_the_answer_as_json_in_a_pipe(server, fake, files):
    fake.script("gpt-4o-mini", Behaviour(json=ANSWER))
    name = unique("extract")
    result = succeeded(run(["call", name, "--instructions", "Extract the people", "--input", f"@{files}/input.json",
                            "--output-schema", f"@{files}/people.json", "--model", MODEL], server=server))
    assert orjson.loads(result.stdout) == ANSWER
    sent = fake.requests[-1].json
    assert "John Doe is 41, Ann is 29" in orjson.dumps(sent).decode()  # the @file's input reached the model
    assert "Extract the people" in orjson.dumps(sent).decode()


def test_call_streams_chunks_as_lines_in_a_pipe(server, fake, files):
    fake.script("gpt-4o-mini", Behaviour(json=ANSWER, event_delay_s=0.002))
    result = succeeded(run(["call", unique("extract"), "--input", "John and Ann", "--output-schema",
                            f"@{files}/people.json", "--stream"], server=server))
    chunks = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert list(chunks[0]) == ["span_id"]
    assembly = JsonAssembly()
    for chunk in chunks[1:]:
        assert chunk["chunk_type"] == "json"
        assembly.add(chunk["json_path"], chunk["delta"])
    assert len(chunks) > 5
    assert assembly.value == {key: value for key, value in ANSWER.items() if key != "tags"}  # [] is no delta


def test_call_streams_live_at_a_terminal_then_prints_the_recorded_answer(server, fake, files):
    fake.script("gpt-4o-mini", Behaviour(json=ANSWER, event_delay_s=0.002))
    result = succeeded(run(["call", unique("extract"), "--input", "John and Ann", "--output-schema",
                            f"@{files}/people.json", "--stream", "--format", "pretty"], server=server))
    shown = plain(result.stdout)
    assert "streaming" in shown  # the spinner's label
    final = plain(result.stdout[result.stdout.rindex("\x1b[?25h"):])  # printed once the live view ended
    assert orjson.loads(final) == ANSWER  # with the empty list the stream could not carry
    assert '"tags": []' in final
    footer = plain(result.stderr)
    assert re.search(r"span [0-9a-f-]{36} · openai/gpt-4o-mini · \d+ tokens · \$0\.\d+ · \d+\.\d\d s", footer), footer


def test_call_with_a_spinner_at_a_terminal(server, fake):
    result = succeeded(run(["call", unique("writer"), "--input", "hello", "--format", "pretty"], server=server))
    assert "Hello from gpt-4o-mini! This is a fake reply." in plain(result.stdout)
    assert "calling" in plain(result.stdout)
    assert "tokens" in plain(result.stderr)


@pytest.mark.parametrize("stream", [[], ["--stream"]])
def test_names_with_markup_are_shown_as_written(server, fake, stream):
    """rich reads `[...]` as markup: a name such as `a[/b]` must neither style nor break the output."""
    name = unique("a[/b][bold]")
    result = succeeded(run(["call", name, "--input", "x", "--format", "pretty", *stream], server=server))
    assert name in plain(result.stdout)


def test_call_reads_input_from_stdin(server, fake):
    result = succeeded(run(["call", unique("writer"), "--input", "@-"], server=server, stdin='{"from": "stdin"}'))
    assert orjson.loads(result.stdout) == "Hello from gpt-4o-mini! This is a fake reply."
    assert "from" in orjson.dumps(fake.requests[-1].json).decode()
    assert "stdin" in orjson.dumps(fake.requests[-1].json).decode()


def test_a_refusal_prints_the_servers_message(server, fake):
    refused = run(["call", unique("bad"), "--input", "x", "--output-schema", '{"type": "bogus"}'], server=server)
    failed(refused, "BadRequestError: output_schema does not compile")
    assert "(HTTP 400)" in refused.stderr and refused.stdout == ""


def test_an_error_mid_stream_fails_the_command(server, fake, files):
    fake.script("gpt-4o-mini", Behaviour(json=ANSWER, fail_after=3))
    result = run(["call", unique("cut"), "--input", "x", "--output-schema", f"@{files}/people.json", "--stream",
                  "--model", MODEL], server=server)
    assert result.exit_code == 1
    assert result.stderr.startswith("taskgate: ") and "Traceback" not in result.output
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert lines[-1]["chunk_type"] == "error"  # the pipe still got the error chunk as it came


@pytest.mark.parametrize(("args", "message"), [
    (["--input", "@{dir}/missing.json"], "--input @{dir}/missing.json: no such file"),
    (["--input", "@{dir}/not-json.txt"], "the file is not JSON"),
    (["--output-schema", "@{dir}/not-json.txt"], "the file is not JSON"),
    (["--output-schema", "@{dir}"], "not a regular file"),
    (["--output-schema", "[1, 2]"], "--output-schema must be a JSON object"),
    (["--input-schema", "not json"], "--input-schema is not JSON"),
    (["--input", "@"], "no file named after '@'"),
])
def test_bad_call_input_is_refused_before_anything_is_sent(server, fake, files, args, message):
    before = len(fake.requests)
    argv = ["call", unique("bad"), *[arg.format(dir=files) for arg in args]]
    failed(run(argv, server=server), message.format(dir=files))
    assert len(fake.requests) == before


def test_a_schema_ref_to_a_file_is_sent_as_written_and_refused_by_the_server(server, fake, tmp_path):
    """The CLI reads the file the user named and follows nothing inside it: the server refuses the ref."""
    target = tmp_path / "other.json"
    target.write_text('{"type": "object"}')
    schema = tmp_path / "schema.json"
    schema.write_text(orjson.dumps({"$ref": f"file://{target}"}).decode())
    before = len(fake.requests)
    failed(run(["call", unique("ref"), "--input", "x", "--output-schema", f"@{schema}"], server=server),
           "(HTTP 400)")
    assert len(fake.requests) == before


def test_call_with_no_server_needs_a_store(tmp_path):
    """With no server, a call runs on the data directory (tests/e2e/test_cli_offline.py): one with no
    store is named, not made."""
    failed(run(["call", "x", "--input", "y", "--data-dir", str(tmp_path / "none")]), "no Taskgate store in")
    assert not (tmp_path / "none").exists()


# ---- reaching the server


def test_an_unreachable_url_is_named(files):
    url = f"http://127.0.0.1:{free_port()}"
    failed(run(["functions", "--url", url]), f"cannot reach {url}")
    failed(run(["call", "x", "--input", "y", "--url", url, "--stream"]), f"cannot reach {url}")


@pytest.mark.parametrize("command", [["functions"], ["traces"], ["usage"], ["trace", "abc"],
                                     ["call", "x", "--input", "y"]])
def test_a_wrong_key_is_refused_with_the_servers_words(server, command):
    failed(run(command, server=server, key="tg_wrong"), "UnauthorizedError: invalid API key (HTTP 401)")
    failed(run(command, server=server, key=None), "set TASKGATE_API_KEY")


@pytest.mark.parametrize("url", ["ftp://host", "127.0.0.1:8000", "http://", "http://a b"])
def test_a_bad_url_is_a_setting_error(url):
    failed(run(["traces", "--url", url]), f"--url must be an http:// or https:// URL with a host, such as "
                                          f"http://127.0.0.1:8000, got {url!r}", status=2)


def test_a_server_that_is_not_taskgate_is_named(fake):
    failed(run(["functions", "--url", fake.url]), f"HTTP 404 from {fake.url}/v2/functions")


# ---- traces and trace, from the server and from the data directory


def make_calls(server: ServerProcess, name: str, count: int) -> list[str]:
    spans = []
    for index in range(count):
        reply = post(f"{server.url}/v2/call", {"name": name, "input": f"hello {index}", "model": MODEL,
                                              "tags": {"customer": f"acme-{name}"}})
        assert reply.status == 200, reply.body
        spans.append(reply.json()["span_id"])
    return spans


def trace_of(server: ServerProcess, span: str) -> str:
    reply = get(f"{server.url}/v3/spans/{span}")
    assert reply.status == 200, reply.body
    return str(reply.json()["data"]["trace_id"])


def test_traces_of_a_function_from_server_and_data_directory(server, fake):
    name = unique("listed")
    spans = [trace_of(server, span) for span in make_calls(server, name, 3)]
    make_calls(server, name + "-other", 1)  # a longer name that contains it: not its trace
    remote = orjson.loads(succeeded(run(["traces", "--function", name, "--since", "1h"], server=server)).stdout)
    assert [item["id"] for item in remote] == spans[::-1]  # newest first; a call's span id is its trace's id
    assert all(item["name"] == name and item["span_count"] == 1 and item["total_tokens"] > 0 for item in remote)
    local = orjson.loads(succeeded(run(["traces", "--function", name, "--since", "1h"],
                                       env=local_env(server))).stdout)
    assert local == remote
    limited = orjson.loads(succeeded(run(["traces", "--function", name, "--limit", "2"], server=server)).stdout)
    assert [item["id"] for item in limited] == spans[:0:-1]
    shown = plain(succeeded(run(["traces", "--function", name, "--format", "pretty"], server=server)).stdout)
    assert all(span in shown for span in spans) and "3 traces" in shown


def test_since_stops_at_older_traces(server, fake):
    name = unique("old")
    make_calls(server, name, 1)
    assert len(orjson.loads(succeeded(run(["traces", "--function", name, "--since", "1h"], server=server)).stdout)) == 1
    time.sleep(1.1)
    for env in (None, local_env(server)):
        later = run(["traces", "--function", name, "--since", "1s"], server=None if env else server, env=env)
        assert orjson.loads(succeeded(later).stdout) == []


def test_trace_shows_the_span_tree_with_cost_and_latency(server, fake):
    name = unique("tree")
    root = post(f"{server.url}/v2/spans", {"name": "pipeline <b>[bold]x[/bold]</b>"}).json()["id"]
    child = post(f"{server.url}/v2/call", {"name": name, "input": "hi", "model": MODEL,
                                           "parent_span_id": root}).json()["span_id"]
    remote = orjson.loads(succeeded(run(["trace", trace_of(server, root)], server=server)).stdout)
    assert {span["id"] for span in remote["spans"]} == {root, child}
    by_span = orjson.loads(succeeded(run(["trace", child], server=server)).stdout)  # a span's id finds its trace
    assert by_span == remote
    called = next(span for span in remote["spans"] if span["id"] == child)
    assert called["parent_id"] == root and called["cost"] > 0 and called["model"] == MODEL
    local = orjson.loads(succeeded(run(["trace", child], env=local_env(server))).stdout)
    assert local == remote
    tree = plain(succeeded(run(["trace", root, "--format", "pretty"], server=server)).stdout)
    assert "pipeline <b>[bold]x[/bold]</b>" in tree  # span names are shown as written, never as markup
    lines = tree.splitlines()
    child_line = next(line for line in lines if name in line)
    assert child_line.lstrip().startswith("└──") and MODEL in child_line and " ms" in child_line
    assert f"${called['cost']:.8f}".rstrip("0") in child_line
    assert "2 spans" in tree


@pytest.mark.parametrize("mode", ["server", "local"])
def test_an_unknown_trace_is_not_found(server, mode):
    env = local_env(server) if mode == "local" else None
    failed(run(["trace", "no-such-trace"], server=server if mode == "server" else None, env=env),
           "NotFoundError: trace 'no-such-trace' was not found")
    failed(run(["trace", "a/b"], server=server if mode == "server" else None, env=env), "must not contain '/'")


# ---- usage and functions


def test_usage_by_model_function_and_tag_adds_up_the_spans(server, fake):
    name = unique("usage")
    spans = make_calls(server, name, 2)
    costs = [orjson.loads(succeeded(run(["trace", span], server=server)).stdout)["spans"][0]["cost"]
             for span in spans]
    by_function = orjson.loads(succeeded(run(["usage", "--by", "function", "--since", "1h"], server=server)).stdout)
    mine = [row for row in by_function if row["function"] == name]
    assert sum(row["calls"] for row in mine) == 2
    assert sum(float(row["cost"]) for row in mine) == pytest.approx(sum(costs))
    local = orjson.loads(succeeded(run(["usage", "--by", "function", "--since", "1h"], env=local_env(server))).stdout)
    assert sorted(local, key=orjson.dumps) == sorted(by_function, key=orjson.dumps)
    by_tag = orjson.loads(succeeded(run(["usage", "--by", "tag:customer", "--since", "1h"], server=server)).stdout)
    assert sum(row["calls"] for row in by_tag if row["customer"] == f"acme-{name}") == 2
    table = plain(succeeded(run(["usage", "--by", "tag:customer", "--since", "1h", "--format", "pretty"],
                                server=server)).stdout)
    line = next(line for line in table.splitlines() if f"acme-{name}" in line)
    assert re.search(r"\s2\s", line) and re.search("[▁▂▃▄▅▆▇█]", line)
    model_table = plain(succeeded(run(["usage", "--by", "model", "--spark", "cost", "--format", "pretty"],
                                      server=server)).stdout)
    assert MODEL in model_table and "cost over time" in model_table


@pytest.mark.parametrize(("args", "message", "status"), [
    (["usage", "--since", "yesterday"], "--since must be a whole number and a unit", 1),
    (["usage", "--since", "0d"], "--since must be longer than 0", 1),
    (["traces", "--since", "1y"], "--since must be a whole number and a unit", 1),
    (["usage", "--by", "colour"], "--by must be model, function or tag:KEY", 1),
    (["usage", "--by", "tag:" + "k" * 101], "group_by keys must be 1 to 100 printable characters", 1),
    (["usage", "--since", "3650d", "--granularity", "minute"], "at most 10000 are allowed", 1),
])
@pytest.mark.parametrize("mode", ["server", "local"])
def test_bad_report_options_are_clear_errors(server, mode, args, message, status):
    env = local_env(server) if mode == "local" else None
    failed(run(args, server=server if mode == "server" else None, env=env), message, status)


def test_a_limit_out_of_range_is_typers_usage_error(server):
    result = run(["traces", "--limit", "0"], server=server)
    assert result.exit_code == 2 and "Traceback" not in result.output and "--limit" in result.output


def test_functions_lists_revision_calls_and_cost(server, fake):
    name = unique("fn")
    make_calls(server, name, 3)
    listed = orjson.loads(succeeded(run(["functions"], server=server)).stdout)
    mine = next(item for item in listed if item["name"] == name)
    assert mine["calls"] == 3 and mine["cost"] > 0 and mine["revision_id"]
    local = orjson.loads(succeeded(run(["functions"], env=local_env(server))).stdout)
    assert local == listed
    table = plain(succeeded(run(["functions", "--format", "pretty"], server=server)).stdout)
    line = next(line for line in table.splitlines() if name in line)
    assert mine["revision_id"] in line and re.search(r"\s3\s", line)


def test_both_stores_answer_alike_through_the_server_and_directly(any_server, fake):
    """SQLite and Postgres: every read command gives the same JSON from the server and from the store."""
    name = unique("stores")
    span = make_calls(any_server, name, 2)[-1]
    commands = [["traces", "--function", name], ["trace", span], ["functions"],
                ["usage", "--since", "1h"], ["usage", "--by", "model", "--since", "1h"],
                ["usage", "--by", "tag:customer", "--since", "2h"]]
    for command in commands:
        remote = orjson.loads(succeeded(run(command, server=any_server)).stdout)
        local = orjson.loads(succeeded(run(command, env=local_env(any_server))).stdout)
        if command[0] == "usage":
            remote, local = sorted(remote, key=orjson.dumps), sorted(local, key=orjson.dumps)
        assert local == remote, command
        assert remote, command
    totals = orjson.loads(succeeded(run(["usage", "--since", "1h"], server=any_server)).stdout)
    assert all(set(row) >= {"time_bucket", "cost", "calls", "total_tokens"} for row in totals)


# ---- which project a data directory is read for


def make_key(data_dir: Path, project: str) -> str:
    result = succeeded(run(["keys", "create", "--project", project, "--data-dir", str(data_dir)], key=None))
    return result.stdout.strip()


def test_a_data_directory_with_several_projects_needs_a_choice(tmp_path):
    key_a = make_key(tmp_path, "alpha")
    key_b = make_key(tmp_path, "beta")
    data = ["traces", "--data-dir", str(tmp_path)]
    failed(run(data, key=None), "has 2 projects (alpha, beta): choose one with --project NAME or TASKGATE_API_KEY")
    assert orjson.loads(succeeded(run([*data, "--project", "alpha"], key=None)).stdout) == []
    assert orjson.loads(succeeded(run(data, key=key_b)).stdout) == []
    failed(run([*data, "--project", "alpha"], key=key_b), "TASKGATE_API_KEY belongs to another project than 'alpha'")
    failed(run([*data, "--project", "gamma"], key=None), "no project 'gamma' in the store")
    failed(run(data, key="tg_not_a_key"), "TASKGATE_API_KEY is not a key of the store")
    assert key_a != key_b


def test_a_data_directory_with_one_project_needs_nothing_more(tmp_path):
    make_key(tmp_path, "solo")
    assert orjson.loads(succeeded(run(["functions", "--data-dir", str(tmp_path)], key=None)).stdout) == []


def test_a_missing_data_directory_is_not_created(tmp_path):
    missing = tmp_path / "nothing-here"
    failed(run(["traces", "--data-dir", str(missing)], key=None), "no Taskgate store in")
    assert not missing.exists()


def test_project_is_for_data_directories_only(server):
    failed(run(["traces", "--project", "default"], server=server), "--project reads a data directory")


def test_serve_prints_the_ui_url(server):
    assert f"the web UI is at {server.url}/ui" in server.stderr_text()
