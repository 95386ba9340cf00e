"""``labelloop serve``: the web app under uvicorn."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from labelloop.cli._common import DatabaseUrl, console, settings_for


def serve_cmd(
    host: Annotated[
        str | None, typer.Option("--host", envvar="LABELLOOP_HOST", help="Address to bind.")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", envvar="LABELLOOP_PORT", help="Port to listen on.")
    ] = None,
    secure_cookies: Annotated[
        bool, typer.Option("--secure-cookies", help="Mark the session cookie Secure (HTTPS).")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Server processes. More than one uses more CPU cores; each process keeps "
            "its own login throttle and Idempotency-Key memory (see docs/web.md).",
        ),
    ] = 1,
    database_url: DatabaseUrl = None,
) -> None:
    """Serve the web app and the JSON API (default http://127.0.0.1:8000; API docs at /docs)."""
    import uvicorn

    from labelloop.web import create_app
    from labelloop.web.asgi import SECURE_COOKIES_ENV

    settings = settings_for(database_url)
    if host:
        settings.host = host
    if port:
        settings.port = port
    console.print(f"LabelLoop at [bold]http://{settings.host}:{settings.port}/[/] (Ctrl-C stops)")
    if workers == 1:
        app = create_app(settings, secure_cookies=secure_cookies, freeze_heap=True)
        uvicorn.run(
            app, host=settings.host, port=settings.port, log_level="info", proxy_headers=False
        )
        return
    # worker processes build their own app from the environment: the same database and
    # the same signing key (so a session cookie is good on every worker)
    os.environ["LABELLOOP_DATABASE_URL"] = settings.database_url
    os.environ["LABELLOOP_SECRET_KEY"] = settings.ensure_secret_key()
    os.environ[SECURE_COOKIES_ENV] = "1" if secure_cookies else ""
    uvicorn.run(
        "labelloop.web.asgi:app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level="info",
        # the app believes X-Forwarded-* from LABELLOOP_TRUSTED_PROXIES only (uvicorn's
        # own handling would trust 127.0.0.1 by default)
        proxy_headers=False,
    )
