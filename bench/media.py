"""Media check cost: what typing a call's media (`engine.media.typed_messages`: base64 decoded and
checked, type sniffed, part built) and keeping its span digest (`media.summarised`: decoded again
and hashed) cost per MB of media, for an image, an audio file and a PDF.

A benchmark, not a test: one line per kind, with the median and best round's CPU ms per MB of the
decoded media. Run from a checkout: `python -m bench.media [--mb 4] [--rounds 7]`.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import time
from collections.abc import Callable
from typing import Any

from taskgate.engine.media import summarised, typed_messages

SIGNATURES = {"image/png": b"\x89PNG\r\n\x1a\n", "audio/wav": b"RIFF\x00\x00\x00\x00WAVEfmt ",
              "application/pdf": b"%PDF-1.7\n"}


def conversation(media_type: str, size: int) -> list[dict[str, Any]]:
    data = SIGNATURES[media_type] + bytes(range(256)) * (size // 256)
    url = f"data:{media_type};base64,{base64.b64encode(data).decode()}"
    return [{"role": "user", "content": [{"type": "text", "text": "Describe it"},
                                         {"type": "image_url", "image_url": {"url": url}}]}]


def cpu_ms(work: Callable[[], object], rounds: int) -> tuple[float, float]:
    times = []
    for _ in range(rounds):
        start = time.process_time()
        work()
        times.append((time.process_time() - start) * 1000)
    return statistics.median(times), min(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    size = args.mb * 1024 * 1024
    for media_type in SIGNATURES:
        messages = conversation(media_type, size)
        check = cpu_ms(lambda messages=messages: typed_messages(messages, size * 2), args.rounds)  # type: ignore[misc]
        digest = cpu_ms(lambda messages=messages: summarised(messages), args.rounds)  # type: ignore[misc]
        print(f"{media_type:16} check {check[0] / args.mb:6.2f} ms/MB (best {check[1] / args.mb:.2f})   "
              f"span digest {digest[0] / args.mb:6.2f} ms/MB (best {digest[1] / args.mb:.2f})")


if __name__ == "__main__":
    main()
