"""Sign-in, sessions, CSRF and login throttling."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.web.conftest import Demo, csrf_of, login


def test_pages_redirect_anonymous_to_login_and_api_answers_401(fresh_app: FastAPI) -> None:
    with TestClient(fresh_app) as c:
        r = c.get("/projects/1?x=1", follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == "/login?next=%2Fprojects%2F1%3Fx%3D1"
        r = c.get("/api/v1/projects")
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"]["code"] == "unauthenticated"


def test_session_cookie_is_signed_httponly_and_lax(fresh_app: FastAPI) -> None:
    with TestClient(fresh_app) as c:
        token = csrf_of(c.get("/login").text)
        r = c.post(
            "/login",
            data={"username": "demo.lead", "password": "labelloop-demo", "csrf_token": token},
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"] == "/"
        cookie = r.headers["set-cookie"].lower()
        assert "labelloop_session=" in cookie
        assert "httponly" in cookie and "samesite=lax" in cookie
        # the session changes at sign-in (no fixation): the old CSRF token is gone
        assert csrf_of(c.get("/").text) != token
        # a tampered cookie is ignored
        value = c.cookies.get("labelloop_session")
        assert value
        c.cookies.clear()
        c.cookies.set(
            "labelloop_session", value[:-6] + ("AAAAAA" if value[-6:] != "AAAAAA" else "BBBBBB")
        )
        assert c.get("/", follow_redirects=False).status_code == 303


def test_next_only_follows_local_paths(fresh_app: FastAPI) -> None:
    with TestClient(fresh_app) as c:
        token = csrf_of(c.get("/login").text)
        r = c.post(
            "/login",
            data={
                "username": "demo.lead",
                "password": "labelloop-demo",
                "csrf_token": token,
                "next": "//evil.example/x",
            },
            follow_redirects=False,
        )
        assert r.headers["location"] == "/"


def test_wrong_password_shows_the_form_again(fresh_app: FastAPI) -> None:
    with TestClient(fresh_app) as c:
        token = csrf_of(c.get("/login").text)
        r = c.post(
            "/login",
            data={"username": "demo.lead", "password": "nope-nope", "csrf_token": token},
        )
        assert r.status_code == 200
        assert "Unknown user or wrong password." in r.text
        assert c.get("/", follow_redirects=False).status_code == 303


def test_post_without_csrf_token_is_refused(fresh_app: FastAPI, demo: Demo) -> None:
    with TestClient(fresh_app) as c:
        # the login form itself is protected
        r = c.post("/login", data={"username": "demo.lead", "password": "labelloop-demo"})
        assert r.status_code == 403 and "CSRF" in r.text
        csrf = login(c, "demo.auditor")
        url = f"/audits/runs/{demo.open_run_id}/queue/{demo.auditor_assignment_ids[0]}"
        r = c.post(url, data={"verdict": "unsure"})
        assert r.status_code == 403
        r = c.post(url, data={"verdict": "unsure", "csrf_token": "forged"})
        assert r.status_code == 403
        r = c.post("/logout", data={})
        assert r.status_code == 403
        # JSON API with the session cookie needs the header too
        r = c.post(
            f"/api/v1/projects/{demo.project_id}/annotations", json={"item_id": 1, "value": "x"}
        )
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "csrf_failed"
        # and with it the request reaches the service (the auditor may not annotate)
        r = c.post(
            f"/api/v1/projects/{demo.project_id}/annotations",
            json={"item_id": 1, "value": "x"},
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        r = c.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
        assert r.status_code == 303
        assert c.get("/", follow_redirects=False).status_code == 303


def test_login_throttling(demo: Demo, tmp_path: object) -> None:
    from pathlib import Path

    from labelloop.web import create_app
    from tests.web.conftest import make_settings

    assert isinstance(tmp_path, Path)
    app = create_app(make_settings(demo.url, tmp_path), login_attempts=3)
    with TestClient(app) as c:
        for _ in range(3):
            token = csrf_of(c.get("/login").text)
            r = c.post(
                "/login",
                data={"username": "demo.mentor", "password": "wrong-1234", "csrf_token": token},
            )
            assert r.status_code == 200
        token = csrf_of(c.get("/login").text)
        # even the right password is refused while throttled
        r = c.post(
            "/login",
            data={"username": "Demo.Mentor", "password": "labelloop-demo", "csrf_token": token},
        )
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) > 0
        # another username from the same address is not affected
        r = c.post(
            "/login",
            data={"username": "maria.lopez", "password": "labelloop-demo", "csrf_token": token},
            follow_redirects=False,
        )
        assert r.status_code == 303


def test_throttle_window_expires() -> None:
    from labelloop.web.security import LoginThrottle

    t = LoginThrottle(limit=2, window=60)
    t.failed("u", "ip", now=0)
    t.failed("u", "ip", now=10)
    assert t.retry_after("u", "ip", now=20) == 41
    assert t.retry_after("u", "ip", now=60) is None  # the first failure aged out
    t.succeeded("u", "ip")
    assert t.retry_after("u", "ip", now=11) is None


def test_security_headers(fresh_app: FastAPI) -> None:
    with TestClient(fresh_app) as c:
        r = c.get("/login")
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "SAMEORIGIN"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert c.get("/healthz").json() == {"status": "ok"}
