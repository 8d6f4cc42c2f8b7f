"""Span values as HTML: JSON folded (objects and arrays as <details>), long text clipped with a
"show all" that holds the rest. Every piece of text is escaped here, so the Markup returned can be
put into a page as it is; nothing in it can open a tag or an attribute."""

from __future__ import annotations

from typing import Any

import orjson
from markupsafe import Markup, escape

CLIP_CHARS = 600  # text longer than this shows its start, and the whole behind "show all"
MAX_ITEMS = 200  # members of one object or array shown; the count of the rest is given
MAX_DEPTH = 40  # deeper values are shown as their JSON text (stored values are at most 64 deep)
FOLD_AFTER = 2  # levels open on arrival; deeper ones start folded


def milliseconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def value_html(value: Any) -> Markup:
    """A span's input, output or instructions: text that holds JSON is shown as JSON."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("{", "[") and len(stripped) < 5_000_000:
            try:
                value = orjson.loads(stripped)
            except orjson.JSONDecodeError:
                return _text(value)
        else:
            return _text(value)
    return Markup('<div class="json">') + _node(value, 0) + Markup("</div>")


def _text(text: str) -> Markup:
    if len(text) <= CLIP_CHARS:
        return Markup('<pre class="text">') + escape(text) + Markup("</pre>")
    return (Markup('<pre class="text clipped">') + escape(text[:CLIP_CHARS]) + Markup("…</pre>")
            + Markup('<details class="show-all"><summary>show all (')
            + escape(f"{len(text):,}") + Markup(' characters)</summary><pre class="text">')
            + escape(text) + Markup("</pre></details>"))


def _scalar(value: Any) -> Markup:
    if isinstance(value, str):
        if len(value) > CLIP_CHARS:
            return _text(value)
        return Markup('<span class="s">') + escape(orjson.dumps(value).decode()) + Markup("</span>")
    kind = "b" if isinstance(value, bool) or value is None else "n"
    return Markup(f'<span class="{kind}">') + escape(orjson.dumps(value).decode()) + Markup("</span>")


def _node(value: Any, depth: int) -> Markup:
    if not isinstance(value, dict | list):
        return _scalar(value)
    if depth >= MAX_DEPTH:
        return _text(orjson.dumps(value).decode())
    items = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
    if not items:
        return Markup('<span class="b">{}</span>' if isinstance(value, dict) else '<span class="b">[]</span>')
    noun = ("key" if isinstance(value, dict) else "item") + ("" if len(items) == 1 else "s")
    label = f"{{{len(items)} {noun}}}" if isinstance(value, dict) else f"[{len(items)} {noun}]"
    parts = [Markup('<details class="fold"') + (Markup(" open") if depth < FOLD_AFTER else Markup(""))
             + Markup("><summary>") + escape(label) + Markup("</summary><ul>")]
    for key, member in items[:MAX_ITEMS]:
        name = escape(key) if isinstance(value, dict) else escape(str(key))
        parts.append(Markup('<li><span class="k">') + name + Markup("</span>: ") + _node(member, depth + 1)
                     + Markup("</li>"))
    if len(items) > MAX_ITEMS:
        parts.append(Markup('<li class="more">') + escape(f"… {len(items) - MAX_ITEMS:,} more") + Markup("</li>"))
    parts.append(Markup("</ul></details>"))
    return Markup("").join(parts)
