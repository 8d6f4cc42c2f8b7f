"""Shared fixtures: the fake providers, a real `taskgate serve`, and the SDK virtualenvs."""

from tests.fixtures import *  # noqa: F403
