"""Guard scan cost per KB of text, for the pii and secrets guards (target: at most 0.2 ms/KB).

A benchmark, not a test: it prints one line per guard and text. `prose` is English with numbers in
it (dates, times, amounts, order numbers: what makes the digit-based detectors look twice) and one
finding about every 300 characters; `table` is a CSV export of such rows, digits nearly throughout,
with a phone number and a card in every row: the hard case for the digit-based detectors. Each is
repeated to about 64 KB and scanned whole several times; the median and the best round's CPU time
are reported (the machine is shared: CPU time moves less than wall time with the neighbours' load,
and the best round is the least disturbed).

`table` repeats one row, and the pii scan reads a run of digits it has already seen in the same text
once: `unique` is the same table with every row different (its own date, amount, phone number and
card), so nothing repeats: it pays every check itself (a phone number's plan and a card's Luhn
check, a few µs each), and is the worst case the target holds for.

Run from a checkout: `python -m bench.guards [--kb 64] [--rounds 7]`.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from stdnum import luhn

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


def unique(kb: int) -> str:
    """`table` with every row its own: the same columns, values drawn from a seeded generator."""
    draw = random.Random(16)
    rows: list[str] = []
    size = index = 0
    while size < kb * 1024:
        card = f"4111111111{index:05d}"
        card += luhn.calc_check_digit(card)
        row = (f"{88213 + index},2024-{draw.randint(1, 12):02d}-{draw.randint(1, 28):02d} "
               f"{draw.randint(0, 23):02d}:{draw.randint(0, 59):02d}:00,"
               f"{draw.randint(100, 99999)}.{draw.randint(0, 99):02d},EUR,3,17,4.2.1,"
               f"+46 70 {draw.randint(100, 999)} {draw.randint(10, 99)} {draw.randint(10, 99)},"
               f"{card[:4]} {card[4:8]} {card[8:12]} {card[12:]},shipped\n")
        rows.append(row)
        size += len(row)
        index += 1
    return "".join(rows)


def ms_per_kb(scan: Callable[[str], list[Finding]], text: str, rounds: int) -> tuple[float, float, int]:
    """(median, best) CPU ms per KB over `rounds` scans, and the number of findings."""
    spent: list[float] = []
    found = 0
    for _ in range(rounds):
        started = time.process_time()
        found = len(scan(text))
        spent.append((time.process_time() - started) * 1000 / (len(text) / 1024))
    return statistics.median(spent), min(spent), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    for label, make in (("prose", prose), ("table", table), ("unique", unique)):
        text = make(args.kb)
        for name, scan in SCANS.items():
            median, best, found = ms_per_kb(scan, text, args.rounds)
            print(f"{name:8} {label:6} {median:.3f} CPU ms/KB median, {best:.3f} best  ({found} findings in "
                  f"{len(text) / 1024:.0f} KB; target <= 0.2)")


if __name__ == "__main__":
    main()
