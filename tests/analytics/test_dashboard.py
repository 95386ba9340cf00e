"""The lead dashboard's snapshots: numbers equal a direct computation, staleness,
permissions, and the worker's refresh."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from statistics import median
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.accounts.models import User
from labelloop.analytics import dashboard
from labelloop.analytics import service as analytics
from labelloop.analytics.models import DashboardSnapshot
from labelloop.errors import PermissionDenied
from labelloop.projects import service as projects
from labelloop.projects.models import Annotation, GoldLabel, Project
from labelloop.stats import DawidSkene, Ratings, krippendorff_alpha
from labelloop.store.base import utcnow
from labelloop.trail.models import Event

LABELS = ["positive", "negative", "neutral"]
MONDAY = datetime(2026, 3, 2, tzinfo=UTC)  # ISO week 2026-W10


@dataclass
class Team:
    project: Project
    lead: Actor
    annotator: Actor
    annotator_id: int
    item_ids: list[int]


@pytest.fixture
def team(session: Session, factories: ModuleType) -> Team:
    """A project over three weeks: 36 items with 2-3 labels each from five annotators,
    some without active seconds, one without a submit time, one flagged, one at
    midnight, and gold labels on six items."""
    rng = random.Random(7)
    project = factories.ProjectFactory()
    workers = [factories.UserFactory() for _ in range(5)]
    for w in workers:
        factories.MembershipFactory(user=w, project=project)
    lead = factories.MembershipFactory(project=project, lead=True).user_id
    items = [factories.ItemFactory(project=project) for _ in range(36)]
    for n, item in enumerate(items):
        truth = rng.choice(LABELS)
        week_start = MONDAY + timedelta(weeks=n // 12)
        for w in rng.sample(workers, rng.choice([2, 3])):
            at = week_start + timedelta(seconds=rng.randrange(0, 7 * 86400))
            factories.AnnotationFactory(
                item=item,
                annotator=w,
                value=truth if rng.random() < 0.75 else rng.choice(LABELS),
                submitted_at=at,
                active_seconds=None if rng.random() < 0.1 else round(rng.uniform(3, 90), 2),
            )
    first = session.scalars(
        select(Annotation).where(Annotation.project_id == project.id).order_by(Annotation.id)
    ).all()
    first[0].submitted_at = None
    first[1].flags = [{"code": "fast", "field": "active_seconds", "message": "very fast"}]
    first[2].submitted_at = datetime(2026, 3, 9, tzinfo=UTC)  # midnight: Monday of W11
    for item in items[:6]:
        factories.GoldLabelFactory(item=item, value=rng.choice(LABELS))
    session.flush()
    return Team(
        project=project,
        lead=Actor.for_user(lead, "lead"),
        annotator=Actor.for_user(workers[0].id, workers[0].username),
        annotator_id=workers[0].id,
        item_ids=[i.id for i in items],
    )


def _reference(session: Session, project: Project) -> dict[str, Any]:
    """The dashboard computed directly, one Python object per annotation."""
    rows = session.scalars(
        select(Annotation).where(Annotation.project_id == project.id).order_by(Annotation.id)
    ).all()
    out: dict[str, Any] = {
        "totals": {
            "annotations": len(rows),
            "items": len({r.item_id for r in rows}),
            "annotators": len({r.annotator_id for r in rows}),
        }
    }
    timed = [r for r in rows if r.submitted_at is not None]
    count: Counter[str] = Counter()
    seconds: defaultdict[str, float] = defaultdict(float)
    people: defaultdict[str, set[int]] = defaultdict(set)
    for r in timed:
        day = r.submitted_at.date().isoformat()  # type: ignore[union-attr]
        count[day] += 1
        seconds[day] += r.active_seconds or 0.0
        people[day].add(r.annotator_id)
    out["volume"] = [
        [
            d,
            count[d],
            round(count[d] / (seconds[d] / 3600), 1) if seconds[d] else None,
            len(people[d]),
        ]
        for d in sorted(count)
    ]

    def week(t: datetime) -> str:
        y, w, _ = t.isocalendar()
        return f"{y}-W{w:02d}"

    by_week: defaultdict[str, list[Annotation]] = defaultdict(list)
    for r in timed:
        by_week[week(r.submitted_at)].append(r)  # type: ignore[arg-type]
    out["agreement"] = []
    for w in sorted(by_week):
        group = by_week[w]
        per_item = Counter(r.item_id for r in group)
        if sum(1 for n in per_item.values() if n >= 2) < 5:
            continue
        res = krippendorff_alpha(
            Ratings.from_long(
                [r.item_id for r in group],
                [r.annotator_id for r in group],
                [r.value for r in group],
            ),
            level="nominal",
            n_boot=300,
            seed=0,
        )
        out["agreement"].append([w, res.value, res.ci])
    per_item_times: defaultdict[int, list[tuple[float, int]]] = defaultdict(list)
    for r in timed:
        per_item_times[r.item_id].append((r.submitted_at.timestamp(), r.id))  # type: ignore[union-attr]
    turn: defaultdict[str, list[float]] = defaultdict(list)
    for times in per_item_times.values():
        if len(times) >= 2:
            times.sort()
            second = datetime.fromtimestamp(times[1][0], tz=UTC)
            turn[week(second)].append((times[1][0] - times[0][0]) / 3600)
    out["turnaround"] = [
        [w, len(turn[w]), *np.percentile(turn[w], [50, 90]).tolist()] for w in sorted(turn)
    ]
    gold = {
        g.item_id: g.value
        for g in session.scalars(select(GoldLabel).where(GoldLabel.project_id == project.id))
    }
    per_item_n = Counter(r.item_id for r in rows)
    multi = [r for r in rows if per_item_n[r.item_id] >= 2]
    ratings = Ratings.from_long(
        [r.item_id for r in multi], [r.annotator_id for r in multi], [r.value for r in multi]
    )
    model = DawidSkene().fit(ratings)
    consensus = dict(zip(ratings.items.tolist(), model.labels_.tolist(), strict=True))
    score = {}
    for ann in {r.annotator_id for r in rows}:
        mine = [r for r in rows if r.annotator_id == ann]
        on_gold = [r for r in mine if r.item_id in gold]
        on_cons = [r for r in mine if r.item_id in consensus]
        secs = [r.active_seconds for r in mine if r.active_seconds is not None]
        score[ann] = {
            "volume": len(mine),
            "gold_n": len(on_gold),
            "gold_accuracy": sum(r.value == gold[r.item_id] for r in on_gold) / len(on_gold)
            if on_gold
            else None,
            "consensus_n": len(on_cons),
            "consensus_agreement": sum(r.value == consensus[r.item_id] for r in on_cons)
            / len(on_cons)
            if on_cons
            else None,
            "median_active_seconds": median(secs) if secs else None,
            "flags": sum(1 for r in mine if r.flags),
        }
    out["scorecard"] = score
    out["gold"] = len(gold)
    return out


def _chart(payload: dict[str, Any], chart_id: str) -> dict[str, Any]:
    return next(c for c in payload["charts"] if c["id"] == chart_id)


def test_snapshot_numbers_equal_a_direct_computation(session: Session, team: Team) -> None:
    overview, max_id = dashboard.compute(session, team.project)
    payload = overview.payload()
    ref = _reference(session, team.project)
    assert payload["totals"] == {**ref["totals"], "gold": ref["gold"]}
    assert max_id == session.scalar(
        select(func.max(Annotation.id)).where(Annotation.project_id == team.project.id)
    )

    volume = _chart(payload, "volume")
    assert volume["labels"] == [d for d, *_ in ref["volume"]]
    assert volume["series"][0]["data"] == [n for _, n, _, _ in ref["volume"]]
    assert volume["series"][1]["data"] == [p for _, _, p, _ in ref["volume"]]
    assert [int(r[3]) for r in volume["rows"]] == [a for *_, a in ref["volume"]]
    assert "2026-03-09" in volume["labels"]  # the midnight annotation is on its own day

    alpha = _chart(payload, "agreement")
    assert alpha["labels"] == [w for w, _, _ in ref["agreement"]]
    assert len(alpha["labels"]) == 3
    for k, (_, value, ci) in enumerate(ref["agreement"]):
        assert alpha["series"][0]["data"][k] == pytest.approx(round(value, 4), abs=1e-12)
        assert alpha["series"][0]["band"][0][k] == pytest.approx(round(ci[0], 4), abs=1e-12)
        assert alpha["series"][0]["band"][1][k] == pytest.approx(round(ci[1], 4), abs=1e-12)

    turn = _chart(payload, "turnaround")
    assert turn["labels"] == [w for w, *_ in ref["turnaround"]]
    for k, (_, n, med, p90) in enumerate(ref["turnaround"]):
        assert turn["rows"][k][1] == str(n)
        assert turn["series"][0]["data"][k] == pytest.approx(round(med, 2), abs=1e-9)
        assert turn["series"][1]["data"][k] == pytest.approx(round(p90, 2), abs=1e-9)

    names = {u.id: u.username for u in session.scalars(select(User))}
    rows = {s["annotator"]: s for s in payload["scorecard"]}
    assert len(rows) == len(ref["scorecard"])
    assert [s["annotator"] for s in payload["scorecard"]] == sorted(rows)
    for ann, expected in ref["scorecard"].items():
        got = rows[names[ann]]
        for key, value in expected.items():
            if isinstance(value, float):
                assert got[key] == pytest.approx(value, abs=1e-12), (ann, key)
            else:
                assert got[key] == value, (ann, key)
        assert got["audit_n"] == 0 and got["audit_error_rate"] is None
    assert sum(s["flags"] for s in payload["scorecard"]) == 1
    assert _chart(payload, "audit-trend")["labels"] == []
    assert _chart(payload, "categories")["labels"] == []


def test_empty_project_has_an_empty_dashboard(session: Session, factories: ModuleType) -> None:
    project = factories.ProjectFactory()
    overview, max_id = dashboard.compute(session, project)
    assert max_id == 0 and overview.scorecard == []
    assert overview.totals == {"annotations": 0, "items": 0, "annotators": 0, "gold": 0}
    assert all(not c.labels for c in overview.charts)


def _submit(session: Session, team: Team, item: int, value: str = "positive") -> None:
    projects.submit_annotation(  # recorded by the lead (annotators go through the queue)
        session,
        actor=team.lead,
        project=team.project,
        item_id=item,
        annotator_id=team.annotator_id,
        value=value,
        external_key=f"k{item}-{value}",
    )


def test_snapshot_staleness_and_refresh(session: Session, team: Team) -> None:
    events_before = session.scalar(select(func.count()).select_from(Event))
    ov = analytics.project_overview(session, actor=team.lead, project=team.project)
    assert ov.freshness is not None and not ov.freshness.stale
    snap = analytics.latest_snapshot(session, team.project.id)
    assert snap is not None and snap.annotation_count == ov.totals["annotations"]
    # a derived cache: storing it appends no trail event
    assert session.scalar(select(func.count()).select_from(Event)) == events_before

    # a quick project: a stale snapshot is recomputed in the request (set, not
    # measured, so that a loaded machine does not make it a slow one)
    snap.compute_seconds = 0.0
    session.flush()
    _submit(session, team, team.item_ids[0])
    assert analytics.is_stale(session, snap)
    ov = analytics.project_overview(session, actor=team.lead, project=team.project)
    assert ov.totals["annotations"] == snap.annotation_count + 1
    assert ov.freshness is not None and not ov.freshness.stale
    assert (
        session.scalar(
            select(func.count())
            .select_from(DashboardSnapshot)
            .where(DashboardSnapshot.project_id == team.project.id)
        )
        == 1
    )  # older snapshots are replaced

    # a slow one: shown as it is, with what changed since
    latest = analytics.latest_snapshot(session, team.project.id)
    assert latest is not None
    latest.compute_seconds = analytics.SYNC_REFRESH_BELOW_SECONDS + 10
    session.flush()
    _submit(session, team, team.item_ids[1])
    _submit(session, team, team.item_ids[2], "negative")
    ov = analytics.project_overview(session, actor=team.lead, project=team.project)
    assert ov.freshness is not None and ov.freshness.stale
    assert ov.freshness.new_annotations == 2 and ov.freshness.changes >= 2
    assert ov.totals["annotations"] == latest.annotation_count
    # the worker waits until the snapshot is due (at least a minute, and ten times its cost)
    assert team.project.id not in [p.project_id for p in analytics.stale_projects(session)]
    later = utcnow() + timedelta(seconds=10 * latest.compute_seconds + 61)
    due = analytics.stale_projects(session, now=later)
    assert [p.project_id for p in due].count(team.project.id) == 1

    analytics.refresh_snapshot(session, actor=team.lead, project=team.project)
    ov = analytics.project_overview(session, actor=team.lead, project=team.project)
    assert ov.freshness is not None and not ov.freshness.stale
    assert ov.totals["annotations"] == latest.annotation_count + 2
    assert team.project.id not in [
        p.project_id for p in analytics.stale_projects(session, now=later)
    ]


def test_only_leads_see_or_refresh_the_dashboard(session: Session, team: Team) -> None:
    for call in (analytics.project_overview, analytics.refresh_snapshot, analytics.build_snapshot):
        with pytest.raises(PermissionDenied):
            call(session, actor=team.annotator, project=team.project)
    assert analytics.latest_snapshot(session, team.project.id) is None


def test_worker_refreshes_stale_dashboards(fresh_database_url: str) -> None:
    from labelloop import worker
    from labelloop.accounts import service as accounts
    from labelloop.accounts.roles import Role
    from labelloop.projects.schemas import LabelSchema
    from labelloop.settings import Settings
    from labelloop.store import make_engine, make_session_factory, session_scope

    engine = make_engine(fresh_database_url)
    factory = make_session_factory(engine)
    system = Actor.local("test")
    with session_scope(factory) as s:
        project = projects.create_project(
            s,
            actor=system,
            name="worker-dash",
            schema=LabelSchema.from_dict({"task_type": "single", "labels": LABELS}),
        )
        user = accounts.create_user(s, actor=system, username="ann")
        accounts.grant(s, actor=system, username="ann", project_id=project.id, role=Role.ANNOTATOR)
        item = projects.add_item(s, actor=system, project=project, external_id="a", payload={})
        projects.submit_annotation(
            s, actor=system, project=project, item_id=item.id, annotator_id=user.id, value="neutral"
        )
        pid, item_id, uid = project.id, item.id, user.id
    settings = Settings(database_url=fresh_database_url)
    try:
        done = worker.refresh_dashboards(settings)
        assert [(d.project, d.message) for d in done] == [("worker-dash", "refreshed")]
        assert worker.refresh_dashboards(settings) == []  # nothing changed since
        with session_scope(factory) as s:
            p = s.get(Project, pid)
            assert p is not None
            projects.submit_annotation(
                s,
                actor=system,
                project=p,
                item_id=item_id,
                annotator_id=uid,
                value="positive",
                external_key="second",
            )
        assert worker.refresh_dashboards(settings) == []  # stale, but not due yet
        later = utcnow() + timedelta(minutes=2)
        assert [d.project for d in worker.refresh_dashboards(settings, now=later)] == [
            "worker-dash"
        ]
        with session_scope(factory) as s:
            snap = analytics.latest_snapshot(s, pid)
            assert snap is not None and snap.annotation_count == 2
            assert not analytics.is_stale(s, snap)
    finally:
        engine.dispose()


def test_by_guideline_version_equals_a_direct_computation(session: Session, team: Team) -> None:
    """Annotations of the first two weeks under 1.0, the rest under 1.1: the chart's
    alpha per version equals alpha computed on that version's annotations alone."""
    rows = session.scalars(
        select(Annotation).where(Annotation.project_id == team.project.id).order_by(Annotation.id)
    ).all()
    cut = MONDAY + timedelta(weeks=2)
    for r in rows:
        r.guideline_version = "1.0" if r.submitted_at is None or r.submitted_at < cut else "1.1"
    session.flush()
    overview, _ = dashboard.compute(session, team.project)
    chart = _chart(overview.payload(), "guideline-versions")
    assert chart["labels"] == ["1.0", "1.1"]
    for version, value in zip(chart["labels"], chart["series"][0]["data"], strict=True):
        mine = [r for r in rows if r.guideline_version == version]
        twice = {i for i, n in Counter(r.item_id for r in mine).items() if n >= 2}
        mine = [r for r in mine if r.item_id in twice]
        expected = krippendorff_alpha(
            Ratings.from_long(
                [r.item_id for r in mine], [r.annotator_id for r in mine], [r.value for r in mine]
            ),
            level="nominal",
        ).value
        if len(twice) >= dashboard.MIN_PAIRABLE_ITEMS:
            assert value == pytest.approx(expected, abs=1e-4)
    # no audit yet: the error rate column is empty
    assert [row[4] for row in chart["rows"]] == ["–", "–"]


def test_no_version_chart_without_versions(session: Session, team: Team) -> None:
    overview, _ = dashboard.compute(session, team.project)
    assert "guideline-versions" not in {c["id"] for c in overview.payload()["charts"]}
