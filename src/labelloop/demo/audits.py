"""Three weekly audit cycles over the simulated team, reviewed by simulated reviewers.

The reviewers know the simulated truth but are right only most of the time
(``REVIEWER_ACCURACY``); when they call an annotation wrong they pick an error category
the way a person would from what they see (the confused label pair reads as a
guideline misread, an edge-case ticket as a boundary case, a very fast label as an
attention slip). Everything goes through the audit services, so the runs, reviews and
reports are the same records a real team would produce.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from croniter import croniter
from sqlalchemy import select
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.audits import service as audits
from labelloop.audits.models import AuditAssignment, AuditPolicy, AuditRun, AuditUnit
from labelloop.audits.schemas import ReviewInput
from labelloop.demo.feedback import send_cycle
from labelloop.demo.simulate import CONFUSED_PAIR, LABELS, DemoData
from labelloop.projects.models import Item, Project

POLICY_NAME = "weekly-quality"
CADENCE = "0 6 * * MON"
REVIEWERS = ("demo.auditor", "demo.adjudicator")
REVIEWER_ACCURACY = 0.97
SAMPLE_SIZE = 720
FAST_SECONDS = 4.0


@dataclass(frozen=True)
class AuditCycle:
    run_id: int
    window_start: datetime
    window_end: datetime
    sample: int
    population: int
    error_rate: float | None


def weekly_windows(data: DemoData, cycles: int) -> list[tuple[datetime, datetime]]:
    """The last ``cycles`` complete cron weeks inside the simulated period."""
    times = [a.submitted_at for a in data.annotations if a.submitted_at is not None]
    first, last = min(times), max(times)
    it = croniter(CADENCE, first)
    fires = []
    while (fire := it.get_next(datetime)) <= last:
        fires.append(fire)
    cycles = min(cycles, len(fires) - 1)  # a small simulation may span fewer weeks
    if cycles <= 0:
        return []
    return [(fires[-cycles - 1 + i], fires[-cycles + i]) for i in range(cycles)]


def _category(
    given: str, truth: str, tags: list[str], active: float | None, rng: np.random.Generator
) -> tuple[str, str, str | None]:
    if {given, truth} == set(CONFUSED_PAIR):
        return "guideline misread", "high", "R4 refund vs billing"
    if "edge-case" in tags:
        return "boundary case", "medium", None
    if active is not None and active < FAST_SECONDS:
        return "attention slip", "medium", None
    return str(rng.choice(["ambiguous context", "attention slip", "boundary case"])), "low", None


def ensure_policy(session: Session, *, actor: Actor, project: Project) -> AuditPolicy:
    existing = session.scalar(
        select(AuditPolicy).where(
            AuditPolicy.project_id == project.id, AuditPolicy.name == POLICY_NAME
        )
    )
    if existing is not None:
        return existing
    spec = audits.parse_spec(
        {
            "cadence": CADENCE,
            "window": "since_previous",
            "strata": ["annotator"],
            "allocation": "equal",
            "sample_size": SAMPLE_SIZE,
            "min_per_stratum": 10,
            "reviewers": list(REVIEWERS),
            "blind": True,
            "double_review_fraction": 0.1,
        }
    )
    return audits.create_policy(session, actor=actor, project=project, name=POLICY_NAME, spec=spec)


def run_cycles(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    data: DemoData,
    cycles: int = 3,
    seed: int = 7,
    feedback: bool = True,
) -> list[AuditCycle]:
    """Open, review and close ``cycles`` weekly runs (skipping those already closed);
    with ``feedback``, send each run's feedback drafts (:mod:`labelloop.demo.feedback`)."""
    policy = ensure_policy(session, actor=actor, project=project)
    rng = np.random.default_rng(seed + 1009)
    feedback_rng = np.random.default_rng(seed + 2003)  # apart: reviews stay as they were
    out = []
    for start, end in weekly_windows(data, cycles):
        run = audits.open_run(
            session, actor=actor, policy=policy, window_start=start, window_end=end
        ).run
        if run.status == "open":
            _review(session, actor=actor, run=run, data=data, rng=rng)
            audits.close_run(session, actor=actor, run=run)
            if feedback:
                send_cycle(session, actor=actor, project=project, run=run, rng=feedback_rng)
        overall = (run.report or {}).get("error_rate", {}).get("overall", {})
        out.append(
            AuditCycle(
                run.id, start, end, run.sample_size, run.population_size, overall.get("value")
            )
        )
    return out


def _review(
    session: Session, *, actor: Actor, run: AuditRun, data: DemoData, rng: np.random.Generator
) -> None:
    rows = session.execute(
        select(
            AuditAssignment.id,
            AuditUnit.snapshot,
            Item.external_id,
            Item.tags,
            AuditUnit.stratum,
            AuditUnit.annotation_id,
            AuditAssignment.double,
        )
        .join(AuditUnit, AuditUnit.id == AuditAssignment.unit_id)
        .join(Item, Item.id == AuditUnit.item_id)
        .where(AuditAssignment.run_id == run.id)
    ).all()
    # a fixed order that does not depend on ids (they are shuffled when a run opens), so
    # the simulated reviewers draw the same verdicts for the same sample
    rows = sorted(rows, key=lambda r: (r.stratum, r.annotation_id, r.double))
    for assignment_id, snapshot, external_id, tags, *_ in rows:
        truth = data.truth[external_id]
        given = snapshot["value"]
        if rng.random() < REVIEWER_ACCURACY:
            label = truth
        else:
            label = str(rng.choice([lab for lab in LABELS if lab != truth]))
        if label == given:
            review = ReviewInput(
                verdict="correct", corrected_value=label, active_seconds=float(rng.uniform(15, 60))
            )
        else:
            category, severity, rule = _category(
                given, label, list(tags or []), snapshot.get("active_seconds"), rng
            )
            review = ReviewInput(
                verdict="incorrect",
                corrected_value=label,
                error_category=category,
                severity=severity,
                rule_ref=rule,
                comment=f"This ticket is {label}, not {given}.",
                active_seconds=float(rng.uniform(20, 90)),
            )
        audits.record_review(session, actor=actor, assignment_id=assignment_id, review=review)
