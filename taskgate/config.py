"""Every environment variable Taskgate reads, typed and checked once at start-up (pydantic-settings).

A leaf: nothing here imports from taskgate, so any layer may take `Settings`, and no other module
reads the environment. `Settings.from_env()` reads `os.environ` (or the mapping a test passes) and
turns a bad value into a `ConfigError` naming its variable, which `taskgate serve` prints before
exiting with status 2. `Settings(...)` is the defaults plus the fields given; it reads nothing.

OpenTelemetry: the standard OTEL_* variables belong to the OpenTelemetry SDK, which reads them
itself (the exporter its headers, timeout, compression and certificates; the resource its service
name and attributes), as OpenTelemetry documents them. This module reads those that decide whether
and where Taskgate exports and how it batches (`_otlp_values`), and refuses values Taskgate could
not honour (another protocol or exporter), so a misconfiguration stops `serve` rather than being
ignored. The same holds for PROMETHEUS_MULTIPROC_DIR, which prometheus-client reads at import.

Provider credentials: each preset (providers/catalog.py) and each `TASKGATE_PROVIDERS` entry names
the variables that hold its key and base URL. Only those are kept, in `provider_variables`: every
`*_API_KEY` and `*_BASE_URL` (how the presets name theirs) and whatever the entries name.
"""

from __future__ import annotations

import base64
import json
import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

LOCAL_DEFAULT_MODEL = "local/gemma-3-270m"
# With no TASKGATE_DEFAULT_MODEL, the first of these whose provider key is set, else the local model:
# (provider, the variable its preset reads the key from, model).
KEYED_DEFAULT_MODELS = (
    ("openai", "OPENAI_API_KEY", "openai/gpt-4o-mini"),
    ("anthropic", "ANTHROPIC_API_KEY", "anthropic/claude-haiku-4-5"),
)
PROVIDER_VARIABLE_SUFFIXES = ("_API_KEY", "_BASE_URL")
ROUTE_PREFERENCES = ("fast", "cheap", "quality", "balanced")  # a v3 call's `route.prefer` values
PROVIDERS = "TASKGATE_PROVIDERS"
# a bad value of these is described, never printed
SECRET_VARIABLES = frozenset({"TASKGATE_SECRET_KEY", "TASKGATE_API_KEY", "TASKGATE_REDIS_URL"})
FERNET_KEY_BYTES = 32
FERNET_KEY_CHARS = 44
PROVIDERS_FILE = "TASKGATE_PROVIDERS_FILE"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
# Rerank and OCR: the bounds of a rerank request, and the models each `GET .../models` lists when
# their provider is configured (any other model with a rerank API or vision may still be named).
DEFAULT_RERANK_MAX_DOCUMENTS = 1000
DEFAULT_RERANK_MAX_TEXT_CHARS = 32_768
DEFAULT_EMBEDDING_MODEL = "local/all-minilm-l6-v2"  # taskgate/providers/local/sentence_encoder.py
DEFAULT_RERANK_MODELS = ("cohere/rerank-v3.5", "jina/jina-reranker-v2-base-multilingual",
                         "together/Salesforce/Llama-Rank-V1", DEFAULT_EMBEDDING_MODEL)
DEFAULT_OCR_MAX_BYTES = 8 * 1024 * 1024
DEFAULT_OCR_MODELS = ("openai/gpt-4o-mini", "openai/gpt-4o", "anthropic/claude-sonnet-4-5")
# OpenTelemetry export (telemetry/otlp_export.py): the standard variables Taskgate itself acts on.
OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
OTLP_TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
OTLP_PROTOCOLS = ("OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
OTLP_TRACES_PATH = "/v1/traces"


# Variables read under an older name too, which the new name overrides.
RENAMED_VARIABLES = {"TASKGATE_SHUTDOWN_GRACE_SECONDS": "TASKGATE_SHUTDOWN_SECONDS"}


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the variable."""


def _whole_part(raw: object) -> object:
    """Sizes and counts have always been read as any number (`1e7` bytes): keep its whole part."""
    if not isinstance(raw, str):
        return raw
    try:
        value = float(raw)
    except ValueError:
        raise PydanticCustomError("float_parsing", "not a number") from None
    if not math.isfinite(value):
        raise PydanticCustomError("finite_number", "not a finite number")
    return math.trunc(value)


def _comma_list(raw: object) -> object:
    """`a, b,,c` -> ["a", "b", "c"]."""
    return [item.strip() for item in raw.split(",") if item.strip()] if isinstance(raw, str) else raw


def _named_paths(raw: object) -> object:
    """`name=/path/a.gguf,other=/path/b.gguf` -> {name: path}; an item without both halves is skipped."""
    if not isinstance(raw, str):
        return raw
    paths = {}
    for item in raw.split(","):
        name, sep, path = item.partition("=")
        if sep and name.strip() and path.strip():
            paths[name.strip()] = path.strip()
    return paths


def _fernet_key(raw: str | None) -> str | None:
    """A Fernet key is 32 bytes in URL-safe base64: anything else would only fail at the first
    secret stored or read, long after start-up."""
    if raw is None:
        return None
    key = raw.strip()
    try:
        decoded = base64.urlsafe_b64decode(key.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        decoded = b""
    if len(decoded) != FERNET_KEY_BYTES or len(key) != FERNET_KEY_CHARS:
        raise PydanticCustomError("fernet_key", "must be a Fernet key: 32 bytes in URL-safe base64 (44 characters)")
    return key
def _server_url(raw: str | None) -> str | None:
    """A Taskgate server's root URL: http(s) with a host, kept without its trailing `/` so paths
    can be appended; anything else would only fail at the first request, with a vaguer message."""
    if raw is None:
        return None
    url = raw.strip().rstrip("/")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest or rest.startswith(("/", "?", "#")) \
            or any(ch.isspace() or not ch.isprintable() for ch in rest):
        raise PydanticCustomError("server_url", "must be an http:// or https:// URL with a host, such as "
                                  "http://127.0.0.1:8000")
    return url


def _redis_url(raw: str | None) -> str | None:
    """Checked here: a mistyped URL would otherwise only show as a warning at the first limited call."""
    if raw is not None and not raw.strip().startswith(REDIS_SCHEMES):
        raise PydanticCustomError("redis_url", "must be a redis://, rediss:// or unix:// URL")
    return raw.strip() if raw is not None else None


def _redis_prefix(raw: str) -> str:
    """Keys and channel names are built from it: printable, short, and without spaces or globs."""
    if not 0 < len(raw) <= 64 or not all(ch.isascii() and (ch.isalnum() or ch in "_.:-") for ch in raw):
        raise PydanticCustomError("redis_prefix", "must be 1 to 64 letters, digits or _.:-")
    return raw


def _route_models(raw: object) -> object:
    """`fast=openai/gpt-4o-mini,quality=...` -> {preference: model}; a preference v3 does not know
    would never be asked for, so it is refused rather than kept unused."""
    models = _named_paths(raw)
    if isinstance(models, dict) and (unknown := set(models) - set(ROUTE_PREFERENCES)):
        raise PydanticCustomError("route_preference", "{unknown}: not one of {known}",
                                  {"unknown": ", ".join(sorted(unknown)), "known": ", ".join(ROUTE_PREFERENCES)})
    return models


def _half_the_cores() -> int:
    """llama-cpp-python's own default: on a busy machine, threads that wait on each other at every
    layer barrier turn a 20 tokens/s model into a 2 tokens/s one."""
    return max(1, (os.cpu_count() or 2) // 2)


Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Amount = Annotated[int, BeforeValidator(_whole_part), Field(gt=0)]  # a size or count, written as any number
WholeNumber = Annotated[int, Field(gt=0)]
ModelName = Annotated[str, Field(pattern=r"^[^/\s]+/\S+$")]  # provider/model


class Settings(BaseSettings):
    """What the operator configured. A field's `validation_alias` is the variable it is read from."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore")

    host: str = "127.0.0.1"  # --host and --port on the command line; no variable
    port: int = 8000
    # Set by `serve --workers` and its supervisor for each worker; no variable. `workers`: serving
    # processes sharing the store (a span may be in another worker's unwritten batch). The others
    # say what the supervisor already did once: the store migrated, the data directory and secret
    # key made (`store_prepared`); where the local model process listens (None: models in process);
    # whether this worker resumes unfinished knowledge files (one worker must, only one should).
    workers: int = 1
    store_prepared: bool = False
    local_model_socket: Path | None = None
    resume_ingestion: bool = True
    # The CLI's server (`taskgate call`, `traces`, ...; `--url` overrides it) and the key it sends; with
    # no URL those commands read the data directory instead (taskgate/commands/connection.py).
    client_url: Annotated[str | None, AfterValidator(_server_url)] = Field(None, validation_alias="TASKGATE_URL")
    client_api_key: str | None = Field(None, validation_alias="TASKGATE_API_KEY", repr=False)
    data_dir: Path = Field(Path(".taskgate"), validation_alias="TASKGATE_DATA_DIR")
    # Secrets (a database password, bootstrap keys in project "default", provider keys) stay out of repr.
    database_url: str | None = Field(None, validation_alias="TASKGATE_DATABASE_URL", repr=False)
    api_keys: Annotated[list[str], BeforeValidator(_comma_list)] = Field(
        default_factory=list, validation_alias="TASKGATE_API_KEYS", repr=False)
    default_model: str = Field(LOCAL_DEFAULT_MODEL, validation_alias="TASKGATE_DEFAULT_MODEL")
    # The model each v3 `route.prefer` value picks for a call that names none (api/v3/preferences.py).
    route_models: Annotated[dict[str, str], BeforeValidator(_route_models)] = Field(
        default_factory=dict, validation_alias="TASKGATE_ROUTE_MODELS")
    max_body_bytes: Amount = Field(10 * 1024 * 1024, validation_alias="TASKGATE_MAX_BODY_BYTES")
    request_timeout_s: Seconds = Field(120.0, validation_alias="TASKGATE_REQUEST_TIMEOUT")
    heartbeat_s: Seconds = Field(15.0, validation_alias="TASKGATE_HEARTBEAT_SECONDS")
    span_flush_interval_s: Seconds = Field(1.0, validation_alias="TASKGATE_SPAN_FLUSH_SECONDS")
    # After SIGTERM: how long requests and streams in flight may still finish, and then spans be stored.
    shutdown_grace_s: Seconds = Field(10.0, validation_alias="TASKGATE_SHUTDOWN_SECONDS")
    # The span journal (telemetry/journal.py): how many bytes of spans it may hold unstored while the
    # store is down; beyond them calls are refused with a 503 (memory holds the same spans).
    journal_max_bytes: Amount = Field(256 * 1024 * 1024, validation_alias="TASKGATE_JOURNAL_MAX_BYTES")
    # What one request may cost upstream (engine/limits.py CallLimits).
    max_attempts: WholeNumber = Field(10, validation_alias="TASKGATE_MAX_ATTEMPTS")
    max_upstream_calls: WholeNumber = Field(30, validation_alias="TASKGATE_MAX_UPSTREAM_CALLS")
    max_request_tokens: WholeNumber = Field(1_000_000, validation_alias="TASKGATE_MAX_REQUEST_TOKENS")
    max_media_bytes: Amount = Field(5 * 1024 * 1024, validation_alias="TASKGATE_MAX_MEDIA_BYTES")
    # How large a request head may be and how long a request may take to arrive (slow clients).
    max_header_bytes: Amount = Field(64 * 1024, validation_alias="TASKGATE_MAX_HEADER_BYTES")
    header_timeout_s: Seconds = Field(10.0, validation_alias="TASKGATE_HEADER_TIMEOUT")
    body_idle_timeout_s: Seconds = Field(30.0, validation_alias="TASKGATE_BODY_IDLE_TIMEOUT")
    body_timeout_s: Seconds = Field(300.0, validation_alias="TASKGATE_BODY_TIMEOUT")
    # The local provider: extra GGUF files by name, generations at once, queue bound, threads each.
    local_models: Annotated[dict[str, str], BeforeValidator(_named_paths)] = Field(
        default_factory=dict, validation_alias="TASKGATE_LOCAL_MODELS")
    local_concurrency: Amount = Field(1, validation_alias="TASKGATE_LOCAL_CONCURRENCY")
    local_queue_size: Amount = Field(16, validation_alias="TASKGATE_LOCAL_QUEUE")
    local_threads: WholeNumber = Field(default_factory=_half_the_cores, validation_alias="TASKGATE_LOCAL_THREADS")
    # The embedding model used where a caller names none (knowledge bases, dataset entries): offline by default.
    default_embedding_model: ModelName = Field(DEFAULT_EMBEDDING_MODEL,
                                               validation_alias="TASKGATE_DEFAULT_EMBEDDING_MODEL")
    # `provider/model` embedding dataset entries for semantic search (entries query, few-shot); unset: the default
    # embedding model.
    dataset_embedding_model: ModelName | None = Field(None, validation_alias="TASKGATE_DATASET_EMBEDDING_MODEL")
    # The rerank model a knowledge query with `rerank: true` is ordered by; unset: the hybrid order is kept.
    knowledge_rerank_model: ModelName | None = Field(None, validation_alias="TASKGATE_KNOWLEDGE_RERANK_MODEL")
    # Rerank: documents per request, characters of the query and of each document, the listed models.
    rerank_max_documents: Amount = Field(DEFAULT_RERANK_MAX_DOCUMENTS, validation_alias="TASKGATE_RERANK_MAX_DOCUMENTS")
    rerank_max_text_chars: Amount = Field(DEFAULT_RERANK_MAX_TEXT_CHARS,
                                          validation_alias="TASKGATE_RERANK_MAX_TEXT_CHARS")
    rerank_models: Annotated[list[ModelName], BeforeValidator(_comma_list)] = Field(
        default_factory=lambda: list(DEFAULT_RERANK_MODELS), validation_alias="TASKGATE_RERANK_MODELS")
    # OCR: the largest document (decoded bytes), and the vision models `GET /v2/ocr/models` lists.
    ocr_max_bytes: Amount = Field(DEFAULT_OCR_MAX_BYTES, validation_alias="TASKGATE_OCR_MAX_BYTES")
    ocr_models: Annotated[list[ModelName], BeforeValidator(_comma_list)] = Field(
        default_factory=lambda: list(DEFAULT_OCR_MODELS), validation_alias="TASKGATE_OCR_MODELS")
    # Feedback with no `save_to_dataset` saves its span as an example when its score is at least this.
    feedback_autosave_score: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = Field(
        0.8, validation_alias="TASKGATE_FEEDBACK_AUTOSAVE_SCORE")
    # Vendors beyond the presets, by name (TASKGATE_PROVIDERS_FILE's table, then TASKGATE_PROVIDERS),
    # and the provider key and base-URL variables that are set.
    provider_entries: dict[str, dict[str, Any]] = Field(default_factory=dict)
    provider_variables: dict[str, str] = Field(default_factory=dict, repr=False)
    # Redis (`redis://host:port/db`), shared by the replicas: keys' and projects' rate and budget counters
    # (atomic across them), the response cache, change notices and unwritten spans (taskgate/replicas);
    # unset, each process keeps its own. Every key and channel Taskgate makes starts with the prefix.
    redis_url: Annotated[str | None, AfterValidator(_redis_url)] = Field(
        None, validation_alias="TASKGATE_REDIS_URL", repr=False)
    redis_prefix: Annotated[str, AfterValidator(_redis_prefix)] = Field(
        "taskgate:", validation_alias="TASKGATE_REDIS_PREFIX")
    # The Fernet key that encrypts stored secrets (custom models' API keys); unset, one is generated
    # into the data directory on first start (engine/secret_box.py).
    secret_key: Annotated[str | None, AfterValidator(_fernet_key)] = Field(
        None, validation_alias="TASKGATE_SECRET_KEY", repr=False)
    # Set by code, never by a variable. The app a CLI command runs in process (`taskgate call` with no
    # server, taskgate/commands/in_process.py) does not take up the data directory's background work
    # (resuming unfinished knowledge-file ingestions), which belongs to the server that may be running
    # on the same store; and it accepts keys that exist only in that process (key -> project id),
    # so a call needs no key written to the store.
    serves_store: bool = True
    session_keys: dict[str, str] = Field(default_factory=dict, repr=False)
    # Prometheus `GET /metrics` (telemetry/metrics.py): metering on or off, whether the endpoint needs
    # a key, and the directory workers share their counts through (set by the parent for --workers).
    metrics_enabled: bool = Field(True, validation_alias="TASKGATE_METRICS")
    metrics_public: bool = Field(False, validation_alias="TASKGATE_METRICS_PUBLIC")
    prometheus_multiproc_dir: Path | None = Field(None, validation_alias="PROMETHEUS_MULTIPROC_DIR")
    # OpenTelemetry export (telemetry/otlp_export.py): the OTLP/HTTP traces URL, None when export is
    # off, and the batching (OTEL_BSP_*, with the SDK's defaults).
    otlp_traces_endpoint: str | None = Field(None, repr=False)  # may carry credentials in its query
    otlp_schedule_delay_ms: Annotated[float, Field(gt=0, allow_inf_nan=False)] = Field(
        5000.0, validation_alias="OTEL_BSP_SCHEDULE_DELAY")
    otlp_max_queue_size: WholeNumber = Field(2048, validation_alias="OTEL_BSP_MAX_QUEUE_SIZE")
    otlp_max_export_batch_size: WholeNumber = Field(512, validation_alias="OTEL_BSP_MAX_EXPORT_BATCH_SIZE")

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'taskgate.db').resolve()}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, /, **overrides: object) -> Settings:
        """The settings `env` (default: os.environ) gives, under `overrides` (the command line's; a
        None is no override). A bad value raises ConfigError naming its variable."""
        variables = os.environ if env is None else env
        given: dict[str, Any] = {_input_name(name): value for name, value in overrides.items() if value is not None}
        try:
            return cls(**{**_read(variables), **given})
        except ValidationError as exc:
            raise ConfigError(_explain(exc, variables)) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the values given: `from_env` reads the variables it is handed, so a plain `Settings()`
        reads nothing (tests build one without the process environment leaking in)."""
        return (init_settings,)


def _read(variables: Mapping[str, str]) -> dict[str, Any]:
    """The settings `variables` hold, under their variable names; a blank variable counts as unset."""
    values: dict[str, Any] = {}
    for old, new in RENAMED_VARIABLES.items():
        if (raw := variables.get(old)) and raw.strip() and not (variables.get(new) or "").strip():
            values[new] = raw
    for field in Settings.model_fields.values():
        name = field.validation_alias
        if isinstance(name, str) and (raw := variables.get(name)) and raw.strip():
            values[name] = raw
    entries = _provider_entries(variables)
    provider_variables = _provider_variables(variables, entries)
    values["provider_entries"] = entries
    values["otlp_traces_endpoint"] = _otlp_traces_endpoint(variables)
    values["provider_variables"] = provider_variables
    if "TASKGATE_DEFAULT_MODEL" not in values:
        values["TASKGATE_DEFAULT_MODEL"] = _keyed_default_model(entries, provider_variables)
    return values


def _otlp_traces_endpoint(variables: Mapping[str, str]) -> str | None:
    """Where spans are exported, as the SDK would resolve it (the traces variable as it is, else the
    base endpoint plus /v1/traces), or None when export is off: no endpoint, OTEL_SDK_DISABLED, or
    OTEL_TRACES_EXPORTER=none. What Taskgate cannot do (another exporter or protocol, an endpoint
    that is not an http(s) URL) is refused rather than ignored."""
    def value(name: str) -> str:
        return variables.get(name, "").strip()

    if value("OTEL_SDK_DISABLED").lower() == "true":
        return None
    exporters = {item.strip().lower() for item in value("OTEL_TRACES_EXPORTER").split(",") if item.strip()}
    if exporters == {"none"}:
        return None
    if exporters - {"otlp"}:
        raise ConfigError(f"OTEL_TRACES_EXPORTER must be otlp or none (Taskgate exports over OTLP/HTTP only), "
                          f"got {value('OTEL_TRACES_EXPORTER')!r}")
    for name in OTLP_PROTOCOLS:
        if value(name) and value(name) != "http/protobuf":
            raise ConfigError(f"{name} must be http/protobuf (Taskgate exports over OTLP/HTTP with protobuf), "
                              f"got {value(name)!r}")
    traces, base = value(OTLP_TRACES_ENDPOINT), value(OTLP_ENDPOINT)
    name, endpoint = (OTLP_TRACES_ENDPOINT, traces) if traces else (OTLP_ENDPOINT, base.rstrip("/") + OTLP_TRACES_PATH)
    if not (traces or base):
        return None
    try:
        parsed = urlsplit(endpoint)
        usable = parsed.scheme in ("http", "https") and bool(parsed.hostname) and parsed.port != 0
    except ValueError:  # an unclosed [IPv6 bracket, a port out of range
        usable = False
    if not usable:
        raise ConfigError(f"{name} must be an http:// or https:// URL, got {value(name)!r}")
    return endpoint


def _provider_entries(variables: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The `[providers]` table of TASKGATE_PROVIDERS_FILE, then TASKGATE_PROVIDERS (JSON) over it."""
    entries: dict[str, dict[str, Any]] = {}
    if path := variables.get(PROVIDERS_FILE, "").strip():
        try:
            with open(path, "rb") as fh:
                table = tomllib.load(fh).get("providers", {})
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{PROVIDERS_FILE} cannot be read: {exc}") from None
        entries.update(_objects(table, PROVIDERS_FILE))
    if raw := variables.get(PROVIDERS, "").strip():
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            raise ConfigError(f"{PROVIDERS} is not valid JSON: {exc}") from None
        entries.update(_objects(parsed, PROVIDERS))
    return entries


def _objects(value: object, variable: str) -> dict[str, dict[str, Any]]:
    """Check that `value` maps provider names to objects, as both inputs must."""
    if not isinstance(value, dict) or not all(isinstance(entry, dict) for entry in value.values()):
        raise ConfigError(f'{variable} must map provider names to objects, like {{"acme": {{"base_url": "..."}}}}')
    return value


def _provider_variables(variables: Mapping[str, str], entries: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """The provider key and base-URL variables that are set: the presets' and those the entries name."""
    named = {entry.get(key) for entry in entries.values() for key in ("key_env", "base_url_env")}
    return {name: value for name, value in variables.items()
            if value and (name.endswith(PROVIDER_VARIABLE_SUFFIXES) or name in named)}


def _keyed_default_model(entries: Mapping[str, Mapping[str, Any]], provider_variables: Mapping[str, str]) -> str:
    """With no provider key configured, the bundled local model answers."""
    for provider, variable, model in KEYED_DEFAULT_MODELS:
        key_variable = entries.get(provider, {}).get("key_env", variable)  # an entry may move the key
        if key_variable and provider_variables.get(key_variable):
            return model
    return LOCAL_DEFAULT_MODEL


def _input_name(field_name: str) -> str:
    """A field's variable name, under which its override meets the environment's value."""
    alias = Settings.model_fields[field_name].validation_alias
    return alias if isinstance(alias, str) else field_name


_REASONS = {
    "greater_than": "must be greater than 0",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "string_pattern_mismatch": "must be written as provider/model",
    "redis_url": "must be a redis://, rediss:// or unix:// URL",
    "redis_prefix": "must be 1 to 64 letters, digits or _.:-",
    "fernet_key": "must be a Fernet key: 32 bytes in URL-safe base64 (44 characters)",
    "bool_parsing": "must be 1 or 0 (true or false)",
}


def _explain(error: ValidationError, variables: Mapping[str, str]) -> str:
    """`TASKGATE_X must be greater than 0, got '0'`, for each bad value, with the value as written."""
    problems = []
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else "settings"
        written = variables.get(name, item["input"])
        shown = f"a value of {len(str(written))} characters" if name in SECRET_VARIABLES else repr(written)
        problems.append(f"{name} {_REASONS.get(item['type'], item['msg'])}, got {shown}")
    return "; ".join(problems)
