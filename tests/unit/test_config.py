"""Settings: a bad value is a clear start-up error naming the variable, never a traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

from taskgate.config import (
    KEYED_DEFAULT_MODELS,
    LOCAL_DEFAULT_MODEL,
    PROVIDERS,
    PROVIDERS_FILE,
    ConfigError,
    Settings,
)
from taskgate.engine.limits import CallLimits
from taskgate.providers.catalog import PRESETS, ProviderPreset, resolve_provider


@pytest.mark.parametrize(("name", "value", "message"), [
    ("TASKGATE_HEARTBEAT_SECONDS", "0", "greater than 0"),
    ("TASKGATE_SPAN_FLUSH_SECONDS", "-1", "greater than 0"),
    ("TASKGATE_MAX_BODY_BYTES", "lots", "must be a number"),
    ("TASKGATE_LOCAL_QUEUE", "0", "greater than 0"),
    ("TASKGATE_JOURNAL_MAX_BYTES", "0", "greater than 0"),
    ("TASKGATE_JOURNAL_MAX_BYTES", "-5", "greater than 0"),
    ("TASKGATE_JOURNAL_MAX_BYTES", "inf", "finite number"),
    ("TASKGATE_JOURNAL_MAX_BYTES", "1e400", "finite number"),
    ("TASKGATE_JOURNAL_MAX_BYTES", "'; rm -rf /", "must be a number"),
    ("TASKGATE_SHUTDOWN_SECONDS", "nan", "number"),
    ("TASKGATE_SHUTDOWN_SECONDS", "0", "greater than 0"),
])
def test_bad_numbers_name_their_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=name) as caught:
        Settings.from_env({name: value})
    assert message in str(caught.value)


def test_the_shutdown_deadline_is_read_under_its_old_name_too_and_the_new_one_wins() -> None:
    assert Settings.from_env({}).shutdown_grace_s == 10.0
    assert Settings.from_env({"TASKGATE_SHUTDOWN_GRACE_SECONDS": "3"}).shutdown_grace_s == 3.0
    both = {"TASKGATE_SHUTDOWN_GRACE_SECONDS": "3", "TASKGATE_SHUTDOWN_SECONDS": "7"}
    assert Settings.from_env(both).shutdown_grace_s == 7.0
    assert Settings.from_env({"TASKGATE_JOURNAL_MAX_BYTES": "1e6"}).journal_max_bytes == 1_000_000


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


@pytest.mark.parametrize(("env", "message"), [
    ({"TASKGATE_LOCAL_THREADS": "many"}, "TASKGATE_LOCAL_THREADS must be a whole number"),
    ({"TASKGATE_REQUEST_TIMEOUT": "nan"}, "TASKGATE_REQUEST_TIMEOUT must be a finite number"),
    ({"TASKGATE_PROVIDERS": "{not json"}, "TASKGATE_PROVIDERS is not valid JSON"),
    ({"TASKGATE_PROVIDERS": '{"acme": "http://x"}'}, "TASKGATE_PROVIDERS must map provider names to objects"),
    ({"TASKGATE_PROVIDERS_FILE": "/no/such/providers.toml"}, "TASKGATE_PROVIDERS_FILE cannot be read"),
])
def test_every_bad_setting_is_a_config_error_naming_its_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_values_are_typed_and_blank_means_unset() -> None:
    settings = Settings.from_env({
        "TASKGATE_API_KEYS": " k1, k2,,", "TASKGATE_MAX_BODY_BYTES": "1e6", "TASKGATE_LOCAL_THREADS": "3",
        "TASKGATE_LOCAL_MODELS": "tiny=/models/tiny.gguf,broken", "TASKGATE_HEARTBEAT_SECONDS": "  ",
        "TASKGATE_DATABASE_URL": "",
    })
    assert settings.api_keys == ["k1", "k2"]
    assert settings.max_body_bytes == 1_000_000
    assert settings.local_threads == 3
    assert settings.local_models == {"tiny": "/models/tiny.gguf"}
    assert settings.heartbeat_s == 15.0
    assert settings.database_url is None


def test_the_command_line_overrides_the_environment() -> None:
    settings = Settings.from_env({"TASKGATE_DATA_DIR": "/from/env"}, data_dir=Path("/from/cli"), port=None)
    assert settings.data_dir == Path("/from/cli")
    assert settings.port == 8000


def test_only_from_env_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKGATE_HEARTBEAT_SECONDS", "3")
    assert Settings().heartbeat_s == 15.0
    assert Settings.from_env().heartbeat_s == 3.0


def test_only_provider_variables_are_kept_and_secrets_stay_out_of_repr(tmp_path: Path) -> None:
    table = tmp_path / "providers.toml"
    table.write_text('[providers.acme]\nbase_url = "http://acme.test/v1"\nkey_env = "ACME_TOKEN"\n')
    env = {"TASKGATE_PROVIDERS_FILE": str(table), "ACME_TOKEN": "t-acme", "GROQ_API_KEY": "g-key",
           "OLLAMA_BASE_URL": "http://127.0.0.1:1/v1", "HOME": "/root", "DEEPSEEK_API_KEY": "",
           "TASKGATE_API_KEYS": "bootstrap-key"}
    settings = Settings.from_env(env)
    assert settings.provider_entries == {"acme": {"base_url": "http://acme.test/v1", "key_env": "ACME_TOKEN"}}
    assert settings.provider_variables == {"ACME_TOKEN": "t-acme", "GROQ_API_KEY": "g-key",
                                           "OLLAMA_BASE_URL": "http://127.0.0.1:1/v1"}
    assert not any(secret in repr(settings) for secret in ("t-acme", "g-key", "bootstrap-key"))


def test_json_providers_override_the_file_by_name(tmp_path: Path) -> None:
    table = tmp_path / "providers.toml"
    table.write_text('[providers.acme]\nbase_url = "http://file.test"\n[providers.other]\nbase_url = "http://o"\n')
    settings = Settings.from_env({"TASKGATE_PROVIDERS_FILE": str(table),
                                  "TASKGATE_PROVIDERS": '{"acme": {"base_url": "http://json.test"}}'})
    assert settings.provider_entries == {"acme": {"base_url": "http://json.test"}, "other": {"base_url": "http://o"}}


@pytest.mark.parametrize("preset", [p for p in PRESETS.values() if p.key_env], ids=lambda p: p.name)
def test_every_preset_variable_reaches_the_catalogue(preset: ProviderPreset) -> None:
    """config.py keeps only provider variables; a preset whose variables it would miss fails here."""
    assert preset.key_env is not None and preset.base_url_env is not None
    env = {preset.key_env: "key", preset.base_url_env: "http://127.0.0.1:1/v1"}
    resolved = resolve_provider(preset.name, PRESETS, Settings.from_env(env).provider_variables)
    assert (resolved.api_key, resolved.base_url) == ("key", "http://127.0.0.1:1/v1")


def test_the_default_model_follows_the_presets_key_variables() -> None:
    for provider, variable, model in KEYED_DEFAULT_MODELS:
        assert PRESETS[provider].key_env == variable
        assert Settings.from_env({variable: "k"}).default_model == model
    moved = {"TASKGATE_PROVIDERS": '{"anthropic": {"key_env": "CLAUDE_KEY"}}', "CLAUDE_KEY": "k"}
    assert Settings.from_env(moved).default_model == "anthropic/claude-haiku-4-5"


def test_the_limits_default_to_the_engines() -> None:
    settings = Settings()
    limits = CallLimits()
    assert (settings.max_attempts, settings.max_upstream_calls, settings.max_request_tokens) == (
        limits.max_attempts, limits.max_upstream_calls, limits.max_request_tokens)


def test_every_variable_is_in_the_readmes_table() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    table = "\n".join(line for line in readme.splitlines() if line.startswith("| `"))
    aliases = [field.validation_alias for field in Settings.model_fields.values()]
    presets = [name for preset in PRESETS.values() for name in (preset.key_env, preset.base_url_env)]
    variables = {name for name in [*aliases, *presets, PROVIDERS, PROVIDERS_FILE] if isinstance(name, str)}
    assert sorted(name for name in variables if f"`{name}`" not in table) == []
