"""Taskgate: a self-hostable server for the Opper Task API."""

__version__ = "0.1.0"
