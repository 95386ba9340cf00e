"""The feedback loop on the lead dashboard: charts built from the feedback and escalation
services, which compute (and check who may read) every figure; this module only lays
them out as :class:`Chart` objects, each with a table of the same numbers.

* :func:`feedback_section` (stored in the dashboard snapshot): notes sent, acknowledged
  and the acknowledgement rate; latency finding → sent and sent → acknowledged (median
  and 90th percentile, :func:`labelloop.feedback.effect.stats`); the error-type Pareto
  (:func:`labelloop.feedback.pareto.error_pareto`); the error rate before and after
  notes per template with Wilson 95 % intervals and the Cochran–Mantel–Haenszel
  p-value (:mod:`labelloop.feedback.effect`).
* :func:`sla_chart` (computed at each page view, since "overdue" moves with the clock):
  SLA attainment per subject with its Wilson interval
  (:func:`labelloop.escalation.attainment.sla_attainment`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.analytics.schemas import Chart, FeedbackSection
from labelloop.escalation.attainment import Attainment
from labelloop.feedback import effect
from labelloop.feedback.pareto import ParetoRow, error_pareto
from labelloop.projects.models import Project

#: How the dashboard names what a deadline waits on (other subjects show as stored).
SUBJECTS = {
    "case": "adjudication cases",
    "feedback": "feedback notes",
    "flag": "flagged annotations",
    "audit_run": "audit runs to review",
}


def feedback_section(session: Session, *, actor: Actor, project: Project) -> FeedbackSection:
    """The feedback figures and charts of the project (``feedback.send``)."""
    stats = effect.stats(session, actor=actor, project=project)
    pareto = error_pareto(session, actor=actor, project=project)
    return FeedbackSection(
        sent=stats["sent"],
        acknowledged=stats["acknowledged"],
        ack_rate=stats["ack_rate"],
        window_days=stats["window_days"],
        charts=[
            latency_chart(stats["latency_hours"]),
            pareto_chart(pareto),
            effect_chart(stats["effect"], stats["window_days"]),
        ],
    )


def _hours(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.1%}"


def _pct_ci(rate: float | None, ci: Sequence[float] | None) -> str:
    if rate is None or ci is None:
        return "–"
    return f"{rate:.1%} [{ci[0]:.1%}, {ci[1]:.1%}]"


def _points(v: float | None) -> float | None:
    """A share as percentage points for a chart axis."""
    return None if v is None else round(v * 100, 2)


def latency_chart(latency: dict[str, dict[str, float | None]]) -> Chart:
    """Hours from finding to sending and from sending to acknowledgement."""
    stages = [("finding_to_sent", "finding → sent"), ("sent_to_ack", "sent → acknowledged")]
    known = [(key, name) for key, name in stages if latency[key]["median"] is not None]
    return Chart(
        id="fb-latency",
        title="Feedback latency (hours)",
        kind="bar",
        labels=[name for _, name in known],
        series=[
            {"name": stat, "data": [latency[key][q] for key, _ in known], "axis": "y"}
            for q, stat in (("median", "median"), ("p90", "90th percentile"))
        ],
        columns=["stage", "median h", "p90 h"],
        rows=[
            [name, _hours(latency[key]["median"]), _hours(latency[key]["p90"])]
            for key, name in stages
        ],
        note="Sent notes: from the finding (review, ruling) to sending; acknowledged "
        "notes: from sending to the recipient's answer.",
    )


def _pair(row: ParetoRow) -> str:
    return "other pairs" if row.given is None else f"{row.given} → {row.expected}"


def pareto_chart(rows: list[ParetoRow]) -> Chart:
    """Feedback items per confusion pair, largest first, with the cumulative share."""
    return Chart(
        id="fb-pareto",
        title="Error types in feedback: Pareto of confusions",
        kind="bar",
        labels=[_pair(r) for r in rows],
        series=[
            {"name": "items", "data": [r.items for r in rows], "axis": "y"},
            {
                "name": "cumulative share (%)",
                "data": [_points(r.cumulative) for r in rows],
                "axis": "y2",
                "type": "line",
                "max": 100,
            },
        ],
        columns=["given → reference", "items", "notes", "share", "cumulative"],
        rows=[
            [_pair(r), str(r.items), str(r.notes), _pct(r.share), _pct(r.cumulative)] for r in rows
        ],
        note="Items: the pieces of work sent notes point at, by the note's confusion "
        "(label given → reference); notes without one (positive) are left out.",
    )


def effect_chart(rows: list[dict[str, Any]], window_days: int) -> Chart:
    """Recipients' error rate before and after notes, per template, with Wilson CIs."""
    sides = (("before", "error before (%)"), ("after", "error after (%)"))
    return Chart(
        id="fb-effect",
        title="Effect of feedback: error rate before and after, per template",
        kind="bar",
        labels=[r["template"] for r in rows],
        series=[
            {
                "name": name,
                "data": [_points(r[side]["rate"]) for r in rows],
                "whiskers": [
                    [_points(r[side]["ci"][0]) if r[side]["ci"] else None for r in rows],
                    [_points(r[side]["ci"][1]) if r[side]["ci"] else None for r in rows],
                ],
                "axis": "y",
            }
            for side, name in sides
        ],
        columns=["template", "notes", "before [95% CI]", "after [95% CI]", "p"],
        rows=[_effect_row(r) for r in rows],
        note=f"Each recipient's error on the label the note is about (overall, for positive "
        f"notes) in the {window_days} days before and after it was sent; Wilson 95% "
        "intervals; p: Cochran–Mantel–Haenszel test, one stratum per note.",
    )


def _effect_row(r: dict[str, Any]) -> list[str]:
    before, after = r["before"], r["after"]
    p = r["p_value"]
    return [
        r["template"],
        str(r["n_notes"]),
        f"{_pct_ci(before['rate'], before['ci'])} n={before['n']}",
        f"{_pct_ci(after['rate'], after['ci'])} n={after['n']}",
        "–" if p is None else f"{p:.3g}",
    ]


def sla_chart(rows: list[Attainment]) -> Chart:
    """Share of resolved deadlines done at the first level in time, per subject (the
    chart has the subjects with something resolved; the table has every subject)."""
    done = [r for r in rows if r.rate is not None]
    return Chart(
        id="sla",
        title="SLA attainment",
        kind="bar",
        labels=[_subject(r) for r in done],
        series=[
            {
                "name": "resolved in time at the first level (%)",
                "data": [_points(r.rate) for r in done],
                "whiskers": [
                    [_points(r.ci[0]) if r.ci else None for r in done],
                    [_points(r.ci[1]) if r.ci else None for r in done],
                ],
                "axis": "y",
                "max": 100,
            }
        ],
        columns=["waiting", "resolved", "in time", "attainment [95% CI]", "open", "overdue"],
        rows=[
            [
                _subject(r),
                str(r.resolved),
                str(r.on_time),
                _pct_ci(r.rate, r.ci),
                str(r.open),
                str(r.overdue),
            ]
            for r in rows
        ],
        note="In time: resolved before the first level's SLA ran out, never escalated; "
        "Wilson 95% intervals. Open and overdue: now.",
    )


def _subject(row: Attainment) -> str:
    return SUBJECTS.get(row.subject, row.subject)
