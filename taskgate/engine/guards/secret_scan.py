"""Secrets in text: detect-secrets' provider patterns, PEM private keys, connection strings with
passwords, and high-entropy tokens.

detect-secrets scans files line by line and reports values without positions, so its plugins'
own patterns (`denylist`) are run here with `finditer`, and a match's first non-empty group is
the secret when the pattern has one (a password inside a URL, not the whole URL). Its JWT check
(`is_formally_valid`) and entropy measure are reused. What it lacks is added: today's OpenAI and
Anthropic key shapes, Google API keys, whole private-key blocks (it matches only the header),
`Password=` in connection strings, and high-entropy tokens outside quotes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from detect_secrets.plugins.artifactory import ArtifactoryDetector
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString, HexHighEntropyString
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector

from taskgate.engine.guards.findings import Finding
from taskgate.engine.guards.kinds import SECRET_KINDS, SECRETS

# detect-secrets plugins by the kind they report. Left out: its keyword plugins (any `password:`
# in prose), its public-IP plugin (an IP address is pii here) and the vendor plugins whose
# patterns are keyword guesses rather than key shapes (Cloudant, IBM, SoftLayer).
_PLUGINS: tuple[tuple[str, type[RegexBasedDetector]], ...] = (
    ("aws_key", AWSKeyDetector),
    ("artifactory_token", ArtifactoryDetector),
    ("azure_storage_key", AzureStorageKeyDetector),
    ("connection_string_password", BasicAuthDetector),
    ("discord_token", DiscordBotTokenDetector),
    ("github_token", GitHubTokenDetector),
    ("gitlab_token", GitLabTokenDetector),
    ("mailchimp_key", MailchimpDetector),
    ("npm_token", NpmDetector),
    ("openai_key", OpenAIDetector),
    ("pypi_token", PypiTokenDetector),
    ("sendgrid_key", SendGridDetector),
    ("slack_token", SlackDetector),
    ("square_secret", SquareOAuthDetector),
    ("stripe_key", StripeDetector),
    ("telegram_token", TelegramBotTokenDetector),
    ("twilio_key", TwilioKeyDetector),
)
_OWN_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("anthropic_key", re.compile(r"sk-ant-[A-Za-z0-9_-]{20,}")),
    ("openai_key", re.compile(r"sk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{32,}")),
    ("jwt", re.compile(r"eyJ[A-Za-z0-9_-]+=*\.eyJ[A-Za-z0-9_-]+=*\.[A-Za-z0-9_-]*=*")),
    ("google_api_key", re.compile(r"AIza[0-9A-Za-z_-]{35}")),
    ("connection_string_password", re.compile(r"(?i)\b(?:password|pwd)\s*=\s*([^;\s'\"]{1,256})")),
    ("private_key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
                               r"(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|[\s\S]*)")),
    ("private_key", re.compile(r"PuTTY-User-Key-File-\d: [\s\S]*?Private-MAC: [0-9a-f]+")),
)
_TOKEN = re.compile(r"(?<![A-Za-z0-9+/_=-])[A-Za-z0-9+/_=-]{24,512}(?![A-Za-z0-9+/_=-])")
_HEX = frozenset("0123456789abcdefABCDEF")
# Bits per character (detect-secrets' measure): random keys score above these, words far below.
_HEX_ENTROPY = HexHighEntropyString(limit=3.0)
_BASE64_ENTROPY = Base64HighEntropyString(limit=4.2)


# Plugins whose patterns capture the secret in a group (the password of a URL, the key after
# `aws_secret=`); in the others a group only spells alternatives, and the secret is the match.
_GROUPED = (AWSKeyDetector, BasicAuthDetector, NpmDetector)
_DELIMITERS = " \t\r\n\"'=:"  # what some plugin patterns match around a token


def _compile_all() -> tuple[tuple[str, re.Pattern[str], bool], ...]:
    """(kind, pattern, whether its first non-empty group is the secret) for every pattern."""
    plugins = ((kind, pattern, plugin in _GROUPED) for kind, plugin in _PLUGINS
               for pattern in plugin().denylist)
    own = ((kind, pattern, pattern.groups > 0) for kind, pattern in _OWN_PATTERNS)
    return (*plugins, *own)


_PATTERNS = _compile_all()
if {kind for kind, _, _ in _PATTERNS} | {"high_entropy_token"} != SECRET_KINDS:
    raise ImportError("guards.kinds.SECRET_KINDS no longer names exactly the kinds secret_scan reports")
# Literals without which a kind's patterns cannot match: a substring test is far cheaper than a
# pattern that begins with a character class.
_NEEDS: dict[str, tuple[str, ...]] = {
    "artifactory_token": ("AKC", "AP"),
    "mailchimp_key": ("-us",),
    "npm_token": ("_authToken",),
    "telegram_token": (":",),
}


def _secret_span(match: re.Match[str], grouped: bool) -> tuple[int, int]:
    """The secret inside a match, without the delimiters a pattern may have matched around it."""
    start, end = match.span()
    if grouped:
        start, end = next((match.span(i) for i in range(1, match.re.groups + 1) if match.group(i)), (start, end))
    text = match.string
    while start < end and text[start] in _DELIMITERS:
        start += 1
    while end > start and text[end - 1] in _DELIMITERS:
        end -= 1
    return start, end


def _patterned(text: str) -> Iterator[Finding]:
    for kind, pattern, grouped in _PATTERNS:
        needs = _NEEDS.get(kind)
        if needs is not None and not any(literal in text for literal in needs):
            continue
        for match in pattern.finditer(text):
            if kind == "jwt" and not JwtTokenDetector.is_formally_valid(match.group()):
                continue
            yield Finding(SECRETS, kind, *_secret_span(match, grouped))


def _looks_random(token: str) -> bool:
    """A token of mixed letters and digits whose characters are spread like a random key's."""
    if set(token) <= _HEX:
        return len(token) >= 32 and _HEX_ENTROPY.calculate_shannon_entropy(token) > _HEX_ENTROPY.entropy_limit
    if token.isalpha() or token.isdigit() or token.islower() or token.isupper():
        return False
    return _BASE64_ENTROPY.calculate_shannon_entropy(token) > _BASE64_ENTROPY.entropy_limit


def _high_entropy(text: str) -> Iterator[Finding]:
    for match in _TOKEN.finditer(text):
        if _looks_random(match.group()):
            yield Finding(SECRETS, "high_entropy_token", *match.span())


def scan_secrets(text: str) -> list[Finding]:
    """Every secret in `text`, possibly overlapping (a provider key is also a random token)."""
    return [*_patterned(text), *_high_entropy(text)]
