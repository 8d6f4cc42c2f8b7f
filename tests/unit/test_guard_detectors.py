"""Each guard detector on what it must find, and on the near-misses it must not: a number that
fails its checksum, a date, an order number, an ordinary long word."""

from __future__ import annotations

import re
import sys
import time

import pytest
import re2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stdnum import luhn

from taskgate.engine.guards import pii_scan
from taskgate.engine.guards.findings import Finding, without_overlaps
from taskgate.engine.guards.patterns import PatternScanner, compile_patterns
from taskgate.engine.guards.pii_scan import scan_pii
from taskgate.engine.guards.secret_scan import scan_secrets
from taskgate.errors import BadRequestError


def found(scan, text: str) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """(kind, matched text) of what `scan` finds, overlaps resolved as the guards resolve them."""
    return [(f.kind, text[f.start:f.end]) for f in without_overlaps(scan(text))]


@pytest.mark.parametrize(("text", "kind", "value"), [
    ("mail john.doe+x@mail.example.co.uk now", "email", "john.doe+x@mail.example.co.uk"),
    ("card 4111 1111 1111 1111.", "card", "4111 1111 1111 1111"),
    ("card 5500-0000-0000-0004 ok", "card", "5500-0000-0000-0004"),
    ("amex 378282246310005", "card", "378282246310005"),
    ("to DE89 3704 0044 0532 0130 00 please", "iban", "DE89 3704 0044 0532 0130 00"),
    ("iban GB82WEST12345698765432", "iban", "GB82WEST12345698765432"),
    ("call +46 70 123 45 67 today", "phone", "+46 70 123 45 67"),
    ("call 0046 70 123 45 67 today", "phone", "0046 70 123 45 67"),
    ("call (415) 555-2671 today", "phone", "(415) 555-2671"),
    ("ssn 536-90-4399 on file", "national_id", "536-90-4399"),
    ("hetu 131052-308T here", "national_id", "131052-308T"),
    ("personnummer 811228-9874 here", "national_id", "811228-9874"),
    ("dni 54362315K here", "national_id", "54362315K"),
    ("cf RCCMNL83S18D969H here", "national_id", "RCCMNL83S18D969H"),
    ("host 192.168.10.254 is up", "ip_address", "192.168.10.254"),
    ("host 2001:db8::8a2e:370:7334 is up", "ip_address", "2001:db8::8a2e:370:7334"),
    ("host 2001:0db8:85a3:0000:0000:8a2e:0370:7334 up", "ip_address", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
    ("loopback ::1 is up", "ip_address", "::1"),
    ("prefix fe80:: is local", "ip_address", "fe80::"),
    ("Thanks, Dr. Jane Smith will call", "person_name", "Jane Smith"),
    ("Hello, my name is Alice Walker.", "person_name", "Alice Walker"),
])
def test_pii_true_positives(text: str, kind: str, value: str) -> None:
    assert (kind, value) in found(scan_pii, text)


@pytest.mark.parametrize("text", [
    "card 4111 1111 1111 1112",  # 16 digits that fail Luhn
    "order 1234567890123456 shipped",  # 16 digits that fail Luhn
    "zeros 0000 0000 0000 0000",  # passes Luhn, but is no card
    "iban DE89 3704 0044 0532 0130 01",  # wrong checksum
    "ssn 078-05-1120 is the famous invalid one",  # never issued
    "hetu 131052-308X is wrong",  # wrong check character
    "dni 54362315Z is wrong",  # wrong check letter
    "meeting on 2024-05-12 at 10:30 with 3 people",  # date and time
    "version 4.2.1 and 1.2.3.999",  # not an IPv4 address
    "the ratio was 12:30:45",  # not an IPv6 address
    "groups 1:2:3:4:5:6:7 only",  # seven groups and no "::": not an IPv6 address
    "groups 1:2:3:4:5:6:7:8:9 too many",  # nine groups
    "fe80::1::2 twice",  # two "::"
    "row 2024-05-12 10:30:00,14500.00,4.2.1 and again 2024-05-12 10:30:00,14500.00,4.2.1",  # a repeated run
    "card 4111 1111 1111 1112, again 4111 1111 1111 1112",  # a repeated number that fails Luhn
    "call +46 70 123 45 6 or +46 70 123 45 6",  # a repeated number one digit short of a phone
    "call 555-0100",  # too short for a phone number
    "call +1 555 555 5555",  # no such US number
    "write to me at example dot com",
    "The Quick Brown Fox said Hello",  # capitalised words are not names
])
def test_pii_near_misses(text: str) -> None:
    assert found(scan_pii, text) == []


def test_a_repeated_number_is_found_at_each_place() -> None:
    """A run is read once per scan; each place it stands is still a finding of its own."""
    text = "call +46 70 123 45 67, card 4111 1111 1111 1111; call +46 70 123 45 67, card 4111 1111 1111 1111"
    findings = without_overlaps(scan_pii(text))
    assert [(f.kind, text[f.start:f.end]) for f in findings] == [
        ("phone", "+46 70 123 45 67"), ("card", "4111 1111 1111 1111")] * 2
    assert findings[0].start != findings[2].start and findings[1].start != findings[3].start


# Inside a run: digits (ASCII and others), its separators, "A" and a last letter.
_RUN_CHARS = st.sampled_from("0123456789" * 3 + "٣۷१" + " .()/:+-A" + "KTX")


def _every_kind_read(run: str) -> tuple[tuple[str, int, int], ...]:
    """What `_in_run` finds, read the slow way: every pattern over the whole run."""
    return tuple((kind, *match.span()) for kind, pattern, is_valid in pii_scan._IN_RUNS
                 for match in pattern.finditer(run) if is_valid(match.group()))


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_RUN_CHARS, st.sampled_from(["+46 70 123 45 67", "4111 1111 1111 1111", "536-90-4399",
                                                       "131052-308T", "54362315K", "192.168.10.254", "(415) 555-2671",
                                                       "1 85 05 78 006 084 36", "0046 70 123 45 67"])),
                max_size=12).map("".join))
def test_the_shape_filter_drops_no_run_a_pattern_matches(run: str) -> None:
    """RE2 decides which patterns read a run: each pattern's shape must match wherever the pattern
    does (the matches found are then the same as with every pattern read)."""
    matching = pii_scan._SHAPES.Match(run) or []
    for index, (_, pattern, _) in enumerate(pii_scan._IN_RUNS):
        if pattern.search(run):
            assert index in matching, (run, pattern.pattern)
    assert pii_scan._in_run(run) == _every_kind_read(run)


def test_the_shapes_know_every_digit_re_knows() -> None:
    """The shapes spell `re`'s \\d as RE2's \\p{Nd}: a digit RE2 did not know would hide a run."""
    digits = "".join(ch for ch in map(chr, range(sys.maxunicode + 1)) if ch.isdecimal())
    assert re.fullmatch(r"\d+", digits)
    assert re2.fullmatch(r"\p{Nd}+", digits)


ARABIC_INDIC_DIGITS = "".join(map(chr, range(0x660, 0x66A)))  # another script's digits: stdnum decides


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="0123456789", max_size=25) | st.text(alphabet="0123456789" + ARABIC_INDIC_DIGITS, max_size=25))
def test_the_luhn_check_agrees_with_stdnum(number: str) -> None:
    """`_luhn_valid` sums in C what `stdnum.luhn.is_valid` sums in Python: the verdicts must be the same."""
    assert pii_scan._luhn_valid(number) == luhn.is_valid(number)


_IPV6_TEXT = st.lists(st.sampled_from(["::", ":", "1", "ab", "fe80", "2001", "db8", " ", "x", "10:30:00", "g"]),
                      max_size=30).map("".join)


@settings(max_examples=2000, deadline=None)
@given(_IPV6_TEXT)
def test_the_ipv6_shortcut_skips_no_address(text: str) -> None:
    """A text without "::" or seven colon groups is not read for addresses: reading it would find none."""
    every = [Finding("pii", "ip_address", *match.span()) for match in pii_scan._IPV6.finditer(text)
             if (match.group().count(":") == 7 or "::" in match.group()) and pii_scan._is_ip(match.group())]
    assert list(pii_scan._ipv6(text)) == every


@pytest.mark.parametrize("text", ["My name is Anna Berg.", "my name is Anna", "Name: Olof Palme", "I am called Bo",
                                  "Regards, Karin", "regards, Karin", "Sincerely, Erik Lund", "sincerely, Erik"])
def test_each_stated_name_opening_has_its_cue(text: str) -> None:
    """_names reads _STATED_NAME only where a cue is: every opening it knows must carry one."""
    assert [finding.kind for finding in pii_scan._names(text)] == ["person_name"]
    assert any(cue in text for cue in pii_scan._STATED_CUES)


def test_a_long_run_is_read_whole() -> None:
    """A run has no length limit; the shape set must not give up on a long one."""
    run = "12 34 " * 20_000 + "+46 70 123 45 67"
    assert pii_scan._in_run(run) == _every_kind_read(run) != ()


JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
       "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U")


@pytest.mark.parametrize(("kind", "value", "around"), [
    ("aws_key", "AKIAIOSFODNN7EXAMPLE", "aws {} here"),
    ("github_token", "ghp_abcdefghijklmnopqrstuvwxyz0123456789", "gh {} x"),
    ("anthropic_key", "sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345", "k {} x"),
    ("openai_key", "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789AB", "k {} x"),
    ("google_api_key", "AIzaSyA1234567890abcdefghijklmnopqrstuv", "g {} x"),
    ("stripe_key", "sk_live_abcdefghijklmnopqrstuvwx", "stripe {}"),
    ("slack_token", "xoxb-123456789012-abcdefghij", "slack {}"),
    ("connection_string_password", "hunter2", "db postgres://app:{}@db.internal/app"),
    ("connection_string_password", "Pa55word!", "Server=db;User Id=sa;Password={};"),
    ("jwt", JWT, "t {}"),
    ("high_entropy_token", "aZ3kP9qLm2Xv7RtY8wB4nC6dE1fG", "token {} done"),
    ("high_entropy_token", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "hex {}"),
])
def test_secret_true_positives(kind: str, value: str, around: str) -> None:
    assert (kind, value) in found(scan_secrets, around.format(value))


def test_a_private_key_is_found_whole() -> None:
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc+/=\n-----END RSA PRIVATE KEY-----"
    text = f"here:\n{key}\nthanks"
    assert found(scan_secrets, text) == [("private_key", key)]
    unfinished = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA"  # cut off: still all of it
    assert found(scan_secrets, unfinished) == [("private_key", unfinished)]


@pytest.mark.parametrize("text", [
    "internationalization and counterrevolutionaries",  # long words
    "postgres://db.internal:5432/app",  # a URL without a password
    "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.sig",  # a JWT shape whose payload is not JSON
    "AKIA1234",  # too short for an AWS key
    "path/to/some/file_name_that_is_long.txt",
    "sk-short",
])
def test_secret_near_misses(text: str) -> None:
    assert found(scan_secrets, text) == []


def test_overlaps_keep_the_earlier_then_the_longer() -> None:
    a, b, c = Finding("pii", "phone", 0, 10), Finding("pii", "card", 0, 19), Finding("pii", "email", 5, 25)
    assert without_overlaps([a, c, b]) == [b]
    assert without_overlaps([Finding("x", "y", 0, 3), Finding("x", "z", 3, 5)]) == [
        Finding("x", "y", 0, 3), Finding("x", "z", 3, 5)]


# ---- custom patterns

def test_custom_patterns_find_their_matches() -> None:
    scanner = PatternScanner(compile_patterns([r"ORD-\d{6}", r"(?i)project\s+falcon"], "g"))
    text = "order ORD-123456 for Project  Falcon"
    assert [(f.kind, text[f.start:f.end]) for f in scanner.scan(text)] == [
        ("pattern_0", "ORD-123456"), ("pattern_1", "Project  Falcon")]


def test_a_catastrophic_pattern_runs_in_linear_time() -> None:
    """`(a+)+$` takes exponential time in a backtracking engine; RE2 takes it in linear time."""
    scanner = PatternScanner(compile_patterns([r"(a+)+$", r"(x|x)*y"], "g"))
    started = time.perf_counter()
    assert scanner.scan("a" * 50_000 + "!" + "x" * 50_000) == []
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(("patterns", "fragment"), [
    ([r"(a)\1"], "linear time"),  # a backreference
    ([r"(?<=a)b"], "linear time"),  # lookbehind
    ([r"((a{100}){100}){100}"], "linear time"),  # too big a program
    (["(unclosed"], "linear time"),
    (["a*"], "empty string"),
    ([""], "non-empty string"),
    ([3], "non-empty string"),
    (["x" * 513], "longer than 512"),
    (["a"] * 33, "at most 32"),
    ([], "at least one"),
])
def test_unusable_patterns_are_400s(patterns: list, fragment: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(BadRequestError, match=fragment):
        compile_patterns(patterns, "guard.input[0]")


def test_a_scan_over_its_time_budget_is_a_400() -> None:
    scanner = PatternScanner(compile_patterns([r"[a-z]+\d"], "g"), seconds_left=0.0)
    with pytest.raises(BadRequestError, match="longer than"):
        scanner.scan("abc" * 1000)
