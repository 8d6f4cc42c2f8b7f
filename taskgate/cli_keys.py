"""`taskgate keys ...` and `taskgate projects ...`: API keys, their limits and usage, and projects'
limits, straight on the store (the operator's tools: they need no running server and no key).

`keys create` prints the new key alone on stdout (scripts capture it) and its id on stderr; every
other command prints JSON. A running server reads a change within `server.auth.REFRESH_S`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from taskgate.config import ConfigError, Settings
from taskgate.engine.quotas.counters import LocalCounters
from taskgate.engine.quotas.gate import QuotaGate
from taskgate.engine.quotas.keys import LIMIT_FIELDS, KeyService, key_body, limits_body
from taskgate.engine.quotas.ledger import UsageLedger
from taskgate.errors import NotFoundError, TaskgateError
from taskgate.providers.registry import ProviderRegistry
from taskgate.store import open_store
from taskgate.store.database import private_directory

T = TypeVar("T")
keys = typer.Typer(no_args_is_help=True, help="Manage API keys, their limits and their usage.")
projects = typer.Typer(no_args_is_help=True, help="Manage projects' limits and read their usage.")

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Where the SQLite store lives (TASKGATE_DATA_DIR).")]
Project = Annotated[str, typer.Option("--project", help="The project the key belongs to.")]
KeyId = Annotated[str, typer.Argument(help="The key's id (`taskgate keys list`).")]
Rpm = Annotated[int | None, typer.Option("--rpm", help="Requests per minute.")]
Tpm = Annotated[int | None, typer.Option("--tpm", help="Tokens (input + output) per minute.")]
Budget = Annotated[float | None, typer.Option("--budget-usd", help="USD that may be spent per period.")]
Period = Annotated[str | None, typer.Option("--period", help="The budget's period: day or month (UTC).")]
Models = Annotated[str | None, typer.Option(
    "--models", help="Allowed models, comma-separated globs: 'openai/*,anthropic/claude-*'.")]
Clear = Annotated[str | None, typer.Option(
    "--clear", help="Limits to remove, comma-separated: rpm, tpm, budget_usd, models.")]


def _limits(rpm: int | None, tpm: int | None, budget: float | None, period: str | None, models: str | None,
            clear: str | None = None) -> dict[str, Any]:
    """The limit options given, as the admin API's body (checked by the same `KeyService`)."""
    body: dict[str, Any] = {}
    for name in [part.strip() for part in (clear or "").split(",") if part.strip()]:
        if name not in LIMIT_FIELDS or name == "period":
            _fail(2, f"--clear takes {', '.join(f for f in LIMIT_FIELDS if f != 'period')}, got '{name}'")
        body[name] = None
    given = {"rpm": rpm, "tpm": tpm, "budget_usd": budget, "period": period,
             "models": None if models is None else [part.strip() for part in models.split(",")]}
    for name, value in given.items():
        if value is not None:
            if name in body:
                _fail(2, f"--{name.replace('_', '-')} and --clear {name} contradict each other")
            body[name] = value
    return body


def _run(data_dir: Path | None, work: Callable[[KeyService], Awaitable[T]]) -> T:
    """`work` on the store's key service; a refused input exits with status 2, an unknown key or project with 1."""
    try:
        settings = Settings.from_env(data_dir=data_dir)
    except ConfigError as exc:
        _fail(2, str(exc))

    async def run() -> T:
        private_directory(settings.data_dir)
        store = await open_store(settings.effective_database_url)
        ledger = UsageLedger(store.keys)

        async def names(project_id: str) -> list[str]:
            customs, aliases = await store.all_model_names(project_id)
            return [*(c.name for c in customs), *(a.name for a in aliases)]

        service = KeyService(store.keys, QuotaGate(LocalCounters(ledger.spent), ledger),
                             ProviderRegistry(settings).known(), names)
        try:
            return await work(service)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except TaskgateError as exc:
        _fail(1 if isinstance(exc, NotFoundError) else 2, exc.detail)


def _fail(status: int, message: str) -> NoReturn:
    typer.echo(f"taskgate: {message}", err=True)
    raise typer.Exit(status)


def _show(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


@keys.command("create")
def create_key(project: Project, data_dir: DataDir = None,
               name: Annotated[str | None, typer.Option("--name", help="A name to tell the key by.")] = None,
               admin: Annotated[bool, typer.Option("--admin", help="May use the admin API (no limits).")] = False,
               rpm: Rpm = None, tpm: Tpm = None, budget_usd: Budget = None, period: Period = None,
               models: Models = None) -> None:
    """Create an API key for PROJECT. It is printed once; only its hash is stored."""
    body = {**_limits(rpm, tpm, budget_usd, period, models), "admin": admin,
            **({"name": name} if name is not None else {})}

    async def create(service: KeyService) -> tuple[str, str]:
        record, secret = await service.create(await service.ensure_project(project), body)
        return record.id, secret

    key_id, secret = _run(data_dir, create)
    typer.echo(f"key id: {key_id}", err=True)
    typer.echo(secret)


@keys.command("update")
def update_key(key_id: KeyId, project: Project, data_dir: DataDir = None,
               name: Annotated[str | None, typer.Option("--name", help="A new name.")] = None,
               rpm: Rpm = None, tpm: Tpm = None, budget_usd: Budget = None, period: Period = None,
               models: Models = None, clear: Clear = None) -> None:
    """Change a key's limits (or name); --clear removes limits."""
    body = {**_limits(rpm, tpm, budget_usd, period, models, clear), **({"name": name} if name is not None else {})}
    if not body:
        _fail(2, "nothing to change: give a limit (--rpm, --tpm, --budget-usd, --period, --models), --clear or --name")

    async def update(service: KeyService) -> dict[str, Any]:
        return key_body(await service.update(await service.project_id(project), key_id, body))

    _show(_run(data_dir, update))


@keys.command("list")
def list_keys(project: Project, data_dir: DataDir = None,
              revoked: Annotated[bool, typer.Option("--all", help="Revoked keys too.")] = False) -> None:
    """The project's keys (never their secrets) and their limits."""

    async def listing(service: KeyService) -> list[dict[str, Any]]:
        return [key_body(record) for record in await service.list(await service.project_id(project), revoked)]

    _show(_run(data_dir, listing))


@keys.command("revoke")
def revoke_key(key_id: KeyId, project: Project, data_dir: DataDir = None) -> None:
    """Revoke a key: it stops authenticating (on running servers within seconds); its usage stays readable."""

    async def revoke(service: KeyService) -> dict[str, Any]:
        return key_body(await service.revoke(await service.project_id(project), key_id))

    _show(_run(data_dir, revoke))


@keys.command("usage")
def key_usage(key_id: KeyId, project: Project, data_dir: DataDir = None) -> None:
    """A key's requests, tokens and cost today and this month, and its budget's state."""

    async def usage(service: KeyService) -> dict[str, Any]:
        return {"key_id": key_id, **await service.key_usage(await service.project_id(project), key_id)}

    _show(_run(data_dir, usage))


@projects.command("limits")
def project_limits(project: Annotated[str, typer.Argument(help="The project's name.")], data_dir: DataDir = None,
                   rpm: Rpm = None, tpm: Tpm = None, budget_usd: Budget = None, period: Period = None,
                   models: Models = None, clear: Clear = None) -> None:
    """Show a project's limits, or set them (they bound every key of the project, admin keys included)."""
    body = _limits(rpm, tpm, budget_usd, period, models, clear)

    async def limits(service: KeyService) -> dict[str, Any]:
        project_id = await service.project_id(project)
        stored = (await service.set_project_limits(project_id, body) if body
                  else await service.project_limits(project_id))
        return {"project": project, "project_id": project_id, "limits": limits_body(stored)}

    _show(_run(data_dir, limits))


@projects.command("usage")
def project_usage(project: Annotated[str, typer.Argument(help="The project's name.")],
                  data_dir: DataDir = None) -> None:
    """A project's requests, tokens and cost today and this month, and its budget's state."""

    async def usage(service: KeyService) -> dict[str, Any]:
        project_id = await service.project_id(project)
        return {"project": project, "project_id": project_id, **await service.project_usage(project_id)}

    _show(_run(data_dir, usage))
