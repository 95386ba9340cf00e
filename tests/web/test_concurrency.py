"""Real concurrent clients against a real server: races on the same key answer as a
retry would (the idempotent answer) or 409, never 500, and nothing is stored twice.

Found on PostgreSQL: 37 of 60 simultaneous workbench submits by the same holders, 14
of 20 API posts with the same ``external_key`` and 9 of 20 simultaneous creations of
one item answered 500 (unique violations). The same clients run against SQLite too.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from labelloop.accounts.models import Membership, User
from labelloop.projects.models import Annotation, Item
from labelloop.store import make_engine, make_session_factory, session_scope
from labelloop.web import create_app
from tests.web.conftest import (
    ROLE_USERS,
    Demo,
    bearer,
    count_rows,
    live_server,
    make_settings,
    make_token,
    user_id,
)


def _at_once(n: int, call: Callable[[int], httpx.Response]) -> list[httpx.Response]:
    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(call, range(n)))


def _annotators(demo: Demo, n: int) -> list[str]:
    """``n`` of the demo project's annotators (not the role logins other tests use)."""
    engine = make_engine(demo.url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            names = s.scalars(
                select(User.username)
                .join(Membership, Membership.user_id == User.id)
                .where(
                    Membership.project_id == demo.project_id,
                    Membership.role == "annotator",
                    User.username.not_in(list(ROLE_USERS.values())),
                )
                .order_by(User.username)
            ).all()
    finally:
        engine.dispose()
    assert len(names) >= n
    return list(names[-n:])


def test_concurrent_requests_never_answer_500(demo: Demo, tmp_path: Path) -> None:
    app = create_app(make_settings(demo.url, tmp_path))
    holders = [bearer(make_token(demo, name, "annotator")) for name in _annotators(demo, 6)]
    lead = bearer(make_token(demo, ROLE_USERS["lead"], "lead"))
    project = demo.project_id
    with (
        live_server(app) as port,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http,
    ):

        def post(url: str, headers: dict[str, str], body: Any = None) -> httpx.Response:
            return http.post(url, json=body, headers=headers)

        # the same holder asks for work ten times at once: one lease, the same item
        served = _at_once(10, lambda n: post(f"/api/v1/projects/{project}/work/next", holders[0]))
        assert [r.status_code for r in served] == [200] * 10, [r.text for r in served]
        assert len({r.json()["item"]["item_id"] for r in served}) == 1
        items = [
            post(f"/api/v1/projects/{project}/work/next", h).json()["item"]["item_id"]
            for h in holders
        ]

        # 60 simultaneous submissions by six holders of their items: one vote each
        def submit(n: int) -> httpx.Response:
            k = n % len(holders)
            body = {"item_id": items[k], "value": "billing"}
            return post(f"/api/v1/projects/{project}/annotations", holders[k], body)

        answers = _at_once(60, submit)
        by_status = Counter(r.status_code for r in answers)
        assert by_status == {201: 6, 409: 54}, (by_status, [r.text for r in answers][:5])
        for name, item in zip(_annotators(demo, 6), items, strict=True):
            who = user_id(demo, name)
            assert count_rows(demo.url, Annotation, item_id=item, annotator_id=who) == 1

        # 20 posts of one annotation by a lead with the same external_key: one row
        annotator = user_id(demo, ROLE_USERS["annotator"])
        race = f"race-{uuid.uuid4().hex[:8]}"  # new keys on every run of the shared demo
        body = {
            "item_id": items[0],
            "value": "refund",
            "annotator_id": annotator,
            "external_key": race,
        }
        answers = _at_once(
            20, lambda n: post(f"/api/v1/projects/{project}/annotations", lead, body)
        )
        assert {r.status_code for r in answers} == {201}, [r.text for r in answers][:3]
        assert count_rows(demo.url, Annotation, external_key=race) == 1

        # 20 simultaneous creations of one item: created once, found 19 times
        item = {"external_id": f"{race}-item", "payload": {"text": "created at once"}}
        answers = _at_once(20, lambda n: post(f"/api/v1/projects/{project}/items", lead, item))
        by_status = Counter(r.status_code for r in answers)
        assert by_status == {201: 1, 200: 19}, (by_status, [r.text for r in answers][:3])
        assert count_rows(demo.url, Item, external_id=f"{race}-item") == 1
