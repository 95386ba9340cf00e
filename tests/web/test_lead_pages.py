"""Lead pages: audit policies (create, edit, invalid input, run now), imports by upload
(counts, the error list, re-upload) and exports (downloads that parse)."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from labelloop.accounts.roles import Role
from labelloop.accounts.service import grant
from labelloop.audits.models import AuditPolicy, AuditRun
from labelloop.projects.importer import import_file
from labelloop.projects.models import Annotation, ImportBatch, Item, Project
from labelloop.projects.schemas import LabelSchema
from labelloop.projects.service import create_project
from labelloop.store import make_engine, make_session_factory, session_scope
from labelloop.trail.models import Event
from tests.web.conftest import OPERATOR, ROLE_USERS, Demo, count_rows

Clients = dict[str, tuple[TestClient, str | None]]


def _policy(demo: Demo, name: str) -> AuditPolicy | None:
    engine = make_engine(demo.url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            p = s.scalar(select(AuditPolicy).where(AuditPolicy.name == name))
            if p is not None:
                s.expunge(p)
            return p
    finally:
        engine.dispose()


@pytest.fixture
def lead(clients: Clients) -> Iterator[tuple[TestClient, str]]:
    client, csrf = clients["lead"]
    assert csrf is not None
    yield client, csrf


def _form(csrf: str, **fields: str) -> dict[str, str]:
    base = {
        "csrf_token": csrf,
        "cadence": "0 6 * * MON",
        "window": "last_days",
        "window_days": "3660",
        "strata": "annotator",
        "allocation": "proportional",
        "sample_size": "10",
        "target_half_width": "",
        "min_per_stratum": "1",
        "reviewers": "demo.auditor, demo.adjudicator",
        "blind": "on",
        "double_review_fraction": "0",
        "error_categories": "boundary case\nguideline misread\n",
        "active": "on",
        "advanced": "",
    }
    base.update(fields)
    return base


# ------------------------------------------------------------------------ policies
def test_policy_list_shows_policies_and_the_form(lead: tuple[TestClient, str], demo: Demo) -> None:
    client, _ = lead
    r = client.get(f"/projects/{demo.project_id}/policies")
    assert r.status_code == 200
    html = r.text
    assert "web-weekly" in html and 'id="new-policy"' in html
    row = re.search(r'<tr id="policy-\d+">\s*<td><a [^>]*>web-weekly</a>(.*?)</tr>', html, re.S)
    assert row, "no row for web-weekly"
    assert "annotator" in row.group(1) and "Run now" in row.group(1)
    assert re.search(r"#\d+</a> <span class=\"status status-closed\">", row.group(1))  # last run


def test_create_policy_then_edit_it(lead: tuple[TestClient, str], demo: Demo) -> None:
    client, csrf = lead
    name = f"lp-{uuid.uuid4().hex[:8]}"
    events = count_rows(demo.url, Event, action="audit_policy.create")
    r = client.post(
        f"/projects/{demo.project_id}/policies",
        data=_form(csrf, name=name),
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:500]
    created = _policy(demo, name)
    assert created is not None and created.active
    assert created.cadence == "0 6 * * MON"
    assert created.spec["strata"] == ["annotator"] and created.spec["sample_size"] == 10
    assert created.spec["reviewers"] == ["demo.auditor", "demo.adjudicator"]
    assert created.spec["error_categories"] == ["boundary case", "guideline misread"]
    assert created.spec["window"] == "last_days" and created.spec["double_review_fraction"] == 0
    assert count_rows(demo.url, Event, action="audit_policy.create") == events + 1
    listing = client.get(r.headers["location"]).text
    row = re.search(rf'<tr id="policy-{created.id}">(.*?)</tr>', listing, re.S)
    assert row and name in row.group(1)
    assert re.search(r"\d{4}-\d\d-\d\d 06:00", row.group(1))  # next due: a Monday 06:00

    # the edit page is filled in; saving changes the spec and switches the schedule off
    page = client.get(f"/projects/{demo.project_id}/policies/{created.id}")
    assert page.status_code == 200
    assert 'name="sample_size" value="10"' in page.text
    assert "guideline misread</textarea>" in page.text
    edit = _form(csrf, sample_size="12", advanced="confidence: 0.9\n")
    del edit["active"]
    r = client.post(
        f"/projects/{demo.project_id}/policies/{created.id}", data=edit, follow_redirects=False
    )
    assert r.status_code == 303, r.text[:500]
    changed = _policy(demo, name)
    assert changed is not None and not changed.active
    assert changed.spec["sample_size"] == 12 and changed.spec["confidence"] == 0.9
    page = client.get(f"/projects/{demo.project_id}/policies/{created.id}").text
    assert "confidence: 0.9" in page  # non-default advanced settings are shown
    assert count_rows(demo.url, Event, action="audit_policy.update", entity_id=str(created.id)) == 1
    assert (
        count_rows(demo.url, Event, action="audit_policy.deactivate", entity_id=str(created.id))
        == 1
    )


def test_invalid_policy_rerenders_with_field_messages(
    lead: tuple[TestClient, str], demo: Demo
) -> None:
    client, csrf = lead
    before = count_rows(demo.url, AuditPolicy)
    r = client.post(
        f"/projects/{demo.project_id}/policies",
        data=_form(
            csrf,
            name="",
            cadence="every monday",
            sample_size="ten",
            strata="annotator, colour",
            advanced="population: [1, 2",
        ),
    )
    assert r.status_code == 422
    html = r.text
    for field in ("name", "sample_size", "advanced"):
        assert f'id="err-{field}"' in html, field
    assert 'value="every monday"' in html  # what was typed stays
    # once the parse errors are fixed, the spec's own validation names its fields
    r = client.post(
        f"/projects/{demo.project_id}/policies",
        data=_form(csrf, name="bad-spec", cadence="every monday", strata="colour"),
    )
    assert r.status_code == 422
    assert re.search(r'id="err-cadence">[^<]*not a valid cron expression', r.text)
    assert re.search(r'id="err-strata">[^<]*unknown stratum', r.text)
    r = client.post(
        f"/projects/{demo.project_id}/policies",
        data=_form(csrf, name="bad-reviewer", reviewers="nobody-at-all"),
    )
    assert r.status_code == 422 and 'id="err-reviewers"' in r.text
    r = client.post(  # an existing name
        f"/projects/{demo.project_id}/policies", data=_form(csrf, name="web-weekly")
    )
    assert r.status_code == 422 and re.search(r'id="err-name">[^<]*already has', r.text)
    assert count_rows(demo.url, AuditPolicy) == before
    # an invalid edit changes nothing
    weekly = _policy(demo, "web-weekly")
    assert weekly is not None
    r = client.post(
        f"/projects/{demo.project_id}/policies/{weekly.id}",
        data=_form(csrf, double_review_fraction="2"),
    )
    assert r.status_code == 422 and 'id="err-double_review_fraction"' in r.text
    after = _policy(demo, "web-weekly")
    assert after is not None and after.spec == weekly.spec


def test_run_now_opens_a_run_and_shows_it(lead: tuple[TestClient, str], demo: Demo) -> None:
    client, csrf = lead
    name = f"lp-run-{uuid.uuid4().hex[:8]}"
    r = client.post(
        f"/projects/{demo.project_id}/policies",
        data=_form(csrf, name=name, cadence="manual", sample_size="6"),
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:500]
    policy = _policy(demo, name)
    assert policy is not None
    r = client.post(
        f"/projects/{demo.project_id}/policies/{policy.id}/run",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:500]
    run_id = int(r.headers["location"].rsplit("/", 1)[1])
    page = client.get(r.headers["location"])
    assert page.status_code == 200 and name in page.text and "6 / " in page.text
    assert count_rows(demo.url, AuditRun, policy_id=policy.id, trigger="manual") == 1
    listing = client.get(f"/projects/{demo.project_id}/policies").text
    assert f'href="/audits/runs/{run_id}"' in listing

    # a policy whose population is empty: 422 with the reason, no run
    empty = f"lp-empty-{uuid.uuid4().hex[:8]}"
    client.post(
        f"/projects/{demo.project_id}/policies",
        data=_form(csrf, name=empty, advanced="population:\n  tags: [no-such-tag]\n"),
    )
    p2 = _policy(demo, empty)
    assert p2 is not None and p2.spec["population"]["tags"] == ["no-such-tag"]
    r = client.post(f"/projects/{demo.project_id}/policies/{p2.id}/run", data={"csrf_token": csrf})
    assert r.status_code == 422 and "nothing to audit" in r.text
    assert count_rows(demo.url, AuditRun, policy_id=p2.id) == 0


# ------------------------------------------------------------------------- imports
def _csv(rows: list[tuple[str, str, str, str]]) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["item_id", "annotator", "label", "text"])
    w.writerows(rows)
    return out.getvalue().encode()


def _upload(
    client: TestClient, csrf: str, demo: Demo, name: str, content: bytes, **fields: str
) -> Any:
    return client.post(
        f"/projects/{demo.project_id}/imports",
        data={"csrf_token": csrf, "format": "auto", **fields},
        files={"file": (name, content, "text/csv")},
    )


def test_import_upload_counts_and_reupload(lead: tuple[TestClient, str], demo: Demo) -> None:
    client, csrf = lead
    tag = uuid.uuid4().hex[:8]
    content = _csv(
        [
            (f"up-{tag}-1", "lucas.martin", "billing", "my invoice is wrong"),
            (f"up-{tag}-2", "lucas.martin", "billing", "charged twice"),
            (f"up-{tag}-2", "demo.lead", "billing", "charged twice"),
        ]
    )
    items, annotations = count_rows(demo.url, Item), count_rows(demo.url, Annotation)
    r = _upload(client, csrf, demo, f"batch-{tag}.csv", content)
    assert r.status_code == 200, r.text[:1000]
    assert re.search(r'id="items-created">2<', r.text)
    assert re.search(r'id="annotations-created">3<', r.text)
    assert (
        count_rows(demo.url, Item) == items + 2
        and count_rows(demo.url, Annotation) == annotations + 3
    )
    assert f"batch-{tag}.csv" in r.text.split('id="batches"')[1]  # listed as a batch
    assert count_rows(demo.url, ImportBatch, filename=f"batch-{tag}.csv") == 1
    # the same file again changes nothing and adds no batch
    r = _upload(client, csrf, demo, f"batch-{tag}.csv", content)
    assert r.status_code == 200 and "Nothing changed" in r.text
    assert re.search(r'id="items-created">0<', r.text)
    assert (
        count_rows(demo.url, Item) == items + 2
        and count_rows(demo.url, Annotation) == annotations + 3
    )
    assert count_rows(demo.url, ImportBatch, filename=f"batch-{tag}.csv") == 1
    # column mapping: a file with other column names
    mapped = b"ticket,who,intent,body\n" + f"up-{tag}-3,lucas.martin,billing,refund\n".encode()
    r = _upload(
        client,
        csrf,
        demo,
        f"mapped-{tag}.csv",
        mapped,
        item_col="ticket",
        annotator_col="who",
        label_col="intent",
        text_col="body",
    )
    assert r.status_code == 200, r.text[:1000]
    assert re.search(r'id="items-created">1<', r.text)


def test_broken_upload_lists_problems_and_writes_nothing(
    lead: tuple[TestClient, str], demo: Demo
) -> None:
    client, csrf = lead
    tag = uuid.uuid4().hex[:8]
    rows = [(f"bad-{tag}-{n}", "lucas.martin", "no-such-intent", "text") for n in range(60)]
    rows.insert(0, (f"bad-{tag}-ok", "lucas.martin", "billing", "fine"))
    items, annotations, batches = (
        count_rows(demo.url, Item),
        count_rows(demo.url, Annotation),
        count_rows(demo.url, ImportBatch),
    )
    r = _upload(client, csrf, demo, f"broken-{tag}.csv", _csv(rows))
    assert r.status_code == 422
    html = r.text
    table = html.split('id="problems"')[1].split("</table>")[0]
    assert table.count("<tr>") == 1 + 50  # header + the first 50 problems
    assert f"broken-{tag}.csv" in table and "no-such-intent" in table
    assert re.search(r'<td class="num">3</td>', table)  # line numbers of the file
    assert re.search(r"and 10 more \(60 problems in all\)", html)
    assert "Nothing was written" in html
    assert "labelloop-upload" not in html  # no server paths
    assert (
        count_rows(demo.url, Item),
        count_rows(demo.url, Annotation),
        count_rows(demo.url, ImportBatch),
    ) == (
        items,
        annotations,
        batches,
    )
    # a file in no format at all, and no file
    r = _upload(client, csrf, demo, "notes.txt", b"\x00\x01 not data")
    assert r.status_code == 422 and 'id="import-error"' in r.text
    assert "notes.txt" in r.text and "labelloop-upload" not in r.text
    r = client.post(
        f"/projects/{demo.project_id}/imports", data={"csrf_token": csrf, "format": "auto"}
    )
    assert r.status_code == 422 and "choose a file" in r.text


def test_upload_over_the_limit_is_413(
    lead: tuple[TestClient, str], demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, csrf = lead
    monkeypatch.setattr(client.app.state.settings, "max_upload_bytes", 64)  # type: ignore[attr-defined]
    items = count_rows(demo.url, Item)
    content = _csv([(f"big-{n}", "lucas.martin", "billing", "x" * 20) for n in range(10)])
    r = _upload(client, csrf, demo, "big.csv", content)
    assert r.status_code == 413
    assert "larger than the upload limit" in r.text and "labelloop import" in r.text
    assert count_rows(demo.url, Item) == items


# ------------------------------------------------------------------------- exports
def test_export_downloads_parse(lead: tuple[TestClient, str], demo: Demo) -> None:
    client, _ = lead
    page = client.get(f"/projects/{demo.project_id}/exports")
    assert page.status_code == 200 and 'id="export"' in page.text
    events = count_rows(demo.url, Event, action="export.file")
    url = f"/projects/{demo.project_id}/exports/download"
    r = client.get(url, params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert re.match(
        r'attachment; filename="support-intents-\d{8}-\d{6}\.csv"',
        r.headers["content-disposition"],
    )
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) >= 300 and {"item_id", "annotator", "label", "gold"} <= set(rows[0])
    assert any(row["gold"] for row in rows)  # gold labels are included
    r = client.get(url, params={"format": "jsonl"})
    assert r.headers["content-type"] == "application/x-ndjson"
    assert len([json.loads(line) for line in r.text.splitlines() if line]) == len(rows)
    r = client.get(url, params={"format": "parquet"})
    assert pq.read_table(io.BytesIO(r.content)).num_rows == len(rows)
    r = client.get(url, params={"format": "label-studio"})
    tasks = r.json()
    assert r.headers["content-disposition"].endswith('.json"') and len(tasks) >= 300
    assert count_rows(demo.url, Event, action="export.file") == events + 4
    r = client.get(url, params={"format": "xlsx"})
    assert r.status_code == 422


FORMULA_PROJECT = "web-formulas"
#: (item id, annotator, label, text): each starts with a spreadsheet formula trigger.
FORMULA_ROWS = [
    ("=1+1", "=web-alice", "=SUM(A1:A2)", "\t=cmd"),
    ("+i2", "+web-bob", "+cmd", "\r=cmd"),
    ("-i3", "-web-carol", "-neg", "-5"),
    ("@i4", "@web-dave", "@at", "@SUM(1)"),
]


def _formula_project(demo: Demo, tmp_path: Path) -> int:
    """A project of the demo lead whose names and text start with formula triggers."""
    engine = make_engine(demo.url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            found = s.scalar(select(Project.id).where(Project.name == FORMULA_PROJECT))
            if found is not None:
                return found
            labels = [label for _i, _a, label, _t in FORMULA_ROWS]
            project = create_project(
                s,
                actor=OPERATOR,
                name=FORMULA_PROJECT,
                schema=LabelSchema.from_dict({"task_type": "single", "labels": labels}),
            )
            grant(
                s,
                actor=OPERATOR,
                username=ROLE_USERS["lead"],
                project_id=project.id,
                role=Role.LEAD,
            )
            path = tmp_path / "formulas.jsonl"
            path.write_text(
                "".join(
                    json.dumps({"item_id": i, "annotator": a, "label": label, "text": t}) + "\n"
                    for i, a, label, t in FORMULA_ROWS
                ),
                encoding="utf-8",
            )
            import_file(s, actor=OPERATOR, path=path, project=FORMULA_PROJECT)
            return project.id
    finally:
        engine.dispose()


def test_csv_download_escapes_formulas_unless_raw(
    lead: tuple[TestClient, str], demo: Demo, tmp_path: Path
) -> None:
    client, _ = lead
    project_id = _formula_project(demo, tmp_path)
    page = client.get(f"/projects/{project_id}/exports")
    assert page.status_code == 200
    assert re.search(r'<input type="checkbox" name="raw" value="true"', page.text)
    url = f"/projects/{project_id}/exports/download"

    def cells(params: dict[str, str], where: str = url) -> list[tuple[str, ...]]:
        r = client.get(where, params=params)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        rows = csv.DictReader(io.StringIO(r.content.decode("utf-8"), newline=""))
        return [(row["item_id"], row["annotator"], row["label"], row["text"]) for row in rows]

    assert cells({"format": "csv"}) == [
        ("'=1+1", "'=web-alice", "'=SUM(A1:A2)", "'\t=cmd"),
        ("'+i2", "'+web-bob", "'+cmd", "'\r=cmd"),
        ("'-i3", "'-web-carol", "'-neg", "-5"),  # a plain number stays a number
        ("'@i4", "'@web-dave", "'@at", "'@SUM(1)"),
    ]
    assert cells({"format": "csv", "raw": "true"}) == FORMULA_ROWS
    api = f"/api/v1/projects/{project_id}/export"  # the API's download: the same rule
    assert cells({"format": "csv"}, api) == cells({"format": "csv"})
    assert cells({"format": "csv", "raw": "true"}, api) == FORMULA_ROWS
    r = client.get(url, params={"format": "jsonl"})  # JSONL is never escaped
    assert [json.loads(line)["annotator"] for line in r.text.splitlines()] == [
        a for _i, a, _l, _t in FORMULA_ROWS
    ]


def test_lead_links_on_the_overview(lead: tuple[TestClient, str], demo: Demo) -> None:
    client, _ = lead
    html = client.get(f"/projects/{demo.project_id}").text
    for page in ("policies", "imports", "exports"):
        assert f'href="/projects/{demo.project_id}/{page}"' in html
