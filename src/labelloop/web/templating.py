"""Jinja2 templates (``templates/``, partials prefixed with ``_``) and the context every
page gets: the signed-in user, the CSRF token, the current path and the user's unread
notifications (the navigation's inbox badge)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
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


def _utc(value: datetime | None) -> str:
    """A moment as ``2026-11-03 14:05 UTC`` (``–`` for none)."""
    if value is None:
        return "–"
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return f"{value:%Y-%m-%d %H:%M} UTC"


def _span_text(seconds: float) -> str:
    """A duration in words, to the two largest units: ``2 d 3 h``, ``5 h 10 min``,
    ``12 min``, ``less than a minute``."""
    minutes = int(abs(seconds) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min" if minutes else "less than a minute"


def _relative(value: datetime | None, now: datetime | None = None) -> str:
    """A moment relative to now: ``in 5 h``, ``3 d 2 h ago``."""
    if value is None:
        return "–"
    now = now or datetime.now(UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = (value - now).total_seconds()
    text = _span_text(delta)
    if text == "less than a minute":
        return "just now" if delta <= 0 else "in less than a minute"
    return f"in {text}" if delta > 0 else f"{text} ago"


_MARKDOWN = MarkdownIt("commonmark", {"html": False, "typographer": False}).enable("table")


def _markdown(text: str | None) -> Markup:
    """Guideline Markdown as HTML. Raw HTML in the text is escaped (``html`` off) and
    markdown-it refuses ``javascript:``, ``vbscript:``, ``file:`` and ``data:`` links,
    so a rule's text cannot script the page."""
    return Markup(_MARKDOWN.render(text or ""))


def _unread(request: Request, user: Any) -> int | None:
    """The signed-in user's unread notifications, for the navigation's inbox badge.

    Read in the route's own transaction, on the route's thread, while the route renders
    its page (one indexed count). ``None`` when there is no such transaction: on error
    pages (the request's session is closed by then, and they render on the event loop)
    and for anonymous callers."""
    session = getattr(request.state, "db_session", None)
    if user is None or session is None or not session.in_transaction():
        return None
    from labelloop.accounts.actor import Actor
    from labelloop.escalation.service import unread_count

    return unread_count(session, actor=Actor.for_user(user.id, user.username))


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.filters["pct"] = _pct
    templates.env.filters["num"] = _num
    templates.env.filters["json_script"] = _json_script
    templates.env.filters["markdown"] = _markdown
    templates.env.filters["utc"] = _utc
    templates.env.filters["relative"] = _relative
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
    user = getattr(request.state, "user", None)
    ctx: dict[str, Any] = {
        "user": user,
        "csrf_token": csrf_token(request),
        "path": request.url.path,
        "unread": _unread(request, user),
    }
    ctx.update(context or {})
    return templates.TemplateResponse(request, name, ctx, status_code=status_code, headers=headers)
