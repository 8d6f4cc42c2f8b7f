"""The web UI at `/ui`: server-rendered pages of a project's traces, usage, functions, knowledge
bases and keys, for a person signed in with one of the project's API keys.

Pages are Jinja2 templates (autoescaped) with one stylesheet and one script shipped in the package:
no CDN, no build step. Every page is answered by `taskgate.ui.guard`, which checks the session and,
on a POST, its CSRF token; the handlers read and write through the same engine services as the
HTTP API, always with the session's project.
"""
