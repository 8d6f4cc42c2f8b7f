"""Where the gateway's CPU goes under a benchmark load: py-spy samples, summed per frame.

py-spy attaches to the running server from outside (no code change, no wrapper), so the profile
is of the very process the benchmark timed. It samples without pausing the target
(`--nonblocking`) and keeps only samples of the thread holding the GIL (`--gil`): a thread parked
on a queue or the event loop waiting in epoll is not work, and would otherwise swamp the figures.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from bench.common import ROOT

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")
_LIBRARY = re.compile(r".*/(?:site-packages|dist-packages|lib/python3\.\d+)/")
_ENTRY = "(taskgate/cli.py)"  # the server's entry point sits under every event-loop sample


def py_spy() -> str:
    """The py-spy next to this interpreter (the venv), else one on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    return found


@contextlib.contextmanager
def recording(pid: int, raw_path: Path, rate: int = 500) -> Iterator[None]:
    """Sample `pid` for the duration of the block into py-spy's collapsed-stack format."""
    proc = subprocess.Popen(
        [py_spy(), "record", "--pid", str(pid), "--format", "raw", "--output", str(raw_path),
         "--rate", str(rate), "--nonblocking", "--gil", "--full-filenames"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)  # py-spy writes its output when interrupted
        _, err = proc.communicate(timeout=60)
        if not raw_path.exists():
            raise SystemExit(f"py-spy wrote no profile: {err.decode()[-2000:]}")


def _short(file: str) -> str:
    file = _LIBRARY.sub("", file)
    with contextlib.suppress(ValueError):
        file = str(Path(file).relative_to(ROOT))
    return file


def _frame_key(frame: str, with_line: bool) -> str:
    match = _FRAME.match(frame)
    if match is None:
        return frame
    where = _short(match["file"])
    if with_line and match["line"]:
        where += f":{match['line']}"
    return f"{match['func']} ({where})"


def summarise(raw_path: Path, top: int = 20) -> list[str]:
    """Top frames by self time (file:line) and top Taskgate functions by inclusive time, as printable lines.

    Inclusive time is listed for `taskgate/` functions only: library and start-up frames that sit
    under every sample (uvicorn, typer, the event loop) would fill the list and say nothing.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw_path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[_frame_key(frames[-1], with_line=True)] += count
        for key in {_frame_key(frame, with_line=False) for frame in frames}:
            if "(taskgate/" in key and not key.endswith(_ENTRY):
                inclusive[key] += count
    if not total:
        return ["no samples holding the GIL were recorded"]
    lines = [f"{total} samples holding the GIL", f"top {top} by self time (where the CPU is, file:line):"]
    lines += [f"  {100 * n / total:5.1f}%  {key}" for key, n in own.most_common(top)]
    lines.append(f"top {top} taskgate/ functions by inclusive time (the function and all it calls):")
    lines += [f"  {100 * n / total:5.1f}%  {key}" for key, n in inclusive.most_common(top)]
    return lines
