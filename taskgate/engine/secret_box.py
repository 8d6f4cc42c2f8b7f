"""Secrets at rest: what a caller hands us to pass on upstream (a custom model's API key) is stored
encrypted with Fernet, never as given, and is decrypted only to build that model's adapter.

The key is `TASKGATE_SECRET_KEY`, or, unset, a key generated into the data directory on first
start. Two replicas starting at once on one data directory must end up with the same key, so the
file is written whole under a temporary name and then hard-linked into place: a link never
replaces an existing file, so the first writer wins and every other one reads the winner's key.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from taskgate.errors import ProviderNotConfiguredError

KEY_FILE = "secret.key"
KEY_FILE_MODE = 0o600


class SecretBox:
    """Seals and opens the secrets the store keeps."""

    def __init__(self, key: str | bytes) -> None:
        self._fernet = Fernet(key)
        self._key = key.encode("ascii") if isinstance(key, str) else key

    def derived_key(self, purpose: str) -> bytes:
        """A key for `purpose` (signing file URLs) derived from this box's key, so replicas that share
        TASKGATE_SECRET_KEY accept each other's signatures, and one use's key reveals nothing of another's."""
        return hmac.new(self._key, purpose.encode(), hashlib.sha256).digest()

    @classmethod
    def ephemeral(cls) -> SecretBox:
        """A box whose key lives only as long as the process: for an engine built without a
        configured key (tests, embedders), whose secrets need not outlive it."""
        return cls(Fernet.generate_key())

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def open(self, sealed: str, what: str) -> str:
        """The secret; a token sealed under another key is a clear refusal naming `what`, so a
        server started with the wrong key keeps serving everything else."""
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, ValueError):
            raise ProviderNotConfiguredError(
                f"the stored secret of {what} cannot be decrypted with this server's TASKGATE_SECRET_KEY: "
                "start the server with the key it was stored under, or set the secret again"
            ) from None


def load_secret_key(configured: str | None, data_dir: Path) -> str:
    """`configured` (TASKGATE_SECRET_KEY) when set, else the data directory's key file, made on first use."""
    if configured:
        return configured
    path = data_dir / KEY_FILE
    with contextlib.suppress(FileNotFoundError):
        return _read_key(path)
    temporary = path.with_name(f".{KEY_FILE}.{os.getpid()}.{os.urandom(4).hex()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(Fernet.generate_key())
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another replica got there first: its key wins
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> str:
    key = path.read_text(encoding="ascii").strip()
    try:
        Fernet(key)
    except ValueError:
        raise ValueError(f"{path} does not hold a Fernet key: remove it to have a new one made "
                         "(secrets stored under the old key are then lost), or set TASKGATE_SECRET_KEY") from None
    return key
