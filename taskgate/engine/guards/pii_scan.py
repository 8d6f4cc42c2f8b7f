"""Personal data in text: each kind found by a cheap pattern, then confirmed by its own rule.

A pattern only proposes a candidate; the confirmation is what keeps near-misses out: card numbers
must pass the Luhn check (`stdnum.luhn`'s rule, summed in C: see `_luhn_valid`), IBANs their mod-97
checksum (`stdnum.iban`), national IDs their country's check digits (`stdnum`), phone numbers Google's numbering plan
(`phonenumbers`), IP addresses `ipaddress`. Person names are found only where the text announces
them (a title such as "Dr.", or "my name is"): a detector that finds names anywhere needs a
statistical model far larger than this server, and guessing from capital letters would flag
every sentence start.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterator

import phonenumbers
import re2
from stdnum import iban, luhn
from stdnum.es import dni
from stdnum.fi import hetu
from stdnum.fr import nir
from stdnum.it import codicefiscale
from stdnum.no import fodselsnummer
from stdnum.se import personnummer
from stdnum.us import ssn

from taskgate.engine.guards.findings import Finding
from taskgate.engine.guards.kinds import PII

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}")
_IBAN = re.compile(r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_SEVEN_GROUPS = re.compile(r"(?::[0-9A-Fa-f]{0,4}){7}")  # begins with a literal: `re` skips to each ":"
_CODICE_FISCALE = re.compile(r"[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z]\b")
_TITLED_NAME = re.compile(r"(?:M[rsx]|Mrs|Miss|Dr|Prof|Sir|Dame)\.? ([A-Z][a-z]+(?: [A-Z][a-z]+){0,2})\b")
_STATED_NAME = re.compile(r"(?:[Mm]y name is|[Nn]ame:|I am called|[Rr]egards,|[Ss]incerely,)\s+"
                          r"([A-Z][a-z]+(?: [A-Z][a-z]+){0,2})\b")
_STATED_CUES = ("y name is", "ame:", "I am called", "egards,", "incerely,")  # one inside each _STATED_NAME opening

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
# enough to look for: (pattern, `stdnum` validator).
_NATIONAL_IDS: tuple[tuple[re.Pattern[str], Callable[[str], bool]], ...] = (
    (re.compile(r"\b\d{6}[-+A]\d{3}[0-9A-Y]\b"), hetu.is_valid),  # Finland
    (re.compile(r"\b(?:\d{2})?\d{6}[-+]\d{4}\b"), personnummer.is_valid),  # Sweden
    (re.compile(r"\b\d{6} ?\d{5}\b"), fodselsnummer.is_valid),  # Norway
    (re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), ssn.is_valid),  # United States
    (re.compile(r"\b\d{8}-?[A-Z]\b"), dni.is_valid),  # Spain
    (re.compile(r"\b[12] ?\d{2} ?\d{2} ?\d{2} ?\d{3} ?\d{3} ?\d{2}\b"), nir.is_valid),  # France
)
# A look-around or a word boundary, as written in the patterns above (no parentheses inside).
_LOOKAROUND_OR_BOUNDARY = re.compile(r"\(\?<?[=!][^()]*\)|\\b")


# A digit doubled, as the Luhn rule counts it (its digits summed), as the character of that value.
_LUHN_DOUBLED = str.maketrans("0123456789", "0246813579")


def _luhn_valid(number: str) -> bool:
    """`stdnum.luhn.is_valid` for ASCII digits, with the sums taken by `bytes` in C: stdnum's
    generator-based sum was a third of the pii scan on a table of distinct card numbers."""
    if not number or not number.isascii():  # nothing, or another script's digits: stdnum decides
        return luhn.is_valid(number)
    kept, doubled = number[-1::-2], number[-2::-2].translate(_LUHN_DOUBLED)
    return (sum(kept.encode()) + sum(doubled.encode()) - 48 * len(number)) % 10 == 0


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
    """A time ("10:30:00") has the shape too; but an IPv6 address without "::" has exactly eight
    groups, so only candidates with seven colons or a "::" are worth `ipaddress`'s exception. A text
    with neither anywhere is not read by _IPV6 at all, which tries every hex digit of it (as much
    as the whole digit-based scan, on a table)."""
    if "::" in text or _SEVEN_GROUPS.search(text) is not None:
        for match in _IPV6.finditer(text):
            candidate = match.group()
            if (candidate.count(":") == 7 or "::" in candidate) and _is_ip(candidate):
                yield Finding(PII, "ip_address", *match.span())


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_card(text: str) -> bool:
    number = text.replace(" ", "").replace("-", "")  # the separators _CARD allows
    return len(set(number)) > 1 and _luhn_valid(number)


def _is_phone(text: str) -> bool:
    """International numbers (+ or 00) against every plan; others only in the US national format
    (`(415) 555-2671`, `415-555-2671`), the one common in English text without a country code:
    a bare run of digits is more often an order number or a date than a phone number."""
    international = text.startswith(("+", "00"))
    if text.startswith("00"):
        text = "+" + text[2:]
    verdict = _plan_verdict(text, international)
    return verdict if verdict is not None else _parsed_is_valid(text, international)


def _parsed_is_valid(text: str, international: bool) -> bool:
    """phonenumbers' own verdict (about 20 µs): the reference _plan_verdict must agree with."""
    try:
        number = phonenumbers.parse(text, None if international else "US")
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number)


# A candidate _plan_verdict reads itself: ASCII digits and the separators of _PHONE, so that
# phonenumbers.parse would keep exactly its digits (no extension, no letters, no other whitespace).
_PLAIN_INTERNATIONAL = re.compile(r"\+[1-9][0-9 ().-]*")
_PLAIN_NATIONAL = re.compile(r"[0-9 ().-]*")
_NOT_DIGIT = re.compile(r"[^0-9]")


def _pattern_for(desc: phonenumbers.PhoneNumberDesc | None, length: int) -> str | None:
    """`desc`'s pattern if phonenumbers' _is_number_matching_desc would try it on a number of
    `length` digits: there is one, and the length is possible (or none are listed)."""
    if desc is None or not desc.national_number_pattern:
        return None
    return desc.national_number_pattern if not desc.possible_length or length in desc.possible_length else None


@functools.cache
def _valid_pattern(region: str, length: int) -> re.Pattern[str] | None:
    """One pattern, to fullmatch, for phonenumbers' _number_type_helper(...) != UNKNOWN on a
    national number of `length` digits: the region's general pattern (a look-ahead) and any of
    its types'. None where no number of that length is valid. phonenumbers itself runs up to
    eleven patterns, each from its pattern cache, which is most of is_valid_number's 6 µs. The
    cache is bounded by the metadata: its regions times lengths 2 to 17, under 2 MB if all are met."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    assert metadata is not None  # every region of COUNTRY_CODE_TO_REGION_CODE has metadata
    general = _pattern_for(metadata.general_desc, length)
    types = [pattern for desc in (
        metadata.premium_rate, metadata.toll_free, metadata.shared_cost, metadata.voip,
        metadata.personal_number, metadata.pager, metadata.uan, metadata.voicemail,
        metadata.fixed_line, metadata.mobile) if (pattern := _pattern_for(desc, length))]
    if general is None or not types:
        return None
    alternatives = "|".join(f"(?:{pattern})" for pattern in types)
    return re.compile(rf"(?=(?:{general})\Z)(?:{alternatives})")


def _is_valid_for(national: str, region: str) -> bool:
    pattern = _valid_pattern(region, len(national))
    return pattern is not None and pattern.fullmatch(national) is not None


@functools.cache
def _region_pattern(region: str, field: str) -> re.Pattern[str] | None:
    """A region's national_prefix_for_parsing or leading_digits, compiled (None if it has none; an
    empty leading_digits matches every number, as in phonenumbers' _region_code_for_number_from_list)."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    assert metadata is not None
    pattern: str | None = getattr(metadata, field)
    return re.compile(pattern) if pattern is not None else None


def _plan_verdict(text: str, international: bool) -> bool | None:
    """phonenumbers.is_valid_number(phonenumbers.parse(text, ...)) read straight off the metadata
    (2 to 3 µs instead of 20), or None where parse would do more than split off the country code:
    a national prefix or a leading zero to strip, a country code to find in a national number, an
    unusual character, a non-geographic code. The caller then asks phonenumbers itself."""
    if international:
        if _PLAIN_INTERNATIONAL.fullmatch(text) is None:
            return None
        digits = _NOT_DIGIT.sub("", text)
        for size in (1, 2, 3):
            regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(digits[:size]))
            if regions is not None:
                national = digits[size:]
                break
        else:
            return None
    else:
        if _PLAIN_NATIONAL.fullmatch(text) is None:
            return None
        national = _NOT_DIGIT.sub("", text)
        # US numbers start 2-9: a 0 or 1 may be the international or national prefix, or the code.
        if national[:1] in ("", "0", "1"):
            return None
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1]
    if regions[0] == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY or not 2 <= len(national) <= 17:
        return None
    prefix = _region_pattern(regions[0], "national_prefix_for_parsing")  # parse strips it, if found
    if national.startswith("0") or (prefix is not None and prefix.match(national)):
        return None
    # is_valid_number: the code's one region, or else the first whose leading digits match, or
    # (without leading digits) whose plan knows the number's type, decides.
    if len(regions) == 1:
        return _is_valid_for(national, regions[0])
    for region in regions:
        leading_digits = _region_pattern(region, "leading_digits")
        if leading_digits is not None:
            if leading_digits.match(national):
                return _is_valid_for(national, region)
        elif _is_valid_for(national, region):
            return True
    return False


# (kind, pattern, check) of each kind written with digits.
_IN_RUNS: tuple[tuple[str, re.Pattern[str], Callable[[str], bool]], ...] = (
    ("card", _CARD, _is_card),
    ("ip_address", _IPV4, _is_ip),
    ("phone", _PHONE, _is_phone),
    *(("national_id", pattern, is_valid) for pattern, is_valid in _NATIONAL_IDS),
)


def _shape(pattern: re.Pattern[str]) -> str:
    """`pattern` without its look-arounds and word boundaries, for RE2 (which has neither): it matches
    wherever `pattern` does, and more. \\d becomes \\p{Nd}, the same digits as `re`'s \\d (RE2's own
    \\d is ASCII only); \\s stays, since the one whitespace a run holds is the space."""
    return _LOOKAROUND_OR_BOUNDARY.sub("", pattern.pattern).replace(r"\d", r"\p{Nd}")


def _shapes_set() -> re2.Set:
    """Every _IN_RUNS pattern's shape in one RE2 set, numbered as in _IN_RUNS."""
    shapes = re2.Set.SearchSet()
    for _, pattern, _ in _IN_RUNS:
        shapes.Add(_shape(pattern))
    shapes.Compile()
    return shapes


# Trying every pattern at every position of a run costs `re` about 6 µs for a date and time
# ("2024-05-12 10:30:00") that none of them matches. RE2 reads a run once for all their shapes
# (about 0.5 µs) and names those that match somewhere: only their patterns read the run.
_SHAPES = _shapes_set()


def _in_run(run: str) -> tuple[tuple[str, int, int], ...]:
    """(kind, start, end) of each confirmed number in one run of digits and separators, in the
    order of _IN_RUNS (which decides between two kinds found on the same stretch)."""
    matching = _SHAPES.Match(run)
    if matching is None:
        return ()
    found: list[tuple[str, int, int]] = []
    for index in sorted(matching) if len(matching) > 1 else matching:
        kind, pattern, is_valid = _IN_RUNS[index]
        for match in pattern.finditer(run):
            if is_valid(match.group()):
                found.append((kind, match.start(), match.end()))
    return tuple(found)


def _numbers(text: str) -> Iterator[Finding]:
    """What a run holds depends on its text alone, so a run seen before in the same text (a
    table's dates, a phone number repeated in every row) is read once: its checks (5 to 8 µs
    for a phone or card number) do not run again. The memory is this scan's, gone when it ends."""
    known: dict[str, tuple[tuple[str, int, int], ...]] = {}
    for run in _DIGIT_RUN.finditer(text):
        value = run.group()
        found = known.get(value)
        if found is None:
            found = known[value] = _in_run(value)
        offset = run.start()
        for kind, start, end in found:
            yield Finding(PII, kind, offset + start, offset + end)


def _names(text: str) -> Iterator[Finding]:
    """_STATED_NAME opens on letters common in any text, so `re` tries it nearly everywhere: it reads
    only a text that holds one of its cues (a substring search, ten times cheaper)."""
    stated = any(cue in text for cue in _STATED_CUES)
    for pattern in (_TITLED_NAME, _STATED_NAME) if stated else (_TITLED_NAME,):
        for match in pattern.finditer(text):
            yield Finding(PII, "person_name", *match.span(1))


_DETECTORS: tuple[Callable[[str], Iterator[Finding]], ...] = (_emails, _numbers, _ibans, _italian_ids, _ipv6, _names)


def scan_pii(text: str) -> list[Finding]:
    """Every piece of personal data in `text`, possibly overlapping."""
    return [finding for detector in _DETECTORS for finding in detector(text)]
