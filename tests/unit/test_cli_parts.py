"""The CLI's pieces without a server: json_path reassembly (against the server's own path writer),
`@file` and inline JSON values, `--since`, sparklines and usage buckets, and `--url` checking."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from taskgate.api.v2.json_paths import JsonPathStream
from taskgate.commands.arguments import MAX_FILE_BYTES, json_object, json_value, since
from taskgate.commands.console import CommandError
from taskgate.commands.json_assembly import JsonAssembly, PathError, path_steps
from taskgate.commands.tables import money, sparkline
from taskgate.commands.usage import bucket_starts, group_key
from taskgate.config import ConfigError, Settings


def reassembled(value: object, chunk: int) -> object:
    """`value` written as JSON, cut into `chunk`-character pieces, turned into json_path deltas by the
    server's parser, and put back together by the CLI's (only scalar deltas travel, as on the wire)."""
    text = orjson.dumps(value).decode()
    parser = JsonPathStream()
    assembly = JsonAssembly()
    for at in range(0, len(text), chunk):
        for path, delta in parser.feed(text[at:at + chunk]):
            if not isinstance(delta, dict | list):
                assembly.add(path, delta)
    for path, delta in parser.finish():
        if not isinstance(delta, dict | list):
            assembly.add(path, delta)
    return assembly.value


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_deltas_put_back_together_give_the_answer(chunk: int) -> None:
    answer = {"people": [{"name": "Ann \"Q\" Lee ✏️", "age": 29, "ok": True, "pet": None},
                         {"name": "B\nC", "age": -1.5e3, "ok": False, "pet": "cat"}],
              "a.b": {"c[0]": "dotted \\ and bracketed keys", "": "empty key"},
              "matrix": [[1, 2], [3, 4]], "summary": ""}
    assert reassembled(answer, chunk) == answer


def test_a_scalar_answer_is_its_own_root() -> None:
    assert reassembled("just text", 2) == "just text"
    assert reassembled(42, 1) == 42


def test_path_steps_read_escapes_and_indexes() -> None:
    assert path_steps("response") == []
    assert path_steps("response.people[10].name") == ["people", 10, "name"]
    assert path_steps("response.a\\.b.c\\[0\\\\]") == ["a.b", "c[0\\]"]  # as the server escapes `c[0\]`


@pytest.mark.parametrize("path", ["people.name", "response[x]", "response[1", "response]"])
def test_a_path_it_cannot_follow_is_an_error(path: str) -> None:
    with pytest.raises(PathError):
        JsonAssembly().add(path, 1)


def test_an_index_that_jumps_ahead_is_refused_not_a_huge_list() -> None:
    assembly = JsonAssembly()
    assembly.add("response.items[0]", "a")
    with pytest.raises(PathError, match="arrived before"):
        assembly.add("response.items[999999999]", "b")
    assert assembly.value == {"items": ["a"]}


def test_json_values_inline_and_from_files(tmp_path: Path) -> None:
    data = tmp_path / "input.json"
    data.write_text('{"text": "hi", "n": [1, 2]}')
    assert json_value(f"@{data}", "--input") == {"text": "hi", "n": [1, 2]}
    assert json_value('{"a": 1}', "--input") == {"a": 1}
    assert json_value("plain words", "--input", text_allowed=True) == "plain words"
    assert json_value("@@handle", "--input", text_allowed=True) == "@handle"  # `@@` escapes a literal @
    with pytest.raises(CommandError, match="is not JSON"):
        json_value("plain words", "--output-schema")


def test_a_schema_must_be_an_object(tmp_path: Path) -> None:
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(CommandError, match="must be a JSON object"):
        json_object(f"@{listed}", "--output-schema")


def test_bad_files_are_named_never_shown(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2 not json")
    with pytest.raises(CommandError) as not_json:
        json_value(f"@{secret}", "--input")
    assert "not JSON" in str(not_json.value) and "hunter2" not in str(not_json.value)
    with pytest.raises(CommandError, match="no such file"):
        json_value(f"@{tmp_path / 'missing.json'}", "--input")
    with pytest.raises(CommandError, match="not a regular file"):
        json_value(f"@{tmp_path}", "--input")
    with pytest.raises(CommandError, match="no file named"):
        json_value("@", "--input")


def test_a_fifo_or_device_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # opening it would wait for a writer forever
    with pytest.raises(CommandError, match="not a regular file"):
        json_value(f"@{fifo}", "--input")
    with pytest.raises(CommandError, match="not a regular file"):
        json_value("@/dev/zero", "--input")  # endless


def test_a_file_larger_than_the_limit_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    with big.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: no disk used
    with pytest.raises(CommandError, match="larger than"):
        json_value(f"@{big}", "--input")


def test_an_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file: permissions cannot be tested")
    locked = tmp_path / "locked.json"
    locked.write_text("{}")
    locked.chmod(0)
    with pytest.raises(CommandError, match="permission denied"):
        json_value(f"@{locked}", "--input")


@pytest.mark.parametrize(("raw", "expected"), [("90s", timedelta(seconds=90)), ("15m", timedelta(minutes=15)),
                                               ("1h", timedelta(hours=1)), ("7d", timedelta(days=7)),
                                               (" 2w ", timedelta(weeks=2))])
def test_since_reads_a_number_and_a_unit(raw: str, expected: timedelta) -> None:
    assert since(raw) == expected


@pytest.mark.parametrize("raw", ["", "1", "h", "1y", "-1h", "1.5h", "0h", "1 h", "9999999999d", "3651d",
                                 "999999999w", "1h;rm -rf /", "\u0661h"])
def test_a_bad_since_is_a_clear_error(raw: str) -> None:
    with pytest.raises(CommandError, match="--since"):
        since(raw)


def test_sparkline_scales_to_the_largest_and_shows_zero_as_blank() -> None:
    assert sparkline([0, 1, 80]) == " ▁█"
    assert sparkline([0, 0]) == "  "
    assert sparkline([]) == ""


def test_money_keeps_small_costs_visible() -> None:
    assert money(None) == "$ -"
    assert money("0") == "$0"
    assert money(0.0000123) == "$0.0000123"
    assert money(12.5) == "$12.5000"


def test_buckets_cover_the_range_in_utc() -> None:
    start = datetime(2026, 11, 30, 22, 30, tzinfo=UTC)
    assert bucket_starts(start, start + timedelta(hours=2), "hour") == [
        datetime(2026, 11, 30, 22, tzinfo=UTC), datetime(2026, 11, 30, 23, tzinfo=UTC),
        datetime(2026, 12, 1, 0, tzinfo=UTC)]
    assert bucket_starts(start, datetime(2027, 2, 1, tzinfo=UTC), "month") == [
        datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)]


def test_by_names_model_function_or_a_tag() -> None:
    assert group_key(None) is None
    assert group_key("model") == "model"
    assert group_key("tag:customer") == "customer"
    for bad in ("cost", "tag", "tag:", "tag:model", "label:x"):
        with pytest.raises(CommandError, match="--by"):
            group_key(bad)


def test_the_server_url_is_checked_where_settings_are_read() -> None:
    assert Settings.from_env({"TASKGATE_URL": "http://127.0.0.1:8000/"}).client_url == "http://127.0.0.1:8000"
    for bad in ("127.0.0.1:8000", "ftp://host", "http://", "http:///path", "http://a b", "file:///etc/passwd"):
        with pytest.raises(ConfigError, match="TASKGATE_URL"):
            Settings.from_env({"TASKGATE_URL": bad})


def test_the_api_key_is_never_in_a_repr() -> None:
    settings = Settings.from_env({"TASKGATE_API_KEY": "tg_secret_value"})
    assert settings.client_api_key == "tg_secret_value" and "tg_secret_value" not in repr(settings)
