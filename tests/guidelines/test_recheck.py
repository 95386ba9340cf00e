"""The re-check list of a guideline change: selection, order, counts, permissions, and
sending it to review as an audit run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labelloop.accounts.models import User
from labelloop.audits import service as audits
from labelloop.audits.models import AuditAssignment, AuditPolicy, AuditRun, AuditUnit
from labelloop.errors import NotFound, PermissionDenied, ValidationFailed
from labelloop.guidelines import recheck as rc
from labelloop.guidelines import service
from labelloop.guidelines.schemas import ExemplarDoc, GuidelineDoc, RuleDoc
from labelloop.projects.models import Annotation, Item, Project
from labelloop.trail.models import Event
from tests.guidelines.conftest import Tickets, actor_of

DAY0 = datetime(2026, 3, 1, tzinfo=UTC)


def _publish(s: Session, t: Tickets, doc: GuidelineDoc, note: str) -> str:
    service.save_draft(s, actor=t.lead, project=t.project, doc=doc)
    return service.publish(s, actor=t.lead, project=t.project, note=note).number


def _v11(doc: GuidelineDoc) -> GuidelineDoc:
    """R1 clarified, with a boundary exemplar labelled ``account``; R2 as it was; R3
    removed."""
    r1 = doc.rules[0]
    boundary = ExemplarDoc(item="ticket-0003", kind="boundary", label="account", why="login")
    r1 = r1.model_copy(
        update={
            "text": r1.text + "\n\nA locked account is not billing.",
            "exemplars": (*r1.exemplars, boundary),
        }
    )
    return doc.model_copy(update={"rules": (r1, doc.rules[1])})


def _annotate(
    session: Session,
    factories: ModuleType,
    t: Tickets,
    who: User,
    item: str,
    label: Any,
    version: str | None,
    day: int | None,
) -> int:
    found = session.scalar(
        select(Item).where(Item.project_id == t.project.id, Item.external_id == item)
    )
    ann = factories.AnnotationFactory(
        item=found,
        annotator=who,
        value=label,
        guideline_version=version,
        submitted_at=None if day is None else DAY0 + timedelta(days=day),
    )
    return int(ann.id)


@pytest.fixture
def changed(session: Session, factories: ModuleType, tickets: Tickets) -> dict[str, int]:
    """Versions 1.0 and 1.1 of the example guideline and nine annotations, by name."""
    t = tickets
    _publish(session, t, t.doc, "first")
    _publish(session, t, _v11(t.doc), "clarify R1, drop R3")
    other = factories.UserFactory()
    factories.MembershipFactory(user=other, project=t.project)
    me = t.annotator_user
    return {
        "a1": _annotate(session, factories, t, me, "ticket-0001", "refund", "1.0", 1),
        "a2": _annotate(session, factories, t, other, "ticket-0002", "billing", "1.0", 3),
        "a3": _annotate(session, factories, t, me, "ticket-0004", "account", "1.0", 2),
        "a4": _annotate(session, factories, t, me, "ticket-0005", "technical", "1.0", 4),
        "a5": _annotate(session, factories, t, me, "ticket-0003", "technical", "1.0", 1),
        "a6": _annotate(session, factories, t, other, "ticket-0003", "account", None, 5),
        "a7": _annotate(session, factories, t, me, "ticket-0006", "refund", "1.1", 6),
        "a8": _annotate(session, factories, t, other, "ticket-0008", "other", None, None),
        "a9": _annotate(session, factories, t, me, "ticket-0009", "billing", "imported-v0", 2),
    }


def _ids(result: rc.Recheck) -> list[int]:
    return [e.annotation_id for e in result.entries]


def test_selection_order_and_counts(
    session: Session, tickets: Tickets, changed: dict[str, int]
) -> None:
    t, a = tickets, changed
    result = rc.recheck(session, actor=t.lead, project=t.project)
    assert (result.old, result.new, result.total) == ("1.0", "1.1", 7)
    # an exemplar item with another label first; then the rules' labels, newest first
    # (no submit time last); then labels only an exemplar concerns
    assert _ids(result) == [a["a5"], a["a2"], a["a9"], a["a1"], a["a8"], a["a6"], a["a3"]]
    assert [e.reason for e in result.entries] == [
        "exemplar",
        *["rule_label"] * 4,
        *["exemplar_label"] * 2,
    ]
    assert result.reasons == {"exemplar": 1, "rule_label": 4, "exemplar_label": 2}
    assert result.labels == {"account": 2, "billing": 2, "other": 1, "refund": 1}
    rules = {r.id: r for r in result.rules}
    assert set(rules) == {"R1", "R3"}  # R2 did not change
    assert (rules["R1"].change, rules["R1"].annotations) == ("changed", 6)
    assert rules["R1"].labels == ("billing", "refund")
    assert rules["R1"].exemplar_labels == ("account",)
    assert (rules["R3"].change, rules["R3"].annotations) == ("removed", 1)
    first = result.entries[0]
    assert (first.item, first.label, first.guideline_version, first.rules) == (
        "ticket-0003",
        "technical",
        "1.0",
        ("R1",),
    )
    assert result.entries[4].submitted_at is None
    data = result.as_json()
    assert set(data) == {
        *("from", "to", "rule", "total", "rules", "labels", "reasons"),
        *("annotations", "truncated"),
    }
    assert data["truncated"] is False and data["annotations"][0]["reason"] == "exemplar"


def test_explicit_versions_rule_and_limit(
    session: Session, tickets: Tickets, changed: dict[str, int]
) -> None:
    t, a = tickets, changed
    explicit = rc.recheck(
        session, actor=t.lead, project=t.project, from_version="1.0", to_version="1.1", limit=2
    )
    assert explicit.total == 7 and _ids(explicit) == [a["a5"], a["a2"]]
    assert explicit.as_json()["truncated"] is True
    r3 = rc.recheck(session, actor=t.lead, project=t.project, rule="R3")
    assert (r3.total, _ids(r3), r3.labels) == (1, [a["a8"]], {"other": 1})
    # an unchanged rule can be asked for: every older annotation of its labels
    r2 = rc.recheck(session, actor=t.lead, project=t.project, rule="R2")
    assert r2.rules[0].change == "unchanged"
    assert sorted(_ids(r2)) == sorted([a["a3"], a["a4"], a["a5"], a["a6"]])
    # the first version: every rule is new, and only work made before any version counts
    first = rc.recheck(session, actor=t.lead, project=t.project, to_version="1.0")
    assert first.old is None and {r.change for r in first.rules} == {"added"}
    assert sorted(_ids(first)) == sorted([a["a6"], a["a8"], a["a9"]])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"from_version": "1.1", "to_version": "1.0"}, "from"),
        ({"from_version": "1.1", "to_version": "1.1"}, "from"),
        ({"to_version": "draft"}, "to"),
        ({"from_version": "one"}, "from"),
        ({"rule": "not a rule"}, "rule"),
        ({"limit": -1}, "limit"),
        ({"limit": rc.MAX_LIMIT + 1}, "limit"),
    ],
)
def test_bad_requests_name_the_field(
    session: Session,
    tickets: Tickets,
    changed: dict[str, int],
    kwargs: dict[str, Any],
    field: str,
) -> None:
    with pytest.raises(ValidationFailed) as err:
        rc.recheck(session, actor=tickets.lead, project=tickets.project, **kwargs)
    assert [v.field for v in err.value.violations] == [field]


def test_missing_versions_and_rules(
    session: Session, tickets: Tickets, changed: dict[str, int]
) -> None:
    t = tickets
    with pytest.raises(NotFound, match=r"no guideline version 2\.0"):
        rc.recheck(session, actor=t.lead, project=t.project, to_version="2.0")
    with pytest.raises(NotFound, match=r"rule R9 is in neither version 1\.0 nor 1\.1"):
        rc.recheck(session, actor=t.lead, project=t.project, rule="R9")


def test_only_data_readers_list_and_only_audit_managers_send(
    session: Session, factories: ModuleType, tickets: Tickets, changed: dict[str, int]
) -> None:
    t = tickets
    auditor = factories.UserFactory()
    factories.MembershipFactory(user=auditor, project=t.project, role="auditor")
    for who in (t.annotator, actor_of(auditor), t.outsider):
        with pytest.raises(PermissionDenied):
            rc.recheck(session, actor=who, project=t.project)
        with pytest.raises(PermissionDenied):
            rc.send(session, actor=who, project=t.project)
    model = factories.UserFactory()
    factories.MembershipFactory(user=model, project=t.project, role="model")
    assert rc.recheck(session, actor=actor_of(model), project=t.project).total == 7
    with pytest.raises(PermissionDenied):
        rc.send(session, actor=actor_of(model), project=t.project)


def test_multi_label_and_span_values_concern_the_labels_they_contain(
    session: Session, factories: ModuleType
) -> None:
    for trait, hit, miss in (
        ("multi", ["billing", "technical"], ["technical"]),
        (
            "spans",
            [{"start": 0, "end": 5, "label": "ORG", "text": "Apple"}],
            [{"start": 0, "end": 5, "label": "LOC", "text": "Paris"}],
        ),
    ):
        project = factories.ProjectFactory(**{trait: True})
        label = "billing" if trait == "multi" else "ORG"
        lead = factories.UserFactory()
        factories.MembershipFactory(user=lead, project=project, lead=True)
        actor = actor_of(lead)
        for n in range(2):
            doc = GuidelineDoc(title="g", rules=(RuleDoc(id="R1", title=f"v{n}", labels=(label,)),))
            service.save_draft(session, actor=actor, project=project, doc=doc)
            service.publish(session, actor=actor, project=project, note=f"v{n}")
        yes = factories.AnnotationFactory(item__project=project, value=hit, guideline_version="1.0")
        factories.AnnotationFactory(item__project=project, value=miss, guideline_version="1.0")
        factories.AnnotationFactory(item__project=project, value=hit, guideline_version="1.1")
        result = rc.recheck(session, actor=actor, project=project)
        assert (_ids(result), result.labels) == ([yes.id], {label: 1}), trait


# -- sending --------------------------------------------------------------------------


@pytest.fixture
def auditors(factories: ModuleType, tickets: Tickets) -> list[User]:
    users = [factories.UserFactory(), factories.UserFactory()]
    for u in users:
        factories.MembershipFactory(user=u, project=tickets.project, role="auditor")
    return users


def _events(session: Session, project: Project, action: str) -> list[Event]:
    return list(
        session.scalars(select(Event).where(Event.project_id == project.id, Event.action == action))
    )


def test_send_opens_a_blind_audit_run_of_the_list(
    session: Session,
    tickets: Tickets,
    changed: dict[str, int],
    auditors: list[User],
) -> None:
    t = tickets
    sent = rc.send(session, actor=t.lead, project=t.project, sample=4)
    run, policy = sent.run, sent.policy
    assert sent.created and policy.name == "Re-check 1.0 → 1.1" and policy.cadence == "manual"
    assert (run.status, run.trigger, run.population_size, run.sample_size) == (
        "open",
        "manual",
        7,
        4,
    )
    assert any("re-check of guideline 1.0 → 1.1: 7 annotations" in n for n in sent.notes)
    listed = set(_ids(rc.recheck(session, actor=t.lead, project=t.project)))
    units = session.scalars(select(AuditUnit).where(AuditUnit.run_id == run.id)).all()
    assert len(units) == 4 and {u.annotation_id for u in units} <= listed
    assert all(u.inclusion_probability == pytest.approx(4 / 7) for u in units)
    assert all(u.snapshot["guideline_version"] != "1.1" for u in units)
    reviewers = {u.id for u in auditors}
    for unit in units:
        assigned = session.scalars(
            select(AuditAssignment.reviewer_id).where(AuditAssignment.unit_id == unit.id)
        ).all()
        assert assigned and set(assigned) <= reviewers and unit.annotator_id not in assigned
    opened = _events(session, t.project, "audit_run.open")
    assert len(opened) == 1 and opened[0].after["recheck"]["to"] == "1.1"
    assert opened[0].after["recheck"]["labels"] == ["account", "billing", "other", "refund"]
    assert len(_events(session, t.project, "audit_policy.create")) == 1
    # the run is reviewed in the queue like any other
    queue = audits.review_queue(session, actor=actor_of(auditors[0]), run=run)
    assert queue and all(entry.label is None for entry in queue)  # blind


def test_sending_again_returns_the_same_run(
    session: Session,
    tickets: Tickets,
    changed: dict[str, int],
    auditors: list[User],
) -> None:
    t = tickets
    first = rc.send(session, actor=t.lead, project=t.project, sample=2)
    events = session.scalar(select(func.count()).select_from(Event)) or 0
    again = rc.send(session, actor=t.lead, project=t.project, sample=5)
    assert not again.created and again.run.id == first.run.id
    assert again.notes == [f"already sent as run {first.run.id}"]
    assert session.scalar(select(func.count()).select_from(Event)) == events
    one_rule = rc.send(session, actor=t.lead, project=t.project, rule="R3")
    assert one_rule.created and one_rule.policy.name == "Re-check R3 (1.0 → 1.1)"
    assert one_rule.run.population_size == 1 and one_rule.run.sample_size == 1


def _nothing_written(session: Session, project: Project) -> None:
    assert not session.scalars(
        select(AuditPolicy).where(AuditPolicy.project_id == project.id)
    ).all()
    assert not session.scalars(select(AuditRun).where(AuditRun.project_id == project.id)).all()
    assert not _events(session, project, "audit_policy.create")


def test_refused_sends_write_nothing(
    session: Session, factories: ModuleType, tickets: Tickets, changed: dict[str, int]
) -> None:
    t = tickets
    with pytest.raises(ValidationFailed, match="reviewer pool is empty"):
        rc.send(session, actor=t.lead, project=t.project)  # nobody audits this project
    _nothing_written(session, t.project)
    with pytest.raises(ValidationFailed) as err:
        rc.send(session, actor=t.lead, project=t.project, sample=0)
    assert err.value.violations[0].field == "sample"
    session.execute(Annotation.__table__.delete().where(Annotation.project_id == t.project.id))
    with pytest.raises(ValidationFailed, match="nothing to re-check") as err:
        rc.send(session, actor=t.lead, project=t.project, rule="R1")
    assert err.value.violations[0].field == "rule"
    _nothing_written(session, t.project)
