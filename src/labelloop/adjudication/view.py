"""What the adjudicator sees of a case: the item's labels grouped with counts and who
chose each (hidden in the project's anonymous mode), the model's newest prediction and
its confidence, the consensus posterior, the current guideline's rules that concern
the labels in play, and similar past rulings.

A past ruling is *similar* when its ruled label or its case's consensus is among the
labels in play here; the most overlapping come first, then the newest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.accounts.models import User
from labelloop.adjudication.models import Case, Ruling
from labelloop.adjudication.service import CaseRow, get_case, settings_of
from labelloop.audits.population import label_key
from labelloop.guidelines.models import GuidelineRule
from labelloop.guidelines.service import current
from labelloop.projects.models import Annotation, Item, Prediction, Project

SIMILAR = 5


@dataclass(frozen=True)
class VoteGroup:
    label: str
    count: int
    annotators: list[str] | None  # None in anonymous mode
    notes: list[str]  # the uncertainty reasons annotators gave


@dataclass(frozen=True)
class ModelView:
    model: str
    version: str
    label: str
    confidence: float | None


@dataclass(frozen=True)
class CaseView:
    row: CaseRow
    project: Project
    item: Item
    groups: list[VoteGroup]
    prediction: ModelView | None
    rules: list[GuidelineRule]
    guideline_version: str | None
    similar: list[tuple[Ruling, str]]  # ruling, its item's external id
    ruling: Ruling | None
    anonymous: bool

    @property
    def labels(self) -> list[str]:
        """The labels in play: voted ones, most votes first, then the model's."""
        out = [g.label for g in self.groups]
        if self.prediction is not None and self.prediction.label not in out:
            out.append(self.prediction.label)
        return out

    def as_json(self) -> dict[str, Any]:
        p = self.prediction
        return {
            **self.row.as_json(),
            "note": self.row.case.note,
            "payload": self.item.payload,
            "votes": [
                {"label": g.label, "count": g.count, "annotators": g.annotators, "notes": g.notes}
                for g in self.groups
            ],
            "prediction": None
            if p is None
            else {
                "model": p.model,
                "version": p.version,
                "label": p.label,
                "confidence": p.confidence,
            },
            "rules": [{"id": r.key, "title": r.title, "labels": r.labels} for r in self.rules],
            "guideline_version": self.guideline_version,
            "similar": [
                {"ruling": r.id, "item": ext, "label": label_key(r.value), "rationale": r.rationale}
                for r, ext in self.similar
            ],
            "ruling": None if self.ruling is None else ruling_json(self.ruling),
        }


def ruling_json(r: Ruling) -> dict[str, Any]:
    return {
        "id": r.id,
        "case": r.case_id,
        "item_id": r.item_id,
        "label": r.value,
        "rationale": r.rationale,
        "rules": r.rule_refs,
        "gold": r.gold,
        "exemplar": r.exemplar_rule,
        "amendment": r.amendment,
        "notable": r.notable,
        "adjudicator": r.adjudicator,
        "guideline_version": r.guideline_version,
        "created_at": r.created_at.isoformat(),
    }


def _groups(session: Session, item_id: int, anonymous: bool) -> list[VoteGroup]:
    rows = session.execute(
        select(Annotation.value, Annotation.flags, User.display_name, User.username)
        .join(User, User.id == Annotation.annotator_id)
        .where(Annotation.item_id == item_id)
        .order_by(Annotation.id)
    ).all()
    by: dict[str, tuple[list[str], list[str]]] = {}
    for value, flags, display, username in rows:
        who, notes = by.setdefault(label_key(value), ([], []))
        who.append(display or username)
        notes += [f["message"] for f in flags or [] if f.get("code") == "uncertain"]
    ordered = sorted(by.items(), key=lambda kv: (-len(kv[1][0]), kv[0]))
    return [
        VoteGroup(label, len(who), None if anonymous else who, notes)
        for label, (who, notes) in ordered
    ]


def _prediction(session: Session, item_id: int) -> ModelView | None:
    p = session.scalar(
        select(Prediction)
        .where(Prediction.item_id == item_id)
        .order_by(Prediction.created_at.desc(), Prediction.id.desc())
        .limit(1)
    )
    if p is None:
        return None
    label = label_key(p.value)
    confidence = p.score
    if confidence is None and p.probabilities and label in p.probabilities:
        confidence = float(p.probabilities[label])
    return ModelView(p.model_name, p.model_version, label, confidence)


def _similar(session: Session, case: Case, labels: set[str]) -> list[tuple[Ruling, str]]:
    rows = session.execute(
        select(Ruling, Case.consensus, Item.external_id)
        .join(Case, Case.id == Ruling.case_id)
        .join(Item, Item.id == Ruling.item_id)
        .where(Ruling.project_id == case.project_id, Ruling.item_id != case.item_id)
        .order_by(Ruling.created_at.desc(), Ruling.id.desc())
        .limit(500)
    ).all()
    scored: list[tuple[int, int, Ruling, str]] = []
    for ruling, consensus, ext in rows:
        overlap = len({label_key(ruling.value), consensus} & labels)
        if overlap:
            scored.append((-overlap, len(scored), ruling, ext))
    scored.sort(key=lambda t: (t[0], t[1]))
    return [(r, ext) for _, _, r, ext in scored[:SIMILAR]]


def case_view(session: Session, *, actor: Actor, case_id: int) -> CaseView:
    row = get_case(session, actor=actor, case_id=case_id)
    case = row.case
    project = session.get(Project, case.project_id)
    item = session.get(Item, case.item_id)
    assert project is not None and item is not None
    anonymous = settings_of(session, project).anonymous
    groups = _groups(session, item.id, anonymous)
    prediction = _prediction(session, item.id)
    labels = {g.label for g in groups} | ({prediction.label} if prediction else set())
    version = current(session, project.id)
    rules = [r for r in version.rules if set(r.labels) & labels] if version else []
    ruling = session.scalar(select(Ruling).where(Ruling.case_id == case.id))
    return CaseView(
        row,
        project,
        item,
        groups,
        prediction,
        rules,
        None if version is None else version.number,
        _similar(session, case, labels),
        ruling,
        anonymous,
    )
