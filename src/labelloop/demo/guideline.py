"""The demo project's guideline: version 1.0 from the first day, and version 1.1 (a
clarified refund-vs-billing rule with boundary exemplars) from
:data:`~labelloop.demo.simulate.GUIDELINE_CHANGE_DAY`, read and acknowledged by the
simulated team.

The simulated annotations already carry the version in force when each was made; after
1.1 the confuser mixes up refund and billing less often (see
:func:`labelloop.demo.simulate._label`), which the audit report's breakdown by guideline
version shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.accounts.models import User
from labelloop.demo import _templates as tpl
from labelloop.demo.adjudication import CourtSummary, accept_amendments, hold_court
from labelloop.demo.simulate import GUIDELINE_CHANGE_DAY, START, DemoData
from labelloop.guidelines import service as guidelines
from labelloop.guidelines.schemas import ExemplarDoc, GuidelineDoc, RuleDoc
from labelloop.projects.models import Project

#: The rule the audits' "guideline misread" findings refer to.
REFUND_RULE = "R4"

_RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("R1", "One intent per ticket", ()),
    ("R2", "Billing", ("billing",)),
    ("R3", "Refund", ("refund",)),
    (REFUND_RULE, "Refund or billing", ("refund", "billing")),
    ("R5", "Shipping", ("shipping",)),
    ("R6", "Account access or technical issue", ("account_access", "technical_issue")),
    ("R7", "Cancellation", ("cancellation",)),
    ("R8", "Other", ("other",)),
)
_PREAMBLE = (
    "Label each support ticket with the **one intent** the customer wants handled. "
    "Read the whole ticket; the first sentence is not always the ask."
)
_R1 = "Pick the intent of the customer's main ask. Mentions of other topics do not change it."
_R4_OLD = "A ticket about money taken by us is **billing** unless it asks for a refund."
_R4_NEW = (
    "Ask what the customer wants **done** with the money:\n\n"
    "- they want money **back** (a duplicate charge reversed, a return refunded, a "
    "promised refund): **refund**, even when the ticket talks about the invoice;\n"
    "- they want a charge **explained or corrected** on the next invoice, or a payment "
    "method changed: **billing**.\n\n"
    "The word *refund* alone does not decide it, and neither does the word *invoice*."
)


def _text(key: str, labels: Sequence[str]) -> str:
    if key == "R1":
        return _R1
    return " ".join(tpl.INTENT_DESCRIPTIONS[label] for label in labels)


def document(data: DemoData, *, clarified: bool) -> GuidelineDoc:
    """Version 1.0 (``clarified=False``) or 1.1 of the demo guideline."""
    rules = []
    for key, title, labels in _RULES:
        text = _text(key, labels)
        exemplars: tuple[ExemplarDoc, ...] = ()
        if key == REFUND_RULE:
            text = _R4_NEW if clarified else _R4_OLD
            exemplars = _refund_exemplars(data) if clarified else ()
        rules.append(RuleDoc(id=key, title=title, text=text, labels=labels, exemplars=exemplars))
    return GuidelineDoc(title="Support-ticket intent", preamble=_PREAMBLE, rules=tuple(rules))


def _refund_exemplars(data: DemoData) -> tuple[ExemplarDoc, ...]:
    """Two tickets of each side of the refund/billing boundary (not gold items: those
    stay hidden checks; their true labels come from the simulation)."""
    why = {
        "refund": "A duplicate charge the customer wants reversed: money back, so refund.",
        "billing": "Asks why a charge is on the invoice; no money back is asked for.",
    }
    picked: list[ExemplarDoc] = []
    for label in ("refund", "billing"):
        gold = {g.item_external_id for g in data.gold}
        edge = [i.external_id for i in data.items if "edge-case" in (i.tags or ())]
        ids = [i for i in edge if data.truth[i] == label and i not in gold][:2]
        picked += [ExemplarDoc(item=i, kind="boundary", label=label, why=why[label]) for i in ids]
    return tuple(picked)


def publish_versions(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    data: DemoData,
    annotators: Sequence[User],
    lead: User | None = None,
) -> tuple[list[str], CourtSummary | None]:
    """Publish 1.0 (at the simulation's start) and 1.1 (on the change day), each
    acknowledged by every simulated annotator. Between the two the adjudicator rules
    refund/billing cases under 1.0, and ``lead`` accepts their proposals into the 1.1
    draft (see :mod:`labelloop.demo.adjudication`; skipped without a lead). Returns the
    numbers published and what the adjudication did."""
    published, court = [], None
    for clarified, day, note in (
        (False, 0, "First version."),
        (
            True,
            GUIDELINE_CHANGE_DAY,
            f"{REFUND_RULE}: refund vs billing clarified, with boundary exemplars "
            "(the audits found refund and billing mixed up; cases ruled under 1.0).",
        ),
    ):
        if clarified and lead is not None:
            court = hold_court(session, project=project, data=data)
        doc = document(data, clarified=clarified)
        guidelines.save_draft(session, actor=actor, project=project, doc=doc, source="demo")
        if clarified and lead is not None:
            lead_actor = Actor.for_user(lead.id, lead.username)
            accept_amendments(session, actor=lead_actor, project=project)
        version = guidelines.publish(
            session,
            actor=actor,
            project=project,
            note=note,
            published_at=START + timedelta(days=day),
        )
        for user in annotators:
            guidelines.acknowledge(
                session,
                actor=Actor.for_user(user.id, user.username),
                project=project,
                number=version.number,
            )
        published.append(version.number)
    return published, court
