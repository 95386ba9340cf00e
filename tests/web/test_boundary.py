"""Validation at the API boundary: ids beyond 32 bits, NUL, lone surrogates and
invisible characters are refused with a 422 naming the field, on both backends, and
nothing is stored (before, such input gave 500s on one backend or was stored).

The patterns the OpenAPI document states are checked against the validators that
enforce them, so the document says exactly what the API accepts.
"""

from __future__ import annotations

import base64
import json
import re
import unicodedata
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from croniter import croniter
from fastapi.testclient import TestClient
from hypothesis import example, given, settings
from hypothesis import strategies as st

from labelloop.audits.models import AuditPolicy
from labelloop.identifiers import problem
from labelloop.projects.models import Annotation, GoldLabel, Item, Prediction
from labelloop.trail.models import Event
from labelloop.web import create_app
from labelloop.web.api import schemas
from tests.web.conftest import ROLE_USERS, Demo, bearer, count_rows, make_settings, make_token

BIG_IDS = {"2^31": 2**31, "2^63": 2**63, "22 digits": 10**21 + 7}
#: Characters no identifier may hold, and what the API says about them.
BAD_IDENTIFIERS = {
    "NUL": "ab\x00c",
    "lone surrogate": "ab\ud800c",
    "bidi override": "ab\u202ec",
    "zero width space": "ab\u200bc",
    "zero width joiner": "ab\u200dc",
    "leading space": " abc",
}
#: What free text and free JSON may not hold.
BAD_TEXT = {"NUL": "ab\x00c", "lone surrogate": "ab\ud800c"}


@pytest.fixture(scope="module")
def api(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = create_app(make_settings(demo.url, Path(tmp_path_factory.mktemp("boundary"))))
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module")
def lead(demo: Demo) -> dict[str, str]:
    return bearer(make_token(demo, ROLE_USERS["lead"], "lead"))


@pytest.fixture(scope="module")
def item_id(api: TestClient, demo: Demo, lead: dict[str, str]) -> int:
    r = api.get(f"/api/v1/projects/{demo.project_id}/items", params={"limit": 1}, headers=lead)
    return int(r.json()["items"][0]["id"])


def send(api: TestClient, method: str, url: str, body: Any, headers: dict[str, str]) -> Any:
    """``body`` as JSON text with every non-ASCII character escaped (``\\ud800`` for a
    lone surrogate, which no UTF-8 encoder would write)."""
    return api.request(
        method,
        url,
        content=json.dumps(body).encode("ascii"),
        headers={**headers, "Content-Type": "application/json"},
    )


def assert_refused(r: Any, field: str) -> None:
    """A 422 whose details name ``field`` (the response is valid UTF-8 JSON)."""
    assert r.status_code == 422, r.text
    fields = [d["field"] for d in r.json()["error"]["details"]]
    assert field in fields, (field, r.json())


def _rows(demo: Demo) -> tuple[int, ...]:
    return tuple(
        count_rows(demo.url, model)
        for model in (Item, Annotation, GoldLabel, Prediction, AuditPolicy, Event)
    )


# ---------------------------------------------------------------------------- writes
def _write_cases() -> list[Any]:
    """(method, path, body or a function of the item id, the field named)."""
    cases: list[Any] = []
    items = "/projects/{p}/items"
    for name, bad in BAD_IDENTIFIERS.items():
        cases += [
            pytest.param(
                "POST",
                items,
                {"external_id": bad, "payload": {}},
                "external_id",
                id=f"item id {name}",
            ),
            pytest.param(
                "POST",
                items,
                {
                    "items": [
                        {"external_id": "b-ok", "payload": {}},
                        {"external_id": bad, "payload": {}},
                    ]
                },
                "items.1.external_id",
                id=f"batch item id {name}",
            ),
            pytest.param(
                "POST",
                items,
                {"external_id": "b-1", "payload": {}, "tags": ["ok", bad]},
                "tags.1",
                id=f"tag {name}",
            ),
            pytest.param(
                "POST",
                items,
                {"external_id": "b-1", "payload": {}, "segments": {"region": bad}},
                "segments.region",
                id=f"segment value {name}",
            ),
            pytest.param(
                "POST",
                "/projects/{p}/annotations",
                lambda item, bad=bad: {"item_id": item, "value": "billing", "external_key": bad},
                "external_key",
                id=f"annotation key {name}",
            ),
            pytest.param(
                "POST",
                "/projects/{p}/annotations",
                lambda item, bad=bad: {
                    "item_id": item,
                    "value": "billing",
                    "guideline_version": bad,
                },
                "guideline_version",
                id=f"guideline version {name}",
            ),
            pytest.param(
                "POST",
                "/projects/{p}/gold",
                lambda item, bad=bad: {"item_id": item, "value": "billing", "source": bad},
                "source",
                id=f"gold source {name}",
            ),
            pytest.param(
                "POST",
                "/projects/{p}/predictions",
                lambda item, bad=bad: {"item_id": item, "value": "billing", "model_name": bad},
                "model_name",
                id=f"model name {name}",
            ),
            pytest.param(
                "POST",
                "/projects/{p}/predictions",
                lambda item, bad=bad: {
                    "item_id": item,
                    "value": "billing",
                    "model_name": "m",
                    "model_version": bad,
                },
                "model_version",
                id=f"model version {name}",
            ),
            pytest.param(
                "POST",
                "/projects/{p}/audit-policies",
                {"name": bad},
                "name",
                id=f"policy name {name}",
            ),
            pytest.param(
                "POST",
                "/projects/{p}/audit-policies",
                {"name": "b-policy", "spec": {"reviewers": [bad]}},
                "spec.reviewers.0",
                id=f"reviewer {name}",
            ),
            pytest.param(
                "POST",
                "/projects/{p}/audit-policies",
                {"name": "b-policy", "spec": {"error_categories": ["boundary case", bad]}},
                "spec.error_categories.1",
                id=f"error category {name}",
            ),
            pytest.param(
                "POST",
                "/projects/{p}/audit-policies",
                {"name": "b-policy", "spec": {"population": {"labels": [bad]}}},
                "spec.population.labels.0",
                id=f"population label {name}",
            ),
            pytest.param(
                "PATCH",
                "/projects/{p}/audit-policies/web-weekly",
                {"spec": {"population": {"tags": [bad]}}},
                "spec.population.tags.0",
                id=f"patched population tag {name}",
            ),
        ]
    for name, bad in BAD_TEXT.items():
        cases += [
            pytest.param(
                "POST",
                items,
                {"external_id": "b-1", "payload": {"text": bad}},
                "payload",
                id=f"payload text {name}",
            ),
            pytest.param(
                "POST",
                items,
                {"external_id": "b-1", "payload": {bad: "text"}},
                "payload",
                id=f"payload key {name}",
            ),
            pytest.param(
                "POST",
                items,
                {"external_id": "b-1", "payload": {}, "metadata": {"a": [1, {"b": bad}]}},
                "metadata",
                id=f"nested metadata {name}",
            ),
            pytest.param(
                "POST",
                "/projects/{p}/annotations",
                lambda item, bad=bad: {"item_id": item, "value": bad},
                "value",
                id=f"annotation value {name}",
            ),
            pytest.param(
                "POST",
                "/projects/{p}/annotations",
                lambda item, bad=bad: {
                    "item_id": item,
                    "value": "billing",
                    "attributes": {"a": bad},
                },
                "attributes",
                id=f"annotation attributes {name}",
            ),
            pytest.param(
                "POST",
                "/projects/{p}/gold",
                lambda item, bad=bad: {"item_id": item, "value": "billing", "rationale": bad},
                "rationale",
                id=f"gold rationale {name}",
            ),
            pytest.param(
                "POST",
                "/projects/{p}/gold",
                lambda item, bad=bad: {"item_id": item, "value": [bad]},
                "value",
                id=f"gold value {name}",
            ),
            pytest.param(
                "POST",
                "/projects/{p}/audit-policies",
                {"name": "b-policy", "spec": {"cadence": bad}},
                "spec.cadence",
                id=f"cadence {name}",
            ),
        ]
    for name, big in BIG_IDS.items():
        for path in (
            "/projects/{p}/annotations",
            "/projects/{p}/gold",
            "/projects/{p}/predictions",
        ):
            cases.append(
                pytest.param(
                    "POST",
                    path,
                    {"item_id": big, "value": "billing", "model_name": "m"},
                    "item_id",
                    id=f"{path.rsplit('/', 1)[1]} item_id {name}",
                )
            )
        cases.append(
            pytest.param(
                "POST",
                "/projects/{p}/annotations",
                lambda item, big=big: {"item_id": item, "value": "billing", "annotator_id": big},
                "annotator_id",
                id=f"annotator_id {name}",
            )
        )
    return cases


@pytest.mark.parametrize(("method", "path", "body", "field"), _write_cases())
def test_write_refuses_with_the_field_and_stores_nothing(
    api: TestClient,
    demo: Demo,
    lead: dict[str, str],
    item_id: int,
    method: str,
    path: str,
    body: Any,
    field: str,
) -> None:
    url = "/api/v1" + path.format(p=demo.project_id)
    if callable(body):
        body = body(item_id)
    if method == "POST" and "audit-policies" in path:
        body = {**body, "name": body["name"] + "-" + uuid.uuid4().hex[:6]}
    before = _rows(demo)
    policy_before = api.get(url, headers=lead).json() if method == "PATCH" else None
    assert_refused(send(api, method, url, body, lead), field)
    assert _rows(demo) == before
    if policy_before is not None:
        assert api.get(url, headers=lead).json() == policy_before


def test_a_segment_key_is_an_identifier(api: TestClient, demo: Demo, lead: dict[str, str]) -> None:
    url = f"/api/v1/projects/{demo.project_id}/items"
    before = _rows(demo)
    for bad in BAD_IDENTIFIERS.values():
        body = {"external_id": "b-key", "payload": {}, "segments": {bad: "x"}}
        r = send(api, "POST", url, body, lead)
        assert r.status_code == 422, r.text
        (detail,) = r.json()["error"]["details"]
        # a key that is not text at all is refused before it is read as an identifier
        assert detail["field"].startswith("segments.")
        assert detail["code"] in ("identifier", "string_unicode")
    assert _rows(demo) == before


def test_a_skip_reason_holds_text(
    api: TestClient, demo: Demo, lead: dict[str, str], item_id: int
) -> None:
    url = f"/api/v1/projects/{demo.project_id}/work/{item_id}/skip"
    for bad in (*BAD_TEXT.values(), "   "):
        assert_refused(send(api, "POST", url, {"reason": bad}, lead), "reason")


# ----------------------------------------------------------------- paths and queries
@pytest.mark.parametrize("big", BIG_IDS.values(), ids=BIG_IDS.keys())
def test_ids_in_paths_are_32_bit(
    api: TestClient, demo: Demo, lead: dict[str, str], big: int
) -> None:
    p = demo.project_id
    for method, url, field in (
        ("GET", f"/api/v1/projects/{big}", "project_id"),
        ("GET", f"/api/v1/projects/{big}/items", "project_id"),
        ("POST", f"/api/v1/projects/{big}/work/next", "project_id"),
        ("GET", f"/api/v1/audit-runs/{big}", "run_id"),
        ("GET", f"/api/v1/audit-runs/{big}/report", "run_id"),
        ("POST", f"/api/v1/audit-runs/{big}/close", "run_id"),
        ("POST", f"/api/v1/projects/{p}/work/{big}/skip", "item_id"),
    ):
        body = {"reason": "r"} if url.endswith("/skip") else {}
        assert_refused(send(api, method, url, body, lead), field)
    # a policy is named by id or name: digits past the largest id are no policy
    for method in ("GET", "PATCH"):
        url = f"/api/v1/projects/{p}/audit-policies/{big}"
        r = send(api, method, url, {"active": True}, lead)
        assert r.status_code == 404, r.text
    r = api.get(f"/api/v1/projects/{p}/audit-policies/{big}/trend", headers=lead)
    assert r.status_code == 404, r.text


def test_queries_are_validated(api: TestClient, demo: Demo, lead: dict[str, str]) -> None:
    url = f"/api/v1/projects/{demo.project_id}/items"
    for name, bad in BAD_IDENTIFIERS.items():
        if name == "lone surrogate":
            continue  # a URL holds UTF-8: a lone surrogate cannot be sent at all
        for param, value in (("external_id", bad), ("tag", bad), ("segment", f"region={bad}")):
            r = api.get(url, params={param: value}, headers=lead)
            assert_refused(r, param)
    for cursor in ("garbage!", "gAAAAA", "AAAAAB", "AAAAAAA"):
        assert_refused(api.get(url, params={"cursor": cursor}, headers=lead), "cursor")
    assert_refused(
        api.get(
            f"/api/v1/projects/{demo.project_id}/gold", params={"cursor": "_____w"}, headers=lead
        ),
        "cursor",
    )


def test_cursors_page_through_every_item(api: TestClient, demo: Demo, lead: dict[str, str]) -> None:
    url = f"/api/v1/projects/{demo.project_id}/items"
    seen: list[int] = []
    cursor = None
    while True:
        page = api.get(
            url, params={"limit": 97, **({"cursor": cursor} if cursor else {})}, headers=lead
        ).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert re.fullmatch(schemas.CURSOR_PATTERN, cursor)
    assert seen == sorted(seen) and len(seen) == len(set(seen)) >= 300
    # the largest cursor is valid: past every item
    last = api.get(url, params={"cursor": "f____w"}, headers=lead)
    assert last.status_code == 200 and last.json() == {"items": [], "next_cursor": None}


def test_unparsable_bodies_are_one_422(api: TestClient, demo: Demo, lead: dict[str, str]) -> None:
    url = f"/api/v1/projects/{demo.project_id}/gold"
    for content in (b"{bad", b"\xff\xfe{", b"[" * 100_000):
        r = api.post(url, content=content, headers={**lead, "Content-Type": "application/json"})
        assert r.status_code == 422, r.text
        (detail,) = r.json()["error"]["details"]
        assert (detail["field"], detail["code"]) == ("body", "json_invalid")


def test_405_allows_every_method_of_the_path(api: TestClient, demo: Demo) -> None:
    p = demo.project_id
    for path, methods in (
        (f"/api/v1/projects/{p}/audit-policies", {"GET", "POST"}),
        (f"/api/v1/projects/{p}/audit-policies/web-weekly", {"GET", "PATCH"}),
        (f"/api/v1/projects/{p}/items", {"GET", "POST"}),
        ("/api/v1/me", {"GET"}),
    ):
        r = api.request("DELETE", path)
        assert r.status_code == 405
        assert set(r.headers["allow"].split(", ")) - {"HEAD"} == methods


# ------------------------------------------------------- the schema says what is taken
def _hidden_or_space(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cf") or ch.isspace() or ch.isdigit()


def test_character_classes_cover_every_plane() -> None:
    """The classes behind the patterns scan the planes where such characters live."""
    everywhere = [chr(cp) for cp in range(0x110000)]
    expected = {ord(ch) for ch in everywhere if _hidden_or_space(ch)}
    scanned = set(schemas._scan(_hidden_or_space))
    assert scanned == expected


INTERESTING = st.sampled_from(
    [
        " ",
        "\t",
        "\n",
        "\x00",
        "\x85",
        "\xa0",
        "\u200b",
        "\u200d",
        "\u202e",
        "\u2028",
        "\u3000",
        "\ufeff",
        "\U000e0041",
        "\U0001d173",
        "=",
        "a",
        "Z",
        "0",
        "9",
        "²",
        "٣",
        "é",
        "日",
    ]
)
TEXT = st.text(alphabet=st.one_of(INTERESTING, st.characters(exclude_categories=["Cs"])))


@settings(max_examples=400, derandomize=True, database=None, deadline=None)
@given(TEXT)
@example("")
@example("a b")
@example("a\u200b")
def test_identifier_pattern_is_the_validator(text: str) -> None:
    ok = problem(text) is None
    assert bool(re.fullmatch(schemas.IDENTIFIER_PATTERN, text)) == ok
    assert bool(re.fullmatch(schemas.OPTIONAL_IDENTIFIER_PATTERN, text)) == (ok or not text)
    named = ok and not text.isdigit()
    assert bool(re.fullmatch(schemas.NAME_PATTERN, text)) == named
    reason = "\x00" not in text and bool(text.strip())
    assert bool(re.fullmatch(schemas.REASON_PATTERN, text)) == reason
    key, sep, value = text.partition("=")
    segment = bool(sep) and problem(key) is None and problem(value) is None
    assert bool(re.fullmatch(schemas.SEGMENT_FILTER_PATTERN, text)) == segment


def test_patterns_read_the_same_in_the_schema_validator() -> None:
    """jsonschema-rs (what schemathesis validates with) reads the patterns as Python does."""
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    for pattern in (schemas.IDENTIFIER_PATTERN, schemas.NAME_PATTERN, schemas.REASON_PATTERN):
        validator = jsonschema_rs.validator_for({"type": "string", "pattern": pattern})
        for text in ("ok", " x", "x\u200b", "a\U0001d173b", "日本", "12", "x\x00", "\u3000"):
            assert validator.is_valid(text) == bool(re.fullmatch(pattern, text)), (pattern, text)


@settings(max_examples=100, derandomize=True, database=None, deadline=None)
@given(st.from_regex(schemas.CRON_PATTERN, fullmatch=True))
def test_every_cron_the_pattern_takes_is_valid(cadence: str) -> None:
    assert cadence == "manual" or croniter.is_valid(cadence)


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(st.integers(0, schemas.MAX_ID))
def test_cursors_round_trip(last_id: int) -> None:
    from labelloop.web.api import v1
    from labelloop.web.queries import decode_cursor

    cursor = v1._next_cursor(v1.queries.encode_cursor(last_id))
    assert cursor is not None and re.fullmatch(schemas.CURSOR_PATTERN, cursor)
    assert decode_cursor(v1._after(cursor) or "") == last_id
    assert int.from_bytes(base64.urlsafe_b64decode(cursor + "=="), "big") == last_id
