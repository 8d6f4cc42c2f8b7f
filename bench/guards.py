"""Guard scan cost per KB of text, for the pii and secrets guards (target: at most 0.2 ms/KB).

A benchmark, not a test: it prints one line per guard and text. `prose` is English with numbers in
it (dates, times, amounts, order numbers: what makes the digit-based detectors look twice) and one
finding about every 300 characters; `table` is a CSV export of such rows, digits nearly throughout,
with a phone number and a card in every row: the hard case for the digit-based detectors. Each is
repeated to about 64 KB and scanned whole several times; the best round's CPU time is reported (the
machine is shared: CPU time moves less than wall time with the neighbours' load, and the best round
is the least disturbed).

Run from a checkout: `python -m bench.guards [--kb 64] [--rounds 7]`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from taskgate.engine.guards.findings import Finding
from taskgate.engine.guards.pii_scan import scan_pii
from taskgate.engine.guards.secret_scan import scan_secrets

PROSE = (
    "On 2024-05-12 at 10:30 the team met to review order 88213 and the Q2 budget of 14,500 EUR. "
    "Anna said the rollout to 3 regions went well, though 2 of 17 servers needed a restart after "
    "version 4.2.1 shipped. The next review is planned for June, and everyone should read the notes first. "
)
FINDINGS = (
    "Write to anna.berg@example.com about it. ",
    "Call her on +46 70 123 45 67 before noon. ",
    "The card on file is 4111 1111 1111 1111. ",
    "Pay to DE89 3704 0044 0532 0130 00 please. ",
    "The deploy key is AKIAIOSFODNN7EXAMPLE for now. ",
    "Connect with postgres://app:hunter2@db.internal/app today. ",
)
ROW = "88213,2024-05-12 10:30:00,14500.00,EUR,3,17,4.2.1,+46 70 123 45 67,4111 1111 1111 1111,shipped\n"
SCANS: dict[str, Callable[[str], list[Finding]]] = {"pii": scan_pii, "secrets": scan_secrets}


def prose(kb: int) -> str:
    parts: list[str] = []
    size = index = 0
    while size < kb * 1024:
        part = PROSE + FINDINGS[index % len(FINDINGS)]
        parts.append(part)
        size += len(part)
        index += 1
    return "".join(parts)


def table(kb: int) -> str:
    return ROW * (kb * 1024 // len(ROW) + 1)


def best_ms_per_kb(scan: Callable[[str], list[Finding]], text: str, rounds: int) -> tuple[float, int]:
    best = float("inf")
    found = 0
    for _ in range(rounds):
        started = time.process_time()
        found = len(scan(text))
        best = min(best, time.process_time() - started)
    return best * 1000 / (len(text) / 1024), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    for label, make in (("prose", prose), ("table", table)):
        text = make(args.kb)
        for name, scan in SCANS.items():
            ms, found = best_ms_per_kb(scan, text, args.rounds)
            print(f"{name:8} {label:6} {ms:.3f} CPU ms/KB  ({found} findings in {len(text) / 1024:.0f} KB; "
                  "target <= 0.2)")


if __name__ == "__main__":
    main()
