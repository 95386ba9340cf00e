"""Guideline versions: draft, publish, immutability, history, diff, acknowledgement."""

from __future__ import annotations

from types import ModuleType

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from labelloop.errors import (
    AcknowledgementRequired,
    Conflict,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from labelloop.guidelines import service
from labelloop.guidelines.schemas import GuidelineDoc, RuleDoc
from labelloop.guidelines.timeline import timeline, version_at
from labelloop.trail.models import Event
from tests.guidelines.conftest import Tickets


def _publish(s: Session, t: Tickets, doc: GuidelineDoc, note: str = "first", **kw: bool) -> str:
    service.save_draft(s, actor=t.lead, project=t.project, doc=doc)
    return service.publish(s, actor=t.lead, project=t.project, note=note, **kw).number


def _clarified(doc: GuidelineDoc) -> GuidelineDoc:
    r1 = doc.rules[0]
    text = r1.text + "\n\nA refund of a *duplicate* charge is still refund."
    rules = (r1.model_copy(update={"text": text}), *doc.rules[1:2])  # R3 removed
    new = RuleDoc(id="R4", title="Shipping questions", labels=("other",))
    return doc.model_copy(update={"rules": (*rules, new)})


def test_publish_numbers_versions_and_records_the_trail(session: Session, tickets: Tickets) -> None:
    t = tickets
    assert _publish(session, t, t.doc) == "1.0"
    assert _publish(session, t, _clarified(t.doc), "clarify R1") == "1.1"
    assert _publish(session, t, t.doc, "back to the start", major=True) == "2.0"
    numbers = [v.number for v in service.history(session, actor=t.annotator, project=t.project)]
    assert numbers == ["2.0", "1.1", "1.0"]
    actions = session.scalars(
        select(Event.action).where(Event.project_id == t.project.id).order_by(Event.seq)
    ).all()
    assert actions.count("guideline.publish") == 3
    assert actions.count("guideline.draft.save") == 3


def test_published_versions_are_immutable(session: Session, tickets: Tickets) -> None:
    t = tickets
    _publish(session, t, t.doc)
    service.save_rule(
        session,
        actor=t.lead,
        project=t.project,
        rule=RuleDoc(id="R1", title="Changed title", labels=("refund",)),
        replaces="R1",
    )
    v1 = service.get_version(session, actor=t.lead, project=t.project, number="1.0")
    assert v1.rules[0].title == "Refund or billing"  # the draft is a copy
    draft = service.get_version(session, actor=t.lead, project=t.project, number="draft")
    assert draft.rules[0].title == "Changed title"


def test_publish_refuses_without_note_or_change(session: Session, tickets: Tickets) -> None:
    t = tickets
    service.save_draft(session, actor=t.lead, project=t.project, doc=t.doc)
    with pytest.raises(ValidationFailed) as err:
        service.publish(session, actor=t.lead, project=t.project, note="  ")
    assert err.value.violations[0].field == "note"
    service.publish(session, actor=t.lead, project=t.project, note="first")
    with pytest.raises(Conflict, match="no guideline draft"):
        service.publish(session, actor=t.lead, project=t.project, note="again")
    service.save_draft(session, actor=t.lead, project=t.project, doc=t.doc)
    with pytest.raises(Conflict, match=r"same as version 1\.0"):
        service.publish(session, actor=t.lead, project=t.project, note="again")


def test_only_editors_write_and_outsiders_cannot_read(session: Session, tickets: Tickets) -> None:
    t = tickets
    with pytest.raises(PermissionDenied):
        service.save_draft(session, actor=t.annotator, project=t.project, doc=t.doc)
    _publish(session, t, t.doc)
    with pytest.raises(PermissionDenied):
        service.publish(session, actor=t.annotator, project=t.project, note="x")
    with pytest.raises(PermissionDenied):
        service.get_version(session, actor=t.outsider, project=t.project)
    with pytest.raises(PermissionDenied):  # the draft is the editors'
        service.get_version(session, actor=t.annotator, project=t.project, number="draft")


def test_draft_is_checked_against_the_project(session: Session, tickets: Tickets) -> None:
    t = tickets
    bad_rule = t.doc.rules[0].model_copy(
        update={
            "labels": ("refund", "shipping"),
            "exemplars": (
                t.doc.rules[0].exemplars[0].model_copy(update={"item": "ticket-9999"}),
                t.doc.rules[0].exemplars[1].model_copy(update={"label": "nonsense"}),
            ),
        }
    )
    bad = t.doc.model_copy(update={"rules": (bad_rule,)})
    with pytest.raises(ValidationFailed) as err:
        service.save_draft(session, actor=t.lead, project=t.project, doc=bad)
    fields = {v.field for v in err.value.violations}
    assert fields == {
        "rules[0].labels[1]",
        "rules[0].exemplars[0].item",
        "rules[0].exemplars[1].label",
    }
    with pytest.raises(NotFound):
        service.get_version(session, actor=t.lead, project=t.project, number="draft")


def test_diff_of_two_versions(session: Session, tickets: Tickets) -> None:
    t = tickets
    _publish(session, t, t.doc)
    _publish(session, t, _clarified(t.doc), "clarify R1")
    d = service.diff(session, actor=t.annotator, project=t.project, old="1.0", new="1.1")
    out = d.as_json()
    assert (out["from"], out["to"]) == ("1.0", "1.1")
    assert [r["id"] for r in out["added"]] == ["R4"]
    assert [r["id"] for r in out["removed"]] == ["R3"]
    [changed] = out["changed"]
    assert changed["id"] == "R1" and changed["fields"] == ["text"]
    assert "+A refund of a *duplicate* charge is still refund." in changed["text_diff"]
    assert d.labels() == {"refund", "billing", "other"}


def test_acknowledgement_gate(session: Session, tickets: Tickets) -> None:
    t = tickets
    assert service.pending(session, actor=t.annotator, project=t.project) is None
    _publish(session, t, t.doc)
    first = service.pending(session, actor=t.annotator, project=t.project)
    assert first is not None and first.since is None
    assert [r.id for r in first.changes.added] == ["R1", "R2", "R3"]
    with pytest.raises(AcknowledgementRequired):
        service.require_acknowledged(session, actor=t.annotator, project=t.project)
    service.acknowledge(session, actor=t.annotator, project=t.project, number="1.0")
    service.acknowledge(session, actor=t.annotator, project=t.project, number="1.0")  # idempotent
    service.require_acknowledged(session, actor=t.annotator, project=t.project)
    _publish(session, t, _clarified(t.doc), "clarify R1")
    second = service.pending(session, actor=t.annotator, project=t.project)
    assert second is not None and second.since == "1.0"
    assert [c.id for c in second.changes.changed] == ["R1"]
    acks = session.scalars(select(Event).where(Event.action == "guideline.acknowledge")).all()
    assert len(acks) == 1


def test_version_in_force(session: Session, tickets: Tickets) -> None:
    t = tickets
    assert version_at(session, t.project.id) is None
    _publish(session, t, t.doc)
    v1 = service.current(session, t.project.id)
    assert v1 is not None and v1.published_at is not None
    _publish(session, t, _clarified(t.doc), "clarify R1")
    line = timeline(session, t.project.id)
    assert line.at(v1.published_at) == "1.0"
    assert line.at(None) == "1.1" == version_at(session, t.project.id)
    assert line.at(v1.published_at.replace(year=2000)) is None


def test_exemplars_are_never_hidden_gold_checks(
    session: Session, tickets: Tickets, factories: ModuleType
) -> None:
    """Annotators have read an exemplar's label, so a gold exemplar is no blind check."""
    from labelloop.projects.models import Item
    from labelloop.workbench import service as workbench
    from labelloop.workbench.schemas import SettingsIn

    t = tickets
    items = {
        i.external_id: i
        for i in session.scalars(select(Item).where(Item.project_id == t.project.id))
    }
    for ext in ("ticket-0007", "ticket-0012", "ticket-0001"):  # the first two are exemplars
        factories.GoldLabelFactory(item=items[ext], value="refund")
    change = SettingsIn(overlap=1, gold_rate=1.0)
    workbench.update_settings(session, actor=t.lead, project=t.project, change=change)
    _publish(session, t, t.doc)
    service.acknowledge(session, actor=t.annotator, project=t.project, number="1.0")
    served = workbench.next_item(session, actor=t.annotator, project=t.project)
    assert served is not None and served.item_id == items["ticket-0001"].id
