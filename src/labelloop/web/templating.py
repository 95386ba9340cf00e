"""Jinja2 templates (``templates/``, partials prefixed with ``_``) and the context every
page gets: the signed-in user, the CSRF token, the current path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt
from markupsafe import Markup
from starlette.responses import Response

from labelloop.web.security import csrf_token

TEMPLATES = Path(__file__).with_name("templates")


def _pct(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{float(value) * 100:.{digits}f}%"


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and value != value:  # nan
        return "–"
    return f"{float(value):.{digits}f}"


def _json_script(value: Any) -> Markup:
    """JSON for a ``<script type="application/json">`` block (``<``, ``>`` and ``&``
    escaped so the data cannot close the element)."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


_MARKDOWN = MarkdownIt("commonmark", {"html": False, "typographer": False}).enable("table")


def _markdown(text: str | None) -> Markup:
    """Guideline Markdown as HTML. Raw HTML in the text is escaped (``html`` off) and
    markdown-it refuses ``javascript:``, ``vbscript:``, ``file:`` and ``data:`` links,
    so a rule's text cannot script the page."""
    return Markup(_MARKDOWN.render(text or ""))


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.filters["pct"] = _pct
    templates.env.filters["num"] = _num
    templates.env.filters["json_script"] = _json_script
    templates.env.filters["markdown"] = _markdown
    return templates


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    templates: Jinja2Templates = request.app.state.templates
    ctx: dict[str, Any] = {
        "user": getattr(request.state, "user", None),
        "csrf_token": csrf_token(request),
        "path": request.url.path,
    }
    ctx.update(context or {})
    return templates.TemplateResponse(request, name, ctx, status_code=status_code, headers=headers)
