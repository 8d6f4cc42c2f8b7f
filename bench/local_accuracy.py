"""How often the bundled local model answers right, not only validly, on an offline task set.

`bench/local_tasks.json` holds small tasks of three kinds (facts, extraction, classification), each
with an input, input and output schemas, sometimes the caller's examples, and the expected answer.
Every task goes the way a v2 call goes: the engine's messages (`build_messages`), then the local
adapter with the output schema as structured output, greedy. A task counts as right when every
expected field matches: numbers, booleans and enum values exactly; free text case-insensitively, or
as a whole word of an answer of at most three words ("Japanese yen" for "yen").

    .venv/bin/python bench/local_accuracy.py                     # this checkout
    .venv/bin/python bench/local_accuracy.py --tree /work/main   # another checkout's taskgate

The script runs itself again in a fresh interpreter that imports the checkout's `taskgate` (this
one's, or `--tree`'s for a before/after in one session); the task set is always this one's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TASKS = ROOT / "bench" / "local_tasks.json"
MODEL = "gemma-3-270m"
WORDS_IN_A_SHORT_ANSWER = 3


def matches(expected: Any, actual: Any) -> bool:
    """Whether one answered field is the expected one (see the module docstring)."""
    if isinstance(expected, str) and isinstance(actual, str):
        want, got = expected.strip().casefold(), actual.strip().casefold()
        if want == got:
            return True
        words = re.findall(r"[\w.@'-]+", got)
        return len(words) <= WORDS_IN_A_SHORT_ANSWER and want in words
    return type(expected) is type(actual) and bool(expected == actual)


def right(expected: dict[str, Any], payload: Any) -> bool:
    return isinstance(payload, dict) and all(matches(v, payload.get(k)) for k, v in expected.items())


async def run_tasks(tasks: list[dict[str, Any]], data_dir: Path, verbose: bool) -> dict[str, Any]:
    import orjson

    from taskgate.config import Settings
    from taskgate.engine.prompt import build_messages
    from taskgate.engine.task import Example, Task
    from taskgate.providers.base import ChatRequest, StructuredOutput
    from taskgate.providers.local.adapter import LocalAdapter

    adapter = LocalAdapter(Settings(data_dir=data_dir))
    scores: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    started = time.perf_counter()
    try:
        for spec in tasks:
            task = Task(project_id="bench", function_name=spec["name"], input=spec["input"],
                        instructions=spec["instructions"], input_schema=spec["input_schema"],
                        output_schema=spec["output_schema"])
            examples = [Example(e["input"], e["output"]) for e in spec["examples"]]
            request = ChatRequest(model=MODEL, messages=build_messages(task, examples),
                                  structured=StructuredOutput(spec["output_schema"]), options={"seed": 0})
            asked = time.perf_counter()
            response = await adapter.complete(request)
            seconds = time.perf_counter() - asked
            try:
                payload = orjson.loads(response.text)
            except orjson.JSONDecodeError:
                payload = None
            ok = right(spec["expected"], payload)
            totals[spec["kind"]] += 1
            scores[spec["kind"]] += ok
            if verbose:
                print(f"{'ok ' if ok else 'BAD'} {spec['kind']:<15}{spec['name'][:34]:<36}{seconds:>5.1f}s  "
                      f"{response.text[:70]}")
    finally:
        await adapter.aclose()
    return {"right": dict(scores), "total": dict(totals), "seconds": time.perf_counter() - started}


def report(result: dict[str, Any], label: str) -> None:
    right_all, total_all = sum(result["right"].values()), sum(result["total"].values())
    print(f"\n{label}: {right_all}/{total_all} right ({100 * right_all / total_all:.0f}%) "
          f"in {result['seconds']:.0f} s")
    for kind, total in sorted(result["total"].items()):
        print(f"  {kind:<16}{result['right'].get(kind, 0):>3}/{total}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout whose taskgate to measure")
    parser.add_argument("--quiet", action="store_true", help="only the totals, not one line per task")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.child:
        tree = args.tree.resolve()
        env = {**os.environ, "PYTHONPATH": str(tree)}
        command = [sys.executable, str(Path(__file__).resolve()), "--child"]
        command += [flag for flag, on in (("--quiet", args.quiet), ("--json", args.json)) if on]
        raise SystemExit(subprocess.run(command, env=env, cwd=tree, check=False).returncode)
    import taskgate

    tasks = json.loads(TASKS.read_text())["tasks"]
    with tempfile.TemporaryDirectory(prefix="taskgate-bench-accuracy-") as data_dir:
        result = asyncio.run(run_tasks(tasks, Path(data_dir), not args.quiet))
    source = str(Path(taskgate.__file__).resolve().parent.parent)
    if args.json:
        print(json.dumps({"tree": source, **result}))
    else:
        report(result, f"local/{MODEL}, taskgate from {source}")


if __name__ == "__main__":
    main()
