"""The demo's adjudication: the worker opens the disagreement cases, the adjudicator
rules a few refund-vs-billing ones with rationales (one notable and proposed as an
exemplar of R4, one proposing a clarification of R4, one made gold), and the lead
accepts the proposals into the draft of guideline 1.1. The other cases stay open for
the adjudicator's queue in the web app.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.accounts.models import User
from labelloop.adjudication import rulings
from labelloop.adjudication import service as adjudication
from labelloop.adjudication.models import OPEN, Case
from labelloop.audits.population import label_key
from labelloop.demo.simulate import DemoData
from labelloop.guidelines import amendments
from labelloop.projects.models import Annotation, Item, Project

RULE = "R4"
PAIR = frozenset({"refund", "billing"})
TO_RULE = 6
WHY = {
    "refund": (
        "The customer wants the duplicate charge reversed: money back is a refund under "
        "R4, even though the ticket talks about the invoice."
    ),
    "billing": (
        "The customer asks why the charge is on the invoice and wants it explained; "
        "no money back is asked for, so it is billing under R4."
    ),
}
AMENDMENT = (
    "A charge the customer **disputes and wants reversed** is **refund**; a charge they "
    "only **question** is **billing**."
)


@dataclass(frozen=True)
class CourtSummary:
    opened: int
    ruled: int
    left_open: int
    amendments: int


def _pair_cases(session: Session, project: Project, data: DemoData) -> list[Case]:
    """Open cases on refund/billing tickets whose votes hold both labels, by priority."""
    cases = session.scalars(
        select(Case)
        .where(Case.project_id == project.id, Case.status == OPEN)
        .order_by(Case.priority.desc(), Case.id)
    ).all()
    picked = []
    for case in cases:
        item = session.get(Item, case.item_id)
        assert item is not None
        votes = {
            label_key(v)
            for v in session.scalars(select(Annotation.value).where(Annotation.item_id == item.id))
        }
        if data.truth.get(item.external_id) in PAIR and votes >= PAIR:
            picked.append(case)
        if len(picked) == TO_RULE:
            break
    return picked


def hold_court(session: Session, *, project: Project, data: DemoData) -> CourtSummary:
    """Detect cases, rule a few (see the module doc); returns what happened."""
    worker = Actor.local("worker")
    found = adjudication.detect(session, actor=worker, project=project)
    judge = session.scalar(select(User).where(User.username == "demo.adjudicator"))
    assert judge is not None
    actor = Actor.for_user(judge.id, judge.username)
    ruled = 0
    for n, case in enumerate(_pair_cases(session, project, data)):
        item = session.get(Item, case.item_id)
        assert item is not None
        label = data.truth[item.external_id]
        rulings.rule(
            session,
            actor=actor,
            case_id=case.id,
            given=rulings.RulingInput(
                label=label,
                rationale=WHY[label],
                rules=(RULE,),
                notable=n == 0,
                exemplar=RULE if n == 0 else None,
                amend=AMENDMENT if n == 1 else None,
                gold=n == 2,
            ),
        )
        ruled += 1
    rulings.send_digest(session, actor=worker, project=project)
    proposed = amendments.list_amendments(session, actor=worker, project=project)
    return CourtSummary(found.opened, ruled, found.opened - ruled, len(proposed))


def accept_amendments(session: Session, *, actor: Actor, project: Project) -> int:
    """The lead accepts every proposed amendment into the draft; returns how many."""
    proposed = amendments.list_amendments(session, actor=actor, project=project)
    for a in proposed:
        amendments.accept(session, actor=actor, project=project, amendment_id=a.id)
    return len(proposed)
