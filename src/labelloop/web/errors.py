"""The one place where errors become HTTP responses, for pages and for the JSON API.

Domain errors (:mod:`labelloop.errors`) carry no HTTP; this module maps them::

    NotFound            404  not_found
    AcknowledgementRequired 409 guideline_unacknowledged
    Conflict            409  conflict
    PermissionDenied    403  forbidden
    RateLimited         429  too_many_attempts
    ValidationFailed    422  validation_failed   (details: one entry per violation)
    ImportFailed        422  import_failed       (details: the first problems)
    ConfigurationError  500  configuration_error
    TrailBroken         500  trail_broken
    other LabelLoopError 400 bad_request
    a unique violation or deadlock with a concurrent request   409 conflict

and the web layer's own errors: :class:`LoginRequired` (401 for the API, a redirect to
the login page for pages), :class:`CsrfFailed` (403), :class:`TooManyAttempts` (429),
FastAPI's request validation (422) and ``HTTPException``. A body that cannot be parsed
(not JSON, not UTF-8) is a 422 ``json_invalid`` on ``body`` whatever the parser choked
on, and a 405 lists in ``Allow`` every method the path has. Requests under ``/api/``
get JSON in one shape, ``{"error": {"code", "message", "details"}}``; pages get the
``error.html`` template with the same status.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from labelloop.errors import (
    AcknowledgementRequired,
    ConfigurationError,
    Conflict,
    ImportFailed,
    LabelLoopError,
    NotFound,
    PermissionDenied,
    RateLimited,
    TrailBroken,
    ValidationFailed,
)
from labelloop.store.conflicts import is_concurrent_conflict


class WebError(Exception):
    """An error of the web layer itself, with its status and code."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.headers = headers or {}


class LoginRequired(WebError):
    status = 401
    code = "unauthenticated"


class CsrfFailed(WebError):
    status = 403
    code = "csrf_failed"


class TooManyAttempts(WebError):
    status = 429
    code = "too_many_attempts"


class IdempotencyReplay(Exception):
    """Raised to answer a retried request with the stored response."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__("replay")
        self.status = status
        self.body = body


DOMAIN: list[tuple[type[LabelLoopError], int, str]] = [
    (NotFound, 404, "not_found"),
    (AcknowledgementRequired, 409, "guideline_unacknowledged"),
    (Conflict, 409, "conflict"),
    (PermissionDenied, 403, "forbidden"),
    (RateLimited, 429, "too_many_attempts"),
    (ValidationFailed, 422, "validation_failed"),
    (ImportFailed, 422, "import_failed"),
    (ConfigurationError, 500, "configuration_error"),
    (TrailBroken, 500, "trail_broken"),
]

HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "too_many_attempts",
}


def status_of(exc: LabelLoopError) -> tuple[int, str]:
    for cls, status, code in DOMAIN:
        if isinstance(exc, cls):
            return status, code
    return 400, "bad_request"


def _detail(v: Any) -> dict[str, Any]:
    if hasattr(v, "field") and hasattr(v, "message"):
        return {
            "field": v.field,
            "code": getattr(v, "code", None),
            "message": v.message,
            "severity": getattr(v, "severity", "error"),
        }
    if hasattr(v, "line") and hasattr(v, "message"):  # import issues
        return {
            "field": getattr(v, "field", None),
            "line": v.line,
            "code": getattr(v, "code", None),
            "message": v.message,
        }
    return {"field": None, "code": None, "message": str(v)}


def details_of(exc: LabelLoopError) -> list[dict[str, Any]]:
    if isinstance(exc, ValidationFailed):
        return [_detail(v) for v in exc.violations]
    if isinstance(exc, ImportFailed):
        return [_detail(v) for v in exc.issues]
    if isinstance(exc, TrailBroken):
        return [{"field": None, "code": None, "message": p} for p in exc.problems]
    return []


def _printable(value: Any) -> Any:
    """``value`` with every lone surrogate written as an escape: an error may quote
    what it refuses (a field path holds the keys of a mapping), and UTF-8 has no
    encoding for a lone surrogate."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_printable(k): _printable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_printable(v) for v in value]
    return value


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> Any:
    return _printable({"error": {"code": code, "message": message, "details": details or []}})


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/openapi.json"


def _respond(
    request: Request,
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    if wants_json(request):
        return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)
    from labelloop.web.templating import render

    return render(
        request,
        "error.html",
        {
            "status": status,
            "code": code,
            "message": _printable(message),
            "details": _printable(details or []),
        },
        status_code=status,
        headers=headers,
    )


async def _domain(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LabelLoopError)
    status, code = status_of(exc)
    return _respond(request, status, code, str(exc), details_of(exc))


async def _web(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, WebError)
    if isinstance(exc, LoginRequired) and not wants_json(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    headers = dict(exc.headers)
    if isinstance(exc, LoginRequired):
        headers.setdefault("WWW-Authenticate", "Bearer")
    return _respond(request, exc.status, exc.code, str(exc), headers=headers)


#: FastAPI's answer to a body its JSON parser could not read (e.g. not UTF-8).
_UNPARSABLE_BODY = "There was an error parsing the body"


def _unparsable(request: Request, why: str) -> Response:
    details = [{"field": "body", "in": "body", "code": "json_invalid", "message": why}]
    return _respond(
        request, 422, "validation_failed", "the request body is not valid JSON", details
    )


def _endpoints(routes: Iterable[Any]) -> Iterator[tuple[re.Pattern[str], set[str]]]:
    """(path regex, methods) of every endpoint, through included routers (FastAPI keeps
    them as nodes whose ``effective_route_contexts`` are the endpoints)."""
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            for ctx in contexts():
                if ctx.methods and ctx.path_regex is not None:
                    yield ctx.path_regex, set(ctx.methods)
            continue
        methods, regex = getattr(route, "methods", None), getattr(route, "path_regex", None)
        if methods and regex is not None:
            yield regex, set(methods)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path (for ``Allow``)."""
    path, root = request.scope["path"], request.scope.get("root_path", "")
    if root and path.startswith(root + "/"):
        path = path[len(root) :]
    methods: set[str] = set()
    for regex, route_methods in _endpoints(request.app.router.routes):
        if regex.match(path):
            methods |= route_methods
    return sorted(methods)


async def _request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    details = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":  # where the parser stopped is no field
            ctx = err.get("ctx") or {}
            return _unparsable(request, f"JSON decode error: {ctx.get('error', err.get('msg'))}")
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path", "header", "form"):
            where, loc = loc[0], loc[1:]
        else:
            where = None
        details.append(
            {
                "field": ".".join(loc) if loc else None,
                "in": where,
                "code": err.get("type"),
                "message": err.get("msg"),
            }
        )
    return _respond(request, 422, "validation_failed", "the request is not valid", details)


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _UNPARSABLE_BODY:
        cause = exc.__cause__
        if isinstance(cause, UnicodeDecodeError):
            why = f"not UTF-8: {cause.reason} at byte {cause.start}"
        else:
            why = "nested too deeply" if isinstance(cause, RecursionError) else "unreadable"
        return _unparsable(request, f"the body cannot be read as JSON ({why})")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:  # Starlette names the methods of one route only
        headers["Allow"] = ", ".join(allowed_methods(request))
    code = HTTP_CODES.get(exc.status_code, "error")
    return _respond(request, exc.status_code, code, str(exc.detail), headers=headers)


async def _database(request: Request, exc: Exception) -> Response:
    """A race with a concurrent request that no service turned into its own answer (a
    unique violation, a deadlock): 409, to be retried. Any other database error is a
    server error."""
    if not is_concurrent_conflict(exc):
        raise exc
    return _respond(
        request,
        409,
        "conflict",
        "a concurrent request changed the same records; send the request again",
    )


async def _replay(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, IdempotencyReplay)
    return JSONResponse(exc.body, status_code=exc.status, headers={"Idempotent-Replayed": "true"})


def install(app: FastAPI) -> None:
    """Register every handler on ``app``."""
    app.add_exception_handler(LabelLoopError, _domain)
    app.add_exception_handler(WebError, _web)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(IdempotencyReplay, _replay)
    app.add_exception_handler(DBAPIError, _database)
