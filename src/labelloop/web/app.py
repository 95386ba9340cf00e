"""The application factory. Nothing is global: ``create_app(settings)`` builds an app
whose lifespan owns the database engine."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from anyio import to_thread
from fastapi import Depends, FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from labelloop import __version__
from labelloop.accounts.service import prepare_sign_in
from labelloop.settings import Settings
from labelloop.store import make_engine, make_session_factory
from labelloop.web import errors
from labelloop.web.idempotency import IdempotencyStore
from labelloop.web.limits import BodyLimit
from labelloop.web.security import LoginThrottle, PasswordGate, ProxyHeaders, csrf_protect
from labelloop.web.templating import make_templates

STATIC = Path(__file__).with_name("static")
SESSION_COOKIE = "labelloop_session"
#: Threads for sync routes (anyio's default is 40); see the lifespan below.
WORKER_THREADS = 256

#: Pages may load scripts, styles and images from this origin only.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self'; frame-ancestors 'self'; form-action 'self'; base-uri 'none'; "
    "object-src 'none'"
)


#: The API explorer (``/docs``): the vendored Swagger UI sets styles from its script.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'; object-src 'none'"
)


class SecurityHeaders:
    """Adds the security headers to every response (a plain ASGI middleware: Starlette's
    ``BaseHTTPMiddleware`` costs a task group and a stream per request).

    Everything but the static assets is ``Cache-Control: no-store``: pages and API
    answers hold personal data, gold labels and exports, and a shared or back-button
    cache must not keep them after the user signs out.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "same-origin")
                docs = path == "/docs"
                headers.setdefault("Content-Security-Policy", DOCS_CSP if docs else PAGE_CSP)
                headers.setdefault("X-Frame-Options", "DENY" if docs else "SAMEORIGIN")
                if not path.startswith("/static/"):
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    settings: Settings,
    *,
    secure_cookies: bool = False,
    login_attempts: int = 5,
    login_window_seconds: float = 15 * 60,
    freeze_heap: bool = False,
) -> FastAPI:
    """The LabelLoop web app: HTML pages, the JSON API under ``/api/v1`` (OpenAPI at
    ``/docs``) and the vendored static assets.

    ``secure_cookies`` marks the session cookie ``Secure`` (serve over HTTPS then).
    ``freeze_heap`` (for a server process, not for tests that build many apps) moves
    the objects alive at start-up out of the garbage collector's reach with
    :func:`gc.freeze`: the ~250,000 objects of the imported stack made each full
    collection stop every request for 100-150 ms on a busy 2-core machine; afterwards a
    full collection scans only what was allocated since (about 10 ms).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Sync routes and dependencies run on worker threads; leave threads to spare for
        # requests that wait (for a pooled connection, a lock, or a long read).
        to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
        engine = make_engine(settings)
        app.state.engine = engine
        app.state.sessions = make_session_factory(engine)
        # SQLite: callers are looked up through a read-only engine (see web/deps.py)
        reader = make_engine(settings, read_only=True) if engine.dialect.name == "sqlite" else None
        app.state.read_sessions = None if reader is None else make_session_factory(reader)
        # the dummy password hash of constant-time sign-ins, made before the first one
        await to_thread.run_sync(prepare_sign_in)
        if freeze_heap:
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            if freeze_heap:
                gc.unfreeze()
            engine.dispose()
            if reader is not None:
                reader.dispose()

    app = FastAPI(
        title="LabelLoop",
        version=__version__,
        description="Data-labeling quality: projects, items, annotations, gold labels, "
        "predictions and audits. Authenticate with `Authorization: Bearer <token>` "
        "(`labelloop user token create`). Errors have one shape: "
        '`{"error": {"code", "message", "details"}}`.',
        lifespan=lifespan,
        dependencies=[Depends(csrf_protect)],
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.templates = make_templates()
    app.state.throttle = LoginThrottle(limit=login_attempts, window=login_window_seconds)
    app.state.password_gate = PasswordGate(settings.login_concurrency, settings.login_queue_seconds)
    app.state.idempotency = IdempotencyStore()

    # innermost first: body limits see the session (their 413 page needs it), the
    # headers go on every response, the proxy's client address is set before all
    app.add_middleware(
        BodyLimit, json_limit=settings.max_json_bytes, upload_limit=settings.max_upload_bytes
    )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.ensure_secret_key(),
        session_cookie=SESSION_COOKIE,
        max_age=int(settings.session_hours * 3600),
        same_site="lax",
        https_only=secure_cookies,
    )
    app.add_middleware(ProxyHeaders, networks=settings.proxy_networks())
    errors.install(app)

    from labelloop.web.api import router as api_router
    from labelloop.web.pages import router as pages_router

    app.include_router(pages_router)
    app.include_router(api_router, prefix="/api/v1")
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> Response:
        """The OpenAPI explorer, from the vendored swagger-ui (works offline; started
        by a static script, so the page needs no inline script)."""
        response: Response = app.state.templates.TemplateResponse(request, "api_docs.html", {})
        return response

    return app
