"""Proves an opperai SDK venv works: the client class imports and reports its version."""

from importlib.metadata import version

from opperai import Opper

print(Opper.__name__, version("opperai"))
