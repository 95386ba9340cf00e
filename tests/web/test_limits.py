"""Resource exhaustion by clients: bodies are refused before they are read (anonymous
callers, callers who may not upload) or as soon as they pass the limit, on a real
server over a real socket; password checks are bounded."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from labelloop.projects.models import Item
from labelloop.web import create_app
from labelloop.web.errors import TooManyAttempts
from labelloop.web.security import PasswordGate
from tests.web.conftest import (
    ROLE_USERS,
    Demo,
    bearer,
    count_rows,
    csrf_of,
    live_server,
    make_settings,
    make_token,
)

MIB = 1024 * 1024


def _send(
    port: int, head: str, chunks: Iterator[bytes], *, chunked: bool = False
) -> tuple[int, int]:
    """Send ``head`` and then body chunks until the server answers (or stops reading);
    returns (status, body bytes sent)."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    sent = 0
    try:
        conn.sendall(head.encode("latin-1"))
        for chunk in chunks:
            if select.select([conn], [], [], 0)[0]:
                break  # the answer is there: stop sending
            data = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk
            try:
                conn.sendall(data)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                break
            sent += len(chunk)
        status_line = conn.makefile("rb").readline().decode("latin-1")
    finally:
        conn.close()
    return int(status_line.split()[1]), sent


def _zeros(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    block = b"0" * size
    for _ in range(total // size):
        yield block


def _sign_in(port: int, username: str) -> tuple[str, str]:
    """(cookie header, CSRF token) of a session signed in over HTTP."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        csrf = csrf_of(client.get("/login").text)
        r = client.post(
            "/login",
            data={"username": username, "password": "labelloop-demo", "csrf_token": csrf},
        )
        assert r.status_code == 303, r.text
        csrf = csrf_of(client.get("/").text)
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    return cookie, csrf


def test_bodies_are_refused_before_they_are_read(demo: Demo, tmp_path: Path) -> None:
    settings = make_settings(demo.url, tmp_path)
    settings.max_upload_bytes = 4 * MIB
    app = create_app(settings)
    total = 200 * MIB
    with live_server(app) as port:
        # an anonymous 200 MiB JSON body: 401 before the body is read
        head = (
            f"POST /api/v1/projects/{demo.project_id}/items HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\nContent-Length: {total}\r\n\r\n"
        )
        status, sent = _send(port, head, _zeros(total))
        assert status == 401 and sent < 32 * MIB, sent
        # an annotator's upload: 403 (they may not import) before the body is read
        cookie, csrf = _sign_in(port, ROLE_USERS["annotator"])
        boundary = "llboundary"
        head = (
            f"POST /projects/{demo.project_id}/imports HTTP/1.1\r\nHost: x\r\n"
            f"Cookie: {cookie}\r\nX-CSRF-Token: {csrf}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {2 * 1024 * MIB}\r\n\r\n"
        )
        status, sent = _send(port, head, _zeros(total))
        assert status == 403 and sent < 32 * MIB, sent
        # the lead's upload over the limit, with no declared length: stopped as it streams
        cookie, csrf = _sign_in(port, ROLE_USERS["lead"])
        head = (
            f"POST /projects/{demo.project_id}/imports HTTP/1.1\r\nHost: x\r\n"
            f"Cookie: {cookie}\r\nX-CSRF-Token: {csrf}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        )
        part = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"'
            "\r\nContent-Type: text/csv\r\n\r\n"
        ).encode()

        def body() -> Iterator[bytes]:
            yield part
            yield from _zeros(total)

        items = count_rows(demo.url, Item)
        status, sent = _send(port, head, body(), chunked=True)
        assert status == 413 and sent < 32 * MIB, sent
        assert count_rows(demo.url, Item) == items


def test_json_over_the_limit_is_413_in_the_api_shape(demo: Demo, tmp_path: Path) -> None:
    settings = make_settings(demo.url, tmp_path)
    settings.max_json_bytes = 4096
    h = bearer(make_token(demo, ROLE_USERS["lead"], "lead"))
    items = count_rows(demo.url, Item)
    with TestClient(create_app(settings)) as api:
        body = {"external_id": "too-big", "payload": {"text": "x" * 8000}}
        r = api.post(f"/api/v1/projects/{demo.project_id}/items", json=body, headers=h)
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "payload_too_large"
        small = {"external_id": "small-enough-for-the-limit", "payload": {"text": "x"}}
        r = api.post(f"/api/v1/projects/{demo.project_id}/items", json=small, headers=h)
        assert r.status_code in (200, 201), r.text
    assert count_rows(demo.url, Item) in (items, items + 1)
    assert count_rows(demo.url, Item, external_id="too-big") == 0


def test_password_checks_wait_for_a_slot_then_give_up() -> None:
    gate = PasswordGate(slots=1, wait=0.05)
    with gate.slot(), pytest.raises(TooManyAttempts), gate.slot():
        pass
    with gate.slot():  # free again
        pass


def test_sign_in_is_refused_while_every_password_slot_is_busy(demo: Demo, tmp_path: Path) -> None:
    settings = make_settings(demo.url, tmp_path)
    settings.login_concurrency, settings.login_queue_seconds = 1, 0.05
    app = create_app(settings)
    with TestClient(app) as client:
        csrf = csrf_of(client.get("/login").text)
        form = {"username": ROLE_USERS["lead"], "password": "labelloop-demo", "csrf_token": csrf}
        with app.state.password_gate.slot():
            r = client.post("/login", data=form, follow_redirects=False)
            assert r.status_code == 429 and r.headers["retry-after"]
        assert client.post("/login", data=form, follow_redirects=False).status_code == 303
