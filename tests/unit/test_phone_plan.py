"""The pii guard's fast phone check against phonenumbers itself: `_plan_verdict` reads the
numbering plan straight off phonenumbers' metadata, and must give phonenumbers.parse +
is_valid_number's verdict on every candidate it decides (it leaves the rest to them)."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from taskgate.engine.guards import pii_scan

_SEPARATORS = " ().-"


def _scatter(draw: random.Random, digits: str) -> str:
    """`digits` with separators from _PHONE's alphabet between some of them."""
    return "".join(digit + (draw.choice(_SEPARATORS) if draw.random() < 0.3 else "") for digit in digits)


def _mutations(draw: random.Random, digits: str) -> list[str]:
    """A number's near-misses: a digit changed, dropped, added; two digits swapped."""
    spot = draw.randrange(len(digits))
    return [
        digits[:spot] + str((int(digits[spot]) + draw.randint(1, 9)) % 10) + digits[spot + 1:],
        digits[:spot] + digits[spot + 1:],
        digits[:spot] + str(draw.randint(0, 9)) + digits[spot:],
        digits[:-2] + digits[-1] + digits[-2],
    ]


def _examples() -> list[phonenumbers.PhoneNumber]:
    """phonenumbers' example number of every type for every region and non-geographic code."""
    numbers = [phonenumbers.example_number_for_type(region, kind)
               for region in phonenumbers.SUPPORTED_REGIONS
               for kind in phonenumbers.PhoneNumberType.values()]
    numbers += [phonenumbers.example_number_for_non_geo_entity(code)
                for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS]
    return [number for number in numbers if number is not None]


def _candidates() -> list[tuple[str, bool]]:
    """(text, international) pairs as _is_phone passes them on: "00" already turned into "+"."""
    draw = random.Random(16)
    candidates: list[tuple[str, bool]] = []
    for number in _examples():
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        candidates.append((e164, True))
        candidates.append((phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL), True))
        candidates.append(("+" + _scatter(draw, e164[1:]), True))
        candidates += [("+" + digits, True) for digits in _mutations(draw, e164[1:])]
        if number.country_code == 1:
            national = phonenumbers.national_significant_number(number)
            candidates.append((f"({national[:3]}) {national[3:6]}-{national[6:]}", False))
            candidates += [(f"{digits[:3]}-{digits[3:6]}-{digits[6:]}", False)
                           for digits in _mutations(draw, national)]
    codes = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    for _ in range(20_000):
        code = str(draw.choice(codes)) if draw.random() < 0.8 else str(draw.randint(1, 999))
        digits = "".join(str(draw.randint(0, 9)) for _ in range(draw.randint(4, 16)))
        candidates.append(("+" + _scatter(draw, code + digits), True))
    for _ in range(5_000):
        digits = "".join(str(draw.randint(0, 9)) for _ in range(10))
        separator = draw.choice(" .-")
        candidates.append((f"{digits[:3]}{separator}{digits[3:6]}{separator}{digits[6:]}", False))
        candidates.append((f"({digits[:3]}) {digits[3:6]}-{digits[6:]}", False))
    return candidates


def test_fast_verdict_is_phonenumbers_verdict() -> None:
    candidates = _candidates()
    decided = disagreements = 0
    wrong: list[tuple[str, bool]] = []
    for text, international in candidates:
        verdict = pii_scan._plan_verdict(text, international)
        if verdict is None:
            continue
        decided += 1
        if verdict != pii_scan._parsed_is_valid(text, international):
            disagreements += 1
            wrong.append((text, verdict))
    assert not wrong, f"{disagreements} disagreements, e.g. {wrong[:10]}"
    # The fast path must be the usual one, or it proves little and saves nothing.
    assert decided > 0.8 * len(candidates)
    valid = sum(pii_scan._parsed_is_valid(text, international) for text, international in candidates)
    assert valid > 2_000  # valid numbers are well represented, not just random noise


@pytest.mark.parametrize(("text", "international"), [
    ("+46 70 123 45 67", True),  # a Swedish mobile: decided by the plan
    ("(415) 555-2671", False),  # a US number in the national format
])
def test_common_numbers_take_the_fast_path(text: str, international: bool) -> None:
    assert pii_scan._plan_verdict(text, international) is True


@pytest.mark.parametrize(("text", "international"), [
    ("+46 070 123 45 67", True),  # a national prefix parse would strip
    ("+39 06 6982 1234", True),  # an Italian leading zero
    ("+800 1234 5678", True),  # a non-geographic code
    ("+46\t70 123 45 67", True),  # whitespace phonenumbers reads differently
    ("1-415-555-2671", False),  # a national number that starts with the country code
])
def test_unusual_numbers_are_left_to_phonenumbers(text: str, international: bool) -> None:
    assert pii_scan._plan_verdict(text, international) is None
    assert pii_scan._is_phone(text) == pii_scan._parsed_is_valid(text, international)
