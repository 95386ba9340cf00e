"""The lead's project overview: volume and throughput, agreement over time, audit
error rate across cycles, error categories and the per-annotator scorecard.

:func:`project_overview` needs ``project.manage`` (leads and administrators). It reads
the project's annotations once and computes everything with :mod:`labelloop.stats`:
Krippendorff's alpha (nominal, on the canonical label key) per ISO week with an item
bootstrap interval, and Dawid–Skene consensus for the scorecard's agreement column.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from statistics import median
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.accounts.models import User
from labelloop.accounts.policy import require
from labelloop.accounts.roles import Permission
from labelloop.audits import service as audits
from labelloop.audits.models import AuditReview, AuditRun, AuditUnit
from labelloop.audits.population import label_key
from labelloop.projects.models import Annotation, GoldLabel, Project
from labelloop.stats import DawidSkene, Ratings, krippendorff_alpha

BOOTSTRAP_RESAMPLES = 300
MIN_PAIRABLE_ITEMS = 5


@dataclass
class Chart:
    """One chart and the table that carries the same numbers."""

    id: str
    title: str
    kind: str  # "bar" or "line"
    labels: list[str]
    series: list[dict[str, Any]]  # {"name", "data", "band": [low, high] | None, "axis"}
    columns: list[str]
    rows: list[list[str]]
    note: str = ""

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "labels": self.labels, "series": self.series}


@dataclass
class ScoreRow:
    annotator: str
    volume: int
    gold_n: int
    gold_accuracy: float | None
    consensus_n: int
    consensus_agreement: float | None
    audit_n: int
    audit_error_rate: float | None
    median_active_seconds: float | None
    flags: int


@dataclass
class Overview:
    project: Project
    totals: dict[str, int]
    charts: list[Chart] = field(default_factory=list)
    scorecard: list[ScoreRow] = field(default_factory=list)


def _key(value: Any) -> str:
    return label_key(value)


def _week(t: datetime) -> str:
    year, week, _ = t.isocalendar()
    return f"{year}-W{week:02d}"


def _fmt(v: float | None, pct: bool = False, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "–"
    return f"{v:.1%}" if pct else f"{v:.{digits}f}"


def _r(v: float | None, digits: int = 4) -> float | None:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return None
    return round(float(v), digits)


def project_overview(session: Session, *, actor: Actor, project: Project) -> Overview:
    require(session, actor, Permission.PROJECT_MANAGE, project_id=project.id)
    rows: list[Any] = list(
        session.execute(
            select(
                Annotation.item_id,
                Annotation.annotator_id,
                Annotation.value,
                Annotation.submitted_at,
                Annotation.active_seconds,
                Annotation.flags,
            )
            .where(Annotation.project_id == project.id)
            .order_by(Annotation.id)
        ).all()
    )
    names = dict(session.execute(select(User.id, User.username)).tuples().all())
    gold = {
        item: _key(value)
        for item, value in session.execute(
            select(GoldLabel.item_id, GoldLabel.value).where(GoldLabel.project_id == project.id)
        ).tuples()
    }
    ov = Overview(
        project=project,
        totals={
            "annotations": len(rows),
            "items": len({r.item_id for r in rows}),
            "annotators": len({r.annotator_id for r in rows}),
            "gold": len(gold),
        },
    )
    ov.charts.append(_volume(rows))
    ov.charts.append(_agreement(rows))
    ov.charts.append(_audit_trend(session, project))
    ov.charts.append(_categories(session, project))
    ov.scorecard = _scorecard(session, project, rows, names, gold)
    return ov


def _volume(rows: list[Any]) -> Chart:
    count: Counter[str] = Counter()
    seconds: defaultdict[str, float] = defaultdict(float)
    for r in rows:
        if r.submitted_at is None:
            continue
        day = r.submitted_at.date().isoformat()
        count[day] += 1
        seconds[day] += float(r.active_seconds or 0)
    days = sorted(count)
    per_hour = [round(count[d] / (seconds[d] / 3600), 1) if seconds[d] > 0 else None for d in days]
    return Chart(
        id="volume",
        title="Volume and throughput per day",
        kind="bar",
        labels=days,
        series=[
            {"name": "annotations", "data": [count[d] for d in days], "axis": "y"},
            {
                "name": "annotations per active hour",
                "data": per_hour,
                "axis": "y2",
                "type": "line",
            },
        ],
        columns=["day", "annotations", "per active hour"],
        rows=[
            [d, str(count[d]), "–" if p is None else f"{p:.1f}"]
            for d, p in zip(days, per_hour, strict=True)
        ],
    )


def _agreement(rows: list[Any]) -> Chart:
    by_week: defaultdict[str, list[Any]] = defaultdict(list)
    for r in rows:
        if r.submitted_at is not None:
            by_week[_week(r.submitted_at)].append(r)
    labels, values, lows, highs, table = [], [], [], [], []
    for week in sorted(by_week):
        group = by_week[week]
        per_item = Counter(r.item_id for r in group)
        if sum(1 for n in per_item.values() if n >= 2) < MIN_PAIRABLE_ITEMS:
            table.append([week, "–", "–", str(len(group)), "too few items with two labels"])
            continue
        ratings = Ratings.from_long(
            [r.item_id for r in group],
            [r.annotator_id for r in group],
            [_key(r.value) for r in group],
        )
        res = krippendorff_alpha(ratings, level="nominal", n_boot=BOOTSTRAP_RESAMPLES, seed=0)
        ci = res.ci or (None, None)
        labels.append(week)
        values.append(_r(res.value))
        lows.append(_r(ci[0]))
        highs.append(_r(ci[1]))
        table.append(
            [
                week,
                _fmt(res.value),
                f"[{_fmt(ci[0])}, {_fmt(ci[1])}]",
                str(len(group)),
                "",
            ]
        )
    return Chart(
        id="agreement",
        title="Agreement per week: Krippendorff's alpha (nominal) with 95% CI",
        kind="line",
        labels=labels,
        series=[{"name": "alpha", "data": values, "band": [lows, highs], "axis": "y"}],
        columns=["week", "alpha", "95% CI", "annotations", "note"],
        rows=table,
        note=f"Bootstrap over items ({BOOTSTRAP_RESAMPLES} resamples).",
    )


def _audit_trend(session: Session, project: Project) -> Chart:
    labels, values, lows, highs, table = [], [], [], [], []
    for policy in audits.list_policies(session, project):
        for row in audits.trend(session, policy):
            er = row["error_rate"] or {}
            ci = er.get("ci") or [None, None]
            label = f"{policy.name} #{row['run']} ({row['window_end'][:10]})"
            labels.append(label)
            values.append(_r(er.get("value")))
            lows.append(_r(ci[0]))
            highs.append(_r(ci[1]))
            change = (row.get("change") or {}).get("error_rate") or {}
            table.append(
                [
                    label,
                    f"{row['sample']} / {row['population']}",
                    _fmt(er.get("value"), pct=True),
                    f"[{_fmt(ci[0], pct=True)}, {_fmt(ci[1], pct=True)}]",
                    "significant" if change.get("significant") else "",
                ]
            )
    return Chart(
        id="audit-trend",
        title="Audit error rate per closed cycle, with 95% CI",
        kind="line",
        labels=labels,
        series=[{"name": "error rate", "data": values, "band": [lows, highs], "axis": "y"}],
        columns=["cycle", "sample / population", "error rate", "95% CI", "change"],
        rows=table,
    )


def _categories(session: Session, project: Project) -> Chart:
    counts = (
        session.execute(
            select(AuditReview.error_category, func.count(AuditReview.id))
            .join(AuditRun, AuditRun.id == AuditReview.run_id)
            .where(AuditRun.project_id == project.id, AuditReview.verdict == "incorrect")
            .group_by(AuditReview.error_category)
            .order_by(func.count(AuditReview.id).desc())
        )
        .tuples()
        .all()
    )
    total = sum(n for _, n in counts) or 1
    return Chart(
        id="categories",
        title="Audit findings by error category (all cycles)",
        kind="bar",
        labels=[c or "unclassified" for c, _ in counts],
        series=[{"name": "findings", "data": [n for _, n in counts], "axis": "y"}],
        columns=["category", "findings", "share"],
        rows=[[c or "unclassified", str(n), f"{n / total:.1%}"] for c, n in counts],
    )


def _scorecard(
    session: Session,
    project: Project,
    rows: list[Any],
    names: dict[int, str],
    gold: dict[int, str],
) -> list[ScoreRow]:
    by_ann: defaultdict[int, list[Any]] = defaultdict(list)
    for r in rows:
        by_ann[r.annotator_id].append(r)
    consensus: dict[int, str] = {}
    per_item = Counter(r.item_id for r in rows)
    multi = [r for r in rows if per_item[r.item_id] >= 2]
    if multi:
        ratings = Ratings.from_long(
            [r.item_id for r in multi],
            [r.annotator_id for r in multi],
            [_key(r.value) for r in multi],
        )
        model = DawidSkene().fit(ratings)
        consensus = {
            int(item): str(label)
            for item, label in zip(ratings.items.tolist(), model.labels_.tolist(), strict=True)
        }
    audit: defaultdict[int, list[int]] = defaultdict(lambda: [0, 0])  # [incorrect, judged]
    for annotator_id, verdict in session.execute(
        select(AuditUnit.annotator_id, AuditReview.verdict)
        .join(AuditReview, AuditReview.unit_id == AuditUnit.id)
        .join(AuditRun, AuditRun.id == AuditUnit.run_id)
        .where(AuditRun.project_id == project.id, AuditReview.verdict != "unsure")
    ).tuples():
        audit[annotator_id][1] += 1
        audit[annotator_id][0] += verdict == "incorrect"
    out = []
    for ann, mine in by_ann.items():
        on_gold = [r for r in mine if r.item_id in gold]
        on_cons = [r for r in mine if r.item_id in consensus]
        secs = [float(r.active_seconds) for r in mine if r.active_seconds is not None]
        inc, judged = audit.get(ann, [0, 0])
        out.append(
            ScoreRow(
                annotator=names.get(ann, f"user {ann}"),
                volume=len(mine),
                gold_n=len(on_gold),
                gold_accuracy=(
                    sum(_key(r.value) == gold[r.item_id] for r in on_gold) / len(on_gold)
                    if on_gold
                    else None
                ),
                consensus_n=len(on_cons),
                consensus_agreement=(
                    sum(_key(r.value) == consensus[r.item_id] for r in on_cons) / len(on_cons)
                    if on_cons
                    else None
                ),
                audit_n=judged,
                audit_error_rate=inc / judged if judged else None,
                median_active_seconds=median(secs) if secs else None,
                flags=sum(1 for r in mine if r.flags),
            )
        )
    out.sort(key=lambda s: s.annotator)
    return out
