"""Personal data in text: each kind found by a cheap pattern, then confirmed by its own rule.

A pattern only proposes a candidate; the confirmation is what keeps near-misses out: card numbers
must pass the Luhn check (`stdnum.luhn`), IBANs their mod-97 checksum (`stdnum.iban`), national
IDs their country's check digits (`stdnum`), phone numbers Google's numbering plan
(`phonenumbers`), IP addresses `ipaddress`. Person names are found only where the text announces
them (a title such as "Dr.", or "my name is"): a detector that finds names anywhere needs a
statistical model far larger than this server, and guessing from capital letters would flag
every sentence start.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator

import phonenumbers
from stdnum import iban, luhn
from stdnum.es import dni
from stdnum.fi import hetu
from stdnum.fr import nir
from stdnum.it import codicefiscale
from stdnum.no import fodselsnummer
from stdnum.se import personnummer
from stdnum.us import ssn

from taskgate.engine.guards.findings import Finding

PII = "pii"
PII_KINDS = frozenset({"email", "phone", "card", "iban", "national_id", "ip_address", "person_name"})

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}")
_IBAN = re.compile(r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_CODICE_FISCALE = re.compile(r"[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z]\b")
_TITLED_NAME = re.compile(r"(?:M[rsx]|Mrs|Miss|Dr|Prof|Sir|Dame)\.? ([A-Z][a-z]+(?: [A-Z][a-z]+){0,2})\b")
_STATED_NAME = re.compile(r"(?:[Mm]y name is|[Nn]ame:|I am called|[Rr]egards,|[Ss]incerely,)\s+"
                          r"([A-Z][a-z]+(?: [A-Z][a-z]+){0,2})\b")

# The kinds written with digits (cards, phones, national IDs, IPv4 addresses) are looked for only
# inside runs of digits and separators, found in one pass: prose has few runs, so the patterns
# below mostly read a few short strings instead of the whole text each.
# Runs of at least 7 characters ("1.1.1.1", the shortest kind); "A" is a Finnish ID's century sign.
_DIGIT_RUN = re.compile(r"[+(]?\d[\dA .()/:+-]{5,}\d[A-Z]?")
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
_PHONE = re.compile(r"(?<![\w+])(?:\+|00)[1-9][\d\s().-]{5,18}\d(?!\w)"  # international
                    r"|(?<![\w+-])(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w-])")  # US national
# National IDs whose number carries a check digit or a checked date, in a shape distinctive
# enough to look for: (shortest match, pattern, `stdnum` validator).
_NATIONAL_IDS: tuple[tuple[int, re.Pattern[str], Callable[[str], bool]], ...] = (
    (11, re.compile(r"\b\d{6}[-+A]\d{3}[0-9A-Y]\b"), hetu.is_valid),  # Finland
    (11, re.compile(r"\b(?:\d{2})?\d{6}[-+]\d{4}\b"), personnummer.is_valid),  # Sweden
    (11, re.compile(r"\b\d{6} ?\d{5}\b"), fodselsnummer.is_valid),  # Norway
    (11, re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), ssn.is_valid),  # United States
    (9, re.compile(r"\b\d{8}-?[A-Z]\b"), dni.is_valid),  # Spain
    (15, re.compile(r"\b[12] ?\d{2} ?\d{2} ?\d{2} ?\d{3} ?\d{3} ?\d{2}\b"), nir.is_valid),  # France
)


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _emails(text: str) -> Iterator[Finding]:
    if "@" in text:
        for match in _EMAIL.finditer(text):
            yield Finding(PII, "email", *match.span())


def _ibans(text: str) -> Iterator[Finding]:
    """The longest prefix, by space-separated groups, that checks out: a greedy candidate may have
    taken the start of the next word."""
    for match in _IBAN.finditer(text):
        candidate = match.group()
        while True:
            if iban.is_valid(candidate):
                yield Finding(PII, "iban", match.start(), match.start() + len(candidate))
                break
            cut = candidate.rfind(" ")
            if cut < 15:
                break
            candidate = candidate[:cut]


def _italian_ids(text: str) -> Iterator[Finding]:
    for match in _CODICE_FISCALE.finditer(text):
        if codicefiscale.is_valid(match.group()):
            yield Finding(PII, "national_id", *match.span())


def _ipv6(text: str) -> Iterator[Finding]:
    if ":" in text:
        for match in _IPV6.finditer(text):
            if _is_ip(match.group()):
                yield Finding(PII, "ip_address", *match.span())


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_card(text: str) -> bool:
    number = _digits(text)
    return len(set(number)) > 1 and luhn.is_valid(number)


def _is_phone(text: str) -> bool:
    """International numbers (+ or 00) against every plan; others only in the US national format
    (`(415) 555-2671`, `415-555-2671`), the one common in English text without a country code:
    a bare run of digits is more often an order number or a date than a phone number."""
    international = text.startswith(("+", "00"))
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, None if international else "US")
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number)


# (kind, the shortest text it can be, pattern, check): a run shorter than a kind's shortest is
# not even read by its pattern.
_IN_RUNS: tuple[tuple[str, int, re.Pattern[str], Callable[[str], bool]], ...] = (
    ("card", 13, _CARD, _is_card),
    ("ip_address", 7, _IPV4, _is_ip),
    ("phone", 8, _PHONE, _is_phone),
    *(("national_id", shortest, pattern, is_valid) for shortest, pattern, is_valid in _NATIONAL_IDS),
)


def _numbers(text: str) -> Iterator[Finding]:
    for run in _DIGIT_RUN.finditer(text):
        offset, value = run.start(), run.group()
        for kind, shortest, pattern, is_valid in _IN_RUNS:
            if len(value) < shortest:
                continue
            for match in pattern.finditer(value):
                if is_valid(match.group()):
                    yield Finding(PII, kind, offset + match.start(), offset + match.end())


def _names(text: str) -> Iterator[Finding]:
    for pattern in (_TITLED_NAME, _STATED_NAME):
        for match in pattern.finditer(text):
            yield Finding(PII, "person_name", *match.span(1))


_DETECTORS: tuple[Callable[[str], Iterator[Finding]], ...] = (_emails, _numbers, _ibans, _italian_ids, _ipv6, _names)


def scan_pii(text: str) -> list[Finding]:
    """Every piece of personal data in `text`, possibly overlapping."""
    return [finding for detector in _DETECTORS for finding in detector(text)]
