"""The demo's feedback: after each audit cycle closes, the lead sends its drafts the
day after the window ends (a misread note without a rule gets the rule of the label it
should have been), and the simulated team acknowledges them within a day, most
agreeing, a few disagreeing with a reason (which opens an adjudication case).

The simulation already has each annotator err less after each feedback day
(:data:`labelloop.demo.simulate.FEEDBACK_DAYS`, :data:`~labelloop.demo.simulate.LEARNING`),
so ``labelloop feedback stats`` shows the drop, with intervals.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.audits.models import AuditRun
from labelloop.feedback import lifecycle
from labelloop.feedback.models import DRAFT, SENT, FeedbackNote
from labelloop.guidelines.service import current
from labelloop.projects.models import Project
from labelloop.store.base import utcnow

DISAGREE = 0.06  # share of notes a recipient disputes
DISPUTE = "I read the ticket as asking for this; the rule does not settle it for me."


def _rule_for(session: Session, project: Project, label: str | None) -> str:
    version = current(session, project.id)
    for rule in version.rules if version else []:
        if label in rule.labels:
            return rule.key
    return "R1"


def send_cycle(
    session: Session, *, actor: Actor, project: Project, run: AuditRun, rng: np.random.Generator
) -> list[int]:
    """Send the run's drafts on the day after its window and acknowledge them."""
    notes = session.scalars(
        select(FeedbackNote).where(
            FeedbackNote.source == "audit",
            FeedbackNote.source_id == run.id,
            FeedbackNote.status == DRAFT,
        )
    ).all()
    for note in notes:
        if note.template == "guideline_misread" and not note.rule_refs:
            lifecycle.edit(
                session,
                actor=actor,
                note_id=note.id,
                changes={"rule_refs": [_rule_for(session, project, note.expected)]},
            )
    when = min(run.window_end + timedelta(days=1), utcnow())
    for note in notes:
        # the simulated reviewers worked in the hours after the window closed (the
        # demo records their reviews now): date the findings in the simulated week
        note.found_at = min(run.window_end + timedelta(hours=float(rng.uniform(2, 20))), when)
    sent = lifecycle.send(
        session, actor=actor, project=project, note_ids=[n.id for n in notes], at=when
    ).sent
    for note in notes:
        if note.status == SENT:
            _acknowledge(session, actor, note, when, rng)
    return sent


def _acknowledge(
    session: Session, actor: Actor, note: FeedbackNote, sent: datetime, rng: np.random.Generator
) -> None:
    at = min(sent + timedelta(hours=float(rng.gamma(2.0, 5.0))), utcnow())
    disagree = note.template != "positive" and rng.random() < DISAGREE
    lifecycle.acknowledge(
        session,
        actor=actor,
        note_id=note.id,
        agree=not disagree,
        reason=DISPUTE if disagree else None,
        at=at,
    )
