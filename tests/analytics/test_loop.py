"""The dashboard's feedback and SLA sections on the hand-built loop of
:mod:`tests.analytics.loop_data`: every figure as counted by hand, the intervals against
statsmodels, the section stored in (and read back from) the snapshot."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from sqlalchemy.orm import Session
from statsmodels.stats.proportion import proportion_confint

from labelloop.accounts.actor import Actor
from labelloop.analytics import loop
from labelloop.analytics import service as analytics
from labelloop.analytics.schemas import FeedbackSection, Overview
from labelloop.escalation.attainment import Attainment, sla_attainment
from labelloop.feedback.effect import effect_of
from labelloop.projects.models import Project
from tests.analytics.loop_data import NOW, SCHEMA, add_deadlines, add_feedback

OPERATOR = Actor.local("test")


@pytest.fixture
def project(session: Session, factories: ModuleType) -> Project:
    project: Project = factories.ProjectFactory(label_schema=SCHEMA)
    first, second = factories.UserFactory(), factories.UserFactory()
    add_feedback(session, project, first.id, second.id)
    add_deadlines(session, project, base_id=700)
    return project


def _points(k: int, n: int) -> tuple[list[float], list[float]]:
    """A Wilson 95 % interval as the chart carries it: rounded to 4 places, in points."""
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    return [round(round(lo, 4) * 100, 2)], [round(round(hi, 4) * 100, 2)]


def _series(section: FeedbackSection, chart_id: str) -> dict[str, Any]:
    chart = next(c for c in section.charts if c.id == chart_id)
    return {s["name"]: s for s in chart.series} | {"_labels": chart.labels, "_rows": chart.rows}


def test_feedback_figures(session: Session, project: Project) -> None:
    section = loop.feedback_section(session, actor=OPERATOR, project=project)
    assert (section.sent, section.acknowledged, section.ack_rate) == (3, 2, 0.6667)
    latency = _series(section, "fb-latency")
    assert latency["_labels"] == ["finding → sent", "sent → acknowledged"]
    assert latency["median"]["data"] == [20.0, 3.0]
    assert latency["90th percentile"]["data"] == [28.0, 3.8]


def test_pareto_chart(session: Session, project: Project) -> None:
    pareto = _series(loop.feedback_section(session, actor=OPERATOR, project=project), "fb-pareto")
    assert pareto["_labels"] == ["billing → refund", "other → billing"]
    assert pareto["items"]["data"] == [4, 1]
    assert pareto["cumulative share (%)"]["data"] == [80.0, 100.0]
    assert pareto["_rows"] == [
        ["billing → refund", "4", "2", "80.0%", "80.0%"],
        ["other → billing", "1", "1", "20.0%", "100.0%"],
    ]


def test_effect_chart_with_wilson_whiskers(session: Session, project: Project) -> None:
    effect = _series(loop.feedback_section(session, actor=OPERATOR, project=project), "fb-effect")
    assert effect["_labels"] == ["boundary_case"]
    before, after = effect["error before (%)"], effect["error after (%)"]
    assert before["data"] == [40.0] and after["data"] == [10.0]
    assert before["whiskers"] == list(_points(8, 20))
    assert after["whiskers"] == list(_points(2, 20))
    (row,) = effect["_rows"]
    p = effect_of([[1, 10, 4, 10], [1, 10, 4, 10]])["p_value"]
    assert row[:2] == ["boundary_case", "2"] and row[4] == f"{p:.3g}"
    assert row[2].startswith("40.0% [") and row[2].endswith("n=20")


def test_sla_chart(session: Session, project: Project) -> None:
    chart = loop.sla_chart(sla_attainment(session, actor=OPERATOR, project=project, now=NOW))
    lo, hi = proportion_confint(1, 2, alpha=0.05, method="wilson")
    assert chart.labels == ["adjudication cases"]
    assert chart.series[0]["data"] == [50.0]
    assert chart.rows == [["adjudication cases", "2", "1", f"50.0% [{lo:.1%}, {hi:.1%}]", "1", "1"]]
    # nothing resolved yet: in the table (open, overdue), not on the chart
    waiting = loop.sla_chart([Attainment("flag", 0, 0, None, None, 2, 1)])
    assert waiting.labels == [] and waiting.rows == [
        ["flagged annotations", "0", "0", "–", "2", "1"]
    ]


def test_the_snapshot_stores_the_section(session: Session, project: Project) -> None:
    snap = analytics.build_snapshot(session, actor=OPERATOR, project=project)
    assert snap.payload["feedback"]["sent"] == 3
    read = Overview.from_payload(project, snap.payload).feedback
    assert read == loop.feedback_section(session, actor=OPERATOR, project=project)
    older = {k: v for k, v in snap.payload.items() if k != "feedback"}
    assert Overview.from_payload(project, older).feedback is None
