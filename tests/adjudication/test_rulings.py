"""Rulings: validation with nothing written, once only, what follows from a ruling."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from labelloop.accounts.actor import Actor
from labelloop.adjudication import rulings, service
from labelloop.adjudication.models import Case, Ruling
from labelloop.errors import Conflict, PermissionDenied, ValidationFailed
from labelloop.escalation.models import Deadline, Notification
from labelloop.guidelines import amendments
from labelloop.guidelines import service as guidelines
from labelloop.projects.models import GoldLabel
from labelloop.trail.models import Event
from tests.adjudication.conftest import Court

WHY = "The customer wants money back for a charge: R1 says refund."


def _case(court: Court, *votes: str) -> Case:
    item = court.item(f"item-{len(court.items)}", *votes)
    return service.open_case(
        court.session,
        actor=court.adjudicator,
        project=court.project,
        item=item.id,
        note="refund or billing?",
    )


def _count(court: Court, model: type) -> int:
    return int(court.session.scalar(select(func.count()).select_from(model)) or 0)


def _events(court: Court) -> int:
    return _count(court, Event)


@pytest.mark.parametrize(
    ("given", "fields"),
    [
        (rulings.RulingInput(label="refund", rationale=""), ["rationale"]),
        (rulings.RulingInput(label="refund", rationale="  too short "), ["rationale"]),
        (rulings.RulingInput(label="cake", rationale=WHY), ["label"]),
        (rulings.RulingInput(label="refund", rationale=WHY, rules=["R99"]), ["rules[0]"]),
        (rulings.RulingInput(label="refund", rationale=WHY, exemplar="R99"), ["exemplar"]),
        (rulings.RulingInput(label="refund", rationale=WHY, amend="say so"), ["amend"]),
    ],
)
def test_a_bad_ruling_names_its_field_and_writes_nothing(
    court: Court, given: rulings.RulingInput, fields: list[str]
) -> None:
    case = _case(court, "refund", "billing")
    before = (_events(court), _count(court, Ruling), _count(court, Notification))
    with pytest.raises(ValidationFailed) as err:
        rulings.rule(court.session, actor=court.adjudicator, case_id=case.id, given=given)
    assert [v.field for v in err.value.violations] == fields
    assert (_events(court), _count(court, Ruling), _count(court, Notification)) == before
    court.session.refresh(case)
    assert case.status == "open"


def test_the_rationale_minimum_is_a_project_setting(court: Court) -> None:
    service.update_settings(
        court.session, actor=court.lead, project=court.project, changes={"rationale_min": 5}
    )
    case = _case(court, "refund", "billing")
    rulings.rule(
        court.session,
        actor=court.adjudicator,
        case_id=case.id,
        given=rulings.RulingInput(label="refund", rationale="R1 ok"),
    )
    with pytest.raises(ValidationFailed) as err:
        service.update_settings(
            court.session,
            actor=court.lead,
            project=court.project,
            changes={"rationale_min": 0, "colour": "red"},
        )
    assert {v.field for v in err.value.violations} == {"rationale_min", "colour"}
    with pytest.raises(PermissionDenied):
        service.update_settings(
            court.session,
            actor=court.adjudicator,
            project=court.project,
            changes={"anonymous": True},
        )


def test_a_case_is_ruled_once(court: Court) -> None:
    case = _case(court, "refund", "billing")
    given = rulings.RulingInput(label="refund", rationale=WHY, rules=["R1"])
    ruling = rulings.rule(court.session, actor=court.adjudicator, case_id=case.id, given=given)
    with pytest.raises(Conflict):
        rulings.rule(court.session, actor=court.lead, case_id=case.id, given=given)
    assert _count(court, Ruling) == 1
    court.session.refresh(case)
    assert (case.status, ruling.guideline_version, ruling.rule_refs) == ("ruled", "1.0", ["R1"])
    d = court.session.scalar(select(Deadline).where(Deadline.subject_id == case.id))
    assert d is not None and d.resolved_at is not None
    assert rulings.adjudicated_labels(court.session, court.project.id) == {case.item_id: "refund"}


def test_a_ruling_tells_those_who_differed(court: Court) -> None:
    case = _case(court, "refund", "billing", "billing")
    rulings.rule(
        court.session,
        actor=court.adjudicator,
        case_id=case.id,
        given=rulings.RulingInput(label="refund", rationale=WHY),
    )
    told = court.session.scalars(
        select(Notification.user_id).where(Notification.kind == "ruling.differs")
    ).all()
    assert sorted(told) == sorted(u.id for u in court.annotators[1:3])


def test_gold_exemplar_and_amendment(court: Court) -> None:
    case = _case(court, "refund", "billing")
    rulings.rule(
        court.session,
        actor=court.adjudicator,
        case_id=case.id,
        given=rulings.RulingInput(
            label="refund",
            rationale=WHY,
            rules=["R1"],
            gold=True,
            exemplar="R1",
            amend="A charge the customer disputes is a refund.",
        ),
    )
    gold = court.session.scalar(select(GoldLabel).where(GoldLabel.item_id == case.item_id))
    assert gold is not None and (gold.value, gold.source) == ("refund", "adjudication")
    proposed = amendments.list_amendments(court.session, actor=court.lead, project=court.project)
    assert [(a.kind, a.rule_key) for a in proposed] == [("exemplar", "R1"), ("text", "R1")]
    with pytest.raises(PermissionDenied):
        amendments.accept(
            court.session,
            actor=court.adjudicator,
            project=court.project,
            amendment_id=proposed[0].id,
        )
    for a in proposed:
        amendments.accept(court.session, actor=court.lead, project=court.project, amendment_id=a.id)
    doc = guidelines.draft_document(court.session, actor=court.lead, project=court.project)
    r1 = next(r for r in doc.rules if r.id == "R1")
    assert r1.text.endswith("A charge the customer disputes is a refund.")
    assert any(e.why == WHY and e.kind == "boundary" for e in r1.exemplars)
    with pytest.raises(Conflict):
        amendments.accept(
            court.session, actor=court.lead, project=court.project, amendment_id=proposed[0].id
        )
    v = guidelines.publish(
        court.session, actor=court.lead, project=court.project, note="R1 clarified"
    )
    assert v.number == "1.1"


def test_notable_rulings_go_out_in_one_digest(court: Court) -> None:
    for n in range(2):
        case = _case(court, "refund", "billing")
        rulings.rule(
            court.session,
            actor=court.adjudicator,
            case_id=case.id,
            given=rulings.RulingInput(label="refund", rationale=WHY, notable=n == 0),
        )
    sent = rulings.send_digest(court.session, actor=Actor.local("worker"), project=court.project)
    assert sent == 1
    digests = court.session.scalars(
        select(Notification).where(Notification.kind == "ruling.digest")
    ).all()
    assert len(digests) == 5 + 3  # the annotators, lead, adjudicator and auditor
    assert WHY in digests[0].body
    assert (
        rulings.send_digest(court.session, actor=Actor.local("worker"), project=court.project) == 0
    )


def test_reading_rulings_needs_only_membership(court: Court) -> None:
    case = _case(court, "refund", "billing")
    r = rulings.rule(
        court.session,
        actor=court.adjudicator,
        case_id=case.id,
        given=rulings.RulingInput(label="refund", rationale=WHY),
    )
    annotator = Actor.for_user(court.annotators[0].id, court.annotators[0].username)
    assert (
        rulings.get_ruling(court.session, actor=annotator, project=court.project, ruling_id=r.id)
        is r
    )
    with pytest.raises(PermissionDenied):
        rulings.list_rulings(court.session, actor=court.outsider, project=court.project)
    with pytest.raises(PermissionDenied):
        rulings.rule(
            court.session,
            actor=annotator,
            case_id=case.id,
            given=rulings.RulingInput("refund", WHY),
        )
