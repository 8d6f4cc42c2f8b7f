"""The local model process of `serve --workers N`, started by the supervisor
(`python -m taskgate.processes.model`): it serves `providers.local.model_process` on a Unix socket
and ends with its parent."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from taskgate.config import ConfigError, Settings
from taskgate.providers.local.model_process import serve
from taskgate.server.access_log import configure_logging
from taskgate.server.parent_death import die_with_parent


def main(argv: list[str] | None = None) -> None:
    die_with_parent()
    parser = argparse.ArgumentParser(prog="taskgate-local-models")
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    configure_logging(args.log_level.upper())
    sys.setswitchinterval(0.0005)
    try:
        settings = Settings.from_env(data_dir=args.data_dir)
    except ConfigError as exc:
        print(f"taskgate local model process: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    asyncio.run(serve(settings, args.socket))


if __name__ == "__main__":
    main()
