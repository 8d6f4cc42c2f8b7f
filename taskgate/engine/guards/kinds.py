"""The guard types and the kinds each one reports, without the scanners.

Parsing a call's guards needs only these names; the scanners (`pii_scan`, with phonenumbers and
python-stdnum, and `secret_scan`, with detect-secrets) cost about 60 MB of memory together and are
imported by the first call that uses them, so a worker that never guards never loads them.
`secret_scan` checks at import that its patterns report exactly SECRET_KINDS.
"""

from __future__ import annotations

PII = "pii"
PII_KINDS = frozenset({"email", "phone", "card", "iban", "national_id", "ip_address", "person_name"})

SECRETS = "secrets"
SECRET_KINDS = frozenset({
    "anthropic_key", "artifactory_token", "aws_key", "azure_storage_key", "connection_string_password",
    "discord_token", "github_token", "gitlab_token", "google_api_key", "high_entropy_token", "jwt", "mailchimp_key",
    "npm_token", "openai_key", "private_key", "pypi_token", "sendgrid_key", "slack_token", "square_secret",
    "stripe_key", "telegram_token", "twilio_key",
})
