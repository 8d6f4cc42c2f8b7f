"""Every environment variable Taskgate reads, typed and checked once at start-up (pydantic-settings).

A leaf: nothing here imports from taskgate, so any layer may take `Settings`, and no other module
reads the environment. `Settings.from_env()` reads `os.environ` (or the mapping a test passes) and
turns a bad value into a `ConfigError` naming its variable, which `taskgate serve` prints before
exiting with status 2. `Settings(...)` is the defaults plus the fields given; it reads nothing.

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
SECRET_VARIABLES = frozenset({"TASKGATE_SECRET_KEY"})  # a bad value is described, never printed
FERNET_KEY_BYTES = 32
FERNET_KEY_CHARS = 44
PROVIDERS_FILE = "TASKGATE_PROVIDERS_FILE"
# Rerank and OCR: the bounds of a rerank request, and the models each `GET .../models` lists when
# their provider is configured (any other model with a rerank API or vision may still be named).
DEFAULT_RERANK_MAX_DOCUMENTS = 1000
DEFAULT_RERANK_MAX_TEXT_CHARS = 32_768
DEFAULT_EMBEDDING_MODEL = "local/all-minilm-l6-v2"  # taskgate/providers/local/sentence_encoder.py
DEFAULT_RERANK_MODELS = ("cohere/rerank-v3.5", "jina/jina-reranker-v2-base-multilingual",
                         "together/Salesforce/Llama-Rank-V1", DEFAULT_EMBEDDING_MODEL)
DEFAULT_OCR_MAX_BYTES = 8 * 1024 * 1024
DEFAULT_OCR_MODELS = ("openai/gpt-4o-mini", "openai/gpt-4o", "anthropic/claude-sonnet-4-5")


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
    shutdown_grace_s: Seconds = Field(10.0, validation_alias="TASKGATE_SHUTDOWN_GRACE_SECONDS")
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
    # The Fernet key that encrypts stored secrets (custom models' API keys); unset, one is generated
    # into the data directory on first start (engine/secret_box.py).
    secret_key: Annotated[str | None, AfterValidator(_fernet_key)] = Field(
        None, validation_alias="TASKGATE_SECRET_KEY", repr=False)

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
    for field in Settings.model_fields.values():
        name = field.validation_alias
        if isinstance(name, str) and (raw := variables.get(name)) and raw.strip():
            values[name] = raw
    entries = _provider_entries(variables)
    provider_variables = _provider_variables(variables, entries)
    values["provider_entries"] = entries
    values["provider_variables"] = provider_variables
    if "TASKGATE_DEFAULT_MODEL" not in values:
        values["TASKGATE_DEFAULT_MODEL"] = _keyed_default_model(entries, provider_variables)
    return values


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
    "fernet_key": "must be a Fernet key: 32 bytes in URL-safe base64 (44 characters)",
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
