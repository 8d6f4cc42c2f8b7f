"""One worker of `taskgate serve --workers N`, started by the supervisor (`python -m taskgate.server.worker`).

It serves the app on the listening socket the supervisor bound and passed down as a descriptor,
with the store already migrated and the data directory and secret key already made, and reaches
the local models through the supervisor's local model process. Settings come from the same
environment as the parent's, so every worker configures itself exactly as the parent checked.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

import uvicorn

from taskgate.config import ConfigError, Settings
from taskgate.server.access_log import configure_logging
from taskgate.server.parent_death import die_with_parent


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="taskgate-worker")
    parser.add_argument("--fd", type=int, required=True, help="the inherited listening socket")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--model-socket", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--resume-ingestion", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    die_with_parent()
    args = arguments(argv)
    configure_logging(args.log_level.upper())
    sys.setswitchinterval(0.0005)  # as `serve` does in one process (taskgate/cli.py)
    try:
        settings = Settings.from_env(data_dir=args.data_dir, host=args.host, port=args.port, workers=args.workers,
                                     local_model_socket=args.model_socket, store_prepared=True,
                                     resume_ingestion=args.resume_ingestion)
    except ConfigError as exc:
        print(f"taskgate worker: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    from taskgate.app import create_app
    from taskgate.server.uvicorn_options import server_options

    sock = socket.socket(fileno=args.fd)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), **server_options(settings)))
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
