"""``labelloop serve``: the web app under uvicorn."""

from __future__ import annotations

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
    database_url: DatabaseUrl = None,
) -> None:
    """Serve the web app and the JSON API (default http://127.0.0.1:8000; API docs at /docs)."""
    import uvicorn

    from labelloop.web import create_app

    settings = settings_for(database_url)
    if host:
        settings.host = host
    if port:
        settings.port = port
    app = create_app(settings, secure_cookies=secure_cookies)
    console.print(f"LabelLoop at [bold]http://{settings.host}:{settings.port}/[/] (Ctrl-C stops)")
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
