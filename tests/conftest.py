"""Shared fixtures: the fake providers, a real `taskgate serve`, the SDK virtualenvs and the databases."""

from tests.fixtures import *  # noqa: F403

pytest_plugins = ["tests.store_fixtures", "tests.hostile", "tests.pgvector_server", "tests.redis_fixtures"]
