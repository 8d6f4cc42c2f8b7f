"""Settings from the environment and the command line, read once at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from taskgate.engine.limits import CallLimits
from taskgate.providers.catalog import ProviderPreset, configured_providers, load_presets

LOCAL_DEFAULT_MODEL = "local/gemma-3-270m"


@dataclass(slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path(".taskgate")
    database_url: str | None = None  # a SQLAlchemy URL; default: SQLite in data_dir
    api_keys: list[str] = field(default_factory=list)  # bootstrap keys, all in project "default"
    default_model: str = LOCAL_DEFAULT_MODEL
    max_body_bytes: int = 10 * 1024 * 1024
    request_timeout_s: float = 120.0
    heartbeat_s: float = 15.0
    span_flush_interval_s: float = 1.0
    local_models: dict[str, str] = field(default_factory=dict)  # name -> GGUF path
    local_concurrency: int = 1
    local_queue_size: int = 16
    limits: CallLimits = field(default_factory=CallLimits)  # what one request may cost upstream
    shutdown_grace_s: float = 10.0  # how long in-flight requests may finish after SIGTERM
    presets: dict[str, ProviderPreset] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    # How large a request head may be and how long a request may take to arrive (slow clients).
    max_header_bytes: int = 64 * 1024
    header_timeout_s: float = 10.0
    body_idle_timeout_s: float = 30.0
    body_timeout_s: float = 300.0

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'taskgate.db').resolve()}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = dict(os.environ if env is None else env)
        presets = load_presets(env)
        fallback_default = _default_model(presets, env)
        limits = CallLimits()
        settings = cls(
            data_dir=Path(env.get("TASKGATE_DATA_DIR", ".taskgate")),
            database_url=env.get("TASKGATE_DATABASE_URL") or None,
            api_keys=[k.strip() for k in env.get("TASKGATE_API_KEYS", "").split(",") if k.strip()],
            default_model=env.get("TASKGATE_DEFAULT_MODEL") or fallback_default,
            max_body_bytes=int(_positive(env, "TASKGATE_MAX_BODY_BYTES", 10 * 1024 * 1024)),
            request_timeout_s=_positive(env, "TASKGATE_REQUEST_TIMEOUT", 120.0),
            heartbeat_s=_positive(env, "TASKGATE_HEARTBEAT_SECONDS", 15.0),
            span_flush_interval_s=_positive(env, "TASKGATE_SPAN_FLUSH_SECONDS", 1.0),
            local_models=_parse_local_models(env.get("TASKGATE_LOCAL_MODELS", "")),
            local_concurrency=int(_positive(env, "TASKGATE_LOCAL_CONCURRENCY", 1)),
            local_queue_size=int(_positive(env, "TASKGATE_LOCAL_QUEUE", 16)),
            limits=CallLimits(
                max_attempts=_positive_int(env, "TASKGATE_MAX_ATTEMPTS", limits.max_attempts),
                max_upstream_calls=_positive_int(env, "TASKGATE_MAX_UPSTREAM_CALLS", limits.max_upstream_calls),
                max_request_tokens=_positive_int(env, "TASKGATE_MAX_REQUEST_TOKENS", limits.max_request_tokens),
            ),
            shutdown_grace_s=_positive(env, "TASKGATE_SHUTDOWN_GRACE_SECONDS", 10.0),
            presets=presets,
            env=env,
            max_header_bytes=int(_positive(env, "TASKGATE_MAX_HEADER_BYTES", 64 * 1024)),
            header_timeout_s=_positive(env, "TASKGATE_HEADER_TIMEOUT", 10.0),
            body_idle_timeout_s=_positive(env, "TASKGATE_BODY_IDLE_TIMEOUT", 30.0),
            body_timeout_s=_positive(env, "TASKGATE_BODY_TIMEOUT", 300.0),
        )
        for key, value in overrides.items():
            if value is not None:
                setattr(settings, key, value)
        return settings


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the variable."""


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be greater than 0, got {raw!r}")
    return value


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be greater than 0, got {raw!r}")
    return value


def _default_model(presets: Mapping[str, ProviderPreset], env: Mapping[str, str]) -> str:
    """With no provider key configured, the bundled local model answers."""
    configured = configured_providers(presets, env)
    if "openai" in configured:
        return "openai/gpt-4o-mini"
    if "anthropic" in configured:
        return "anthropic/claude-haiku-4-5"
    return LOCAL_DEFAULT_MODEL


def _parse_local_models(raw: str) -> dict[str, str]:
    """`name=/path/a.gguf,other=/path/b.gguf` -> {name: path}."""
    models = {}
    for item in raw.split(","):
        name, sep, path = item.partition("=")
        if sep and name.strip() and path.strip():
            models[name.strip()] = path.strip()
    return models
