"""The web app: server-rendered pages (Jinja2 + htmx, vendored Chart.js) and the JSON
API under ``/api/v1``. Build it with :func:`create_app`; serve it with ``labelloop
serve``. See ``docs/web.md``."""

from labelloop.web.app import create_app

__all__ = ["create_app"]
