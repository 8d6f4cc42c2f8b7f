"""Templates to pages: one Jinja2 environment over the package's templates, autoescaping everything.

Values from spans, functions and forms reach a template only as text Jinja escapes, or as Markup
made by `taskgate.ui.display`, which escapes every piece it puts in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from taskgate.ui import display
from taskgate.ui.sessions import Session


class PageVisit(Protocol):
    """What a page's frame needs of the visit it answers (the guard's `Visit`): named here, not
    imported, since the guard renders its error pages through this module."""

    @property
    def session(self) -> Session | None: ...
    @property
    def csrf(self) -> str: ...
    @property
    def request(self) -> Request: ...

NAV = (("traces", "Traces"), ("usage", "Usage"), ("functions", "Functions"), ("knowledge", "Knowledge"),
       ("keys", "Keys"))


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _cost(value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:.8f}".rstrip("0").rstrip(".") if value else "$0"


class Renderer:
    def __init__(self) -> None:
        self._env = jinja2.Environment(
            loader=jinja2.PackageLoader("taskgate.ui", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,  # a misspelt value is an error in the tests, not a blank page
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.filters.update(when=_when, cost=_cost, value=display.value_html, ms=display.milliseconds)

    def page(self, template: str, visit: PageVisit | None, status: int = 200, **values: Any) -> Response:
        html = self._env.get_template(template).render(
            nav=NAV, session=visit.session if visit else None, csrf=visit.csrf if visit else "",
            path=visit.request.url.path if visit else "", **values)
        return HTMLResponse(html, status_code=status)
