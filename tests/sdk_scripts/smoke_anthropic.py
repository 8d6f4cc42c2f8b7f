"""Proves the anthropic SDK venv works: the client class imports and reports its version."""

from anthropic import Anthropic, __version__

print(Anthropic.__name__, __version__)
