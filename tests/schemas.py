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

# Seed 002's `CountryInput` and `CapitalOutput`, as pydantic writes them.
SEED_COUNTRY_INPUT: dict[str, Any] = {
    "properties": {"country": {"description": "The name of the country", "title": "Country", "type": "string"}},
    "required": ["country"], "title": "CountryInput", "type": "object",
}
SEED_CAPITAL_OUTPUT: dict[str, Any] = {
    "properties": {
        "capital": {"description": "The capital city of the country", "title": "Capital", "type": "string"},
        "population": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None,
                       "description": "The population of the capital city", "title": "Population"},
    },
    "required": ["capital"], "title": "CapitalOutput", "type": "object",
}
