"""Several `taskgate serve` replicas on one Postgres and one Redis, and a throwaway Redis to kill.

`ReplicaSet` starts N servers sharing a database, a Redis (under a key prefix of their own, deleted
at the end) and a secret key, each with its own data directory, all answering with the same fake
provider; `next()` spreads calls over them in turn. `ThrowawayRedis` is a `redis-server` on a free
port in a temporary directory, for tests that need Redis to die: the machine's shared Redis is
never stopped.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess, free_port
from tests.http_client import Reply, request

SHARED_REDIS = "redis://127.0.0.1:6379/0"


def redis_unreachable(url: str = SHARED_REDIS) -> str | None:
    """Why the Redis at `url` cannot be used (tests skip with it), or None when it answers."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"Redis not reachable at {url}: {exc}"
    finally:
        client.close()
    return None


def delete_prefix(url: str, prefix: str) -> None:
    """Remove every key under `prefix` (a test's own), leaving the rest of the Redis alone."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        for key in client.scan_iter(match=f"{prefix}*", count=500):
            client.delete(key)
    except redis.RedisError:
        pass  # a killed throwaway Redis has nothing left to clean
    finally:
        client.close()


class ThrowawayRedis:
    """`redis-server` on a free loopback port, no persistence, in `directory`; `kill()` and `start()` again."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @staticmethod
    def missing() -> str | None:
        return None if shutil.which("redis-server") else "redis-server is not installed (apt-get install redis-server)"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while redis_unreachable(self.url) is not None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: the way Redis goes away when its machine or process dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> ThrowawayRedis:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


class ReplicaSet:
    """`count` servers on `database_url` and `redis_url` (under a fresh key prefix)."""

    def __init__(self, fake: FakeProvider, root: Path, database_url: str, redis_url: str, count: int = 3,
                 env: Mapping[str, str] | None = None) -> None:
        self.redis_url = redis_url
        self.prefix = f"tgtest-{uuid.uuid4().hex[:10]}:"
        shared = {"TASKGATE_DATABASE_URL": database_url, "TASKGATE_REDIS_URL": redis_url,
                  "TASKGATE_REDIS_PREFIX": self.prefix, "TASKGATE_SECRET_KEY": Fernet.generate_key().decode(),
                  **(env or {})}
        self.servers = [ServerProcess(fake, Path(root) / f"replica-{index}", env=shared) for index in range(count)]
        self._turn = itertools.cycle(range(count))

    def start(self) -> None:
        """The first server alone (it migrates the database), then the others."""
        try:
            for server in self.servers:
                server.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        delete_prefix(self.redis_url, self.prefix)

    def next(self) -> ServerProcess:
        """The replica whose turn it is: calls spread round-robin, as a load balancer would."""
        return self.servers[next(self._turn)]

    def send(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[ServerProcess, Reply]:
        """`method path` on the next replica; which one answered comes back with the reply."""
        server = self.next()
        return server, request(method, server.url + path, body, **kw)

    def stderr(self) -> str:
        return "\n".join(f"--- replica {index}\n{server.stderr_text()}" for index, server in enumerate(self.servers))

    def __enter__(self) -> ReplicaSet:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
