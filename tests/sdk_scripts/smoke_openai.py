"""Proves the openai SDK venv works: the client class imports and reports its version."""

from openai import OpenAI, __version__

print(OpenAI.__name__, __version__)
