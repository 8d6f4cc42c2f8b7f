"""Output schemas that several tests (and bench.local) send, kept once so they cannot drift apart."""

from __future__ import annotations

from typing import Any

# The capital-city schema of the spec's seed-002 example, as Pydantic writes an optional field.
CAPITAL_SCHEMA: dict[str, Any] = {
    "properties": {
        "capital": {"type": "string", "description": "The capital city of the country"},
        "population": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None},
    },
    "required": ["capital"],
    "type": "object",
}
