"""Secrets at rest: what a caller hands us to pass on upstream (a custom model's API key) is stored
encrypted with Fernet, never as given, and is decrypted only to build that model's adapter.

The key is `TASKGATE_SECRET_KEY`, or, unset, a key generated into the data directory on first
start. Two replicas starting at once on one data directory must end up with the same key, so the
file is written whole under a temporary name and then hard-linked into place: a link never
replaces an existing file, so the first writer wins and every other one reads the winner's key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
from pathlib import Path
from typing import TYPE_CHECKING

from taskgate.errors import ProviderNotConfiguredError

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

KEY_FILE = "secret.key"
KEY_FILE_MODE = 0o600


class SecretBox:
    """Seals and opens the secrets the store keeps."""

    def __init__(self, key: str | bytes) -> None:
        self._key = key.encode("ascii") if isinstance(key, str) else key
        if not is_fernet_key(self._key):
            raise ValueError("a Fernet key is 32 bytes in URL-safe base64 (44 characters)")
        self._cipher: Fernet | None = None

    @property
    def _fernet(self) -> Fernet:
        """Built on first use: cryptography costs a worker about 8 MB, and most never seal a secret."""
        if self._cipher is None:
            from cryptography.fernet import Fernet

            self._cipher = Fernet(self._key)
        return self._cipher

    def derived_key(self, purpose: str) -> bytes:
        """A key for `purpose` (signing file URLs) derived from this box's key, so replicas that share
        TASKGATE_SECRET_KEY accept each other's signatures, and one use's key reveals nothing of another's."""
        return hmac.new(self._key, purpose.encode(), hashlib.sha256).digest()

    @classmethod
    def ephemeral(cls) -> SecretBox:
        """A box whose key lives only as long as the process: for an engine built without a
        configured key (tests, embedders), whose secrets need not outlive it."""
        return cls(new_fernet_key())

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def open(self, sealed: str, what: str) -> str:
        """The secret; a token sealed under another key is a clear refusal naming `what`, so a
        server started with the wrong key keeps serving everything else."""
        from cryptography.fernet import InvalidToken

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
            handle.write(new_fernet_key())
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another replica got there first: its key wins
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> str:
    key = path.read_text(encoding="ascii").strip()
    if not is_fernet_key(key.encode("ascii")):
        raise ValueError(f"{path} does not hold a Fernet key: remove it to have a new one made "
                         "(secrets stored under the old key are then lost), or set TASKGATE_SECRET_KEY") from None
    return key


def new_fernet_key() -> bytes:
    """What `Fernet.generate_key()` makes (32 random bytes in URL-safe base64), without importing it."""
    return base64.urlsafe_b64encode(os.urandom(32))


def is_fernet_key(key: bytes) -> bool:
    """The check `Fernet(key)` makes of its key: 32 bytes in URL-safe base64."""
    try:
        return len(base64.urlsafe_b64decode(key)) == 32
    except (binascii.Error, ValueError):
        return False
