"""Feedback generated from findings, not typed.

- **An audit run, when it closes**: one draft per annotator × error category ×
  confusion (the label given → the reviewer's correction), listing the items, with the
  reviewers' rule references and comments; and a ``positive`` draft for each annotator
  whose error rate in the run is significantly below the rest of the team's (one-sided
  Fisher exact test, p < 0.05, at least :data:`MIN_POSITIVE` reviewed labels).
- **A ruling**: a sent note to each annotator whose label differs from the ruled one
  (the ruling is already a reviewed decision).

Drafts follow the project's ``auto_send`` setting: sent at once, or left for a lead to
review and send in bulk.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scipy import stats as sps
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.audits.models import AuditReview, AuditRun, AuditUnit
from labelloop.audits.population import label_key
from labelloop.feedback.models import DRAFT, FeedbackItem, FeedbackNote
from labelloop.feedback.templates import FOR_CATEGORY
from labelloop.store.base import utcnow

MIN_POSITIVE = 20
POSITIVE_P = 0.05


@dataclass
class _Group:
    annotator_id: int
    category: str | None
    given: str
    expected: str
    rules: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    severities: list[str] = field(default_factory=list)
    items: list[tuple[int, int, Any, Any]] = field(default_factory=list)  # item, ann, given, ref
    found_at: datetime | None = None


def _first_reviews(session: Session, run: AuditRun) -> list[tuple[AuditUnit, AuditReview]]:
    """Each reviewed unit with its first review (double reviews: the first one)."""
    rows = session.execute(
        select(AuditUnit, AuditReview)
        .join(AuditReview, AuditReview.unit_id == AuditUnit.id)
        .where(AuditUnit.run_id == run.id)
        .order_by(AuditUnit.id, AuditReview.id)
    ).tuples()
    seen: set[int] = set()
    out = []
    for unit, review in rows:
        if unit.id not in seen:
            seen.add(unit.id)
            out.append((unit, review))
    return out


def _groups(reviews: list[tuple[AuditUnit, AuditReview]]) -> list[_Group]:
    groups: dict[tuple[int, str | None, str, str], _Group] = {}
    for unit, review in reviews:
        if review.verdict != "incorrect" or review.corrected_value is None:
            continue
        given, expected = unit.snapshot.get("value"), review.corrected_value
        key = (unit.annotator_id, review.error_category, label_key(given), label_key(expected))
        g = groups.setdefault(key, _Group(*key))
        g.items.append((unit.item_id, unit.annotation_id, given, expected))
        if review.rule_ref and review.rule_ref not in g.rules:
            g.rules.append(review.rule_ref)
        if review.comment:
            g.comments.append(review.comment.strip())
        g.severities.append(review.severity or "medium")
        g.found_at = max(g.found_at or review.created_at, review.created_at)
    return list(groups.values())


_SEVERITY = ("low", "medium", "high", "critical")


def _note_for(run: AuditRun, g: _Group, actor: Actor) -> dict[str, Any]:
    n = len(g.items)
    category = g.category or "unclassified"
    template = FOR_CATEGORY.get(category, "boundary_case")
    rules = f" ({', '.join(g.rules)})" if g.rules else ""
    message = (
        f"In the audit of {run.window_start:%Y-%m-%d} to {run.window_end:%Y-%m-%d}, "
        f"{n} of your labels {g.given!r} were reviewed as {g.expected!r}{rules}: "
        f"{category}."
    )
    fields: dict[str, Any] = {
        "what_to_change": f"Items like these are {g.expected!r}, not {g.given!r}{rules}.",
    }
    if g.comments:
        fields["context"] = " / ".join(dict.fromkeys(g.comments))[:2000]
    severity = max(g.severities, key=lambda s: _SEVERITY.index(s) if s in _SEVERITY else 1)
    return _row(
        run,
        actor,
        recipient_id=g.annotator_id,
        template=template,
        severity=severity if severity in _SEVERITY else "medium",
        message=message,
        fields=fields,
        rule_refs=list(g.rules),
        category=category,
        given=g.given,
        expected=g.expected,
        found_at=g.found_at or utcnow(),
        items=[
            {
                "item_id": item,
                "annotation_id": ann,
                "given": given,
                "reference": ref,
                "reference_source": "audit",
            }
            for item, ann, given, ref in g.items
        ],
    )


def _row(run: AuditRun, actor: Actor, **values: Any) -> dict[str, Any]:
    """A draft note of ``run`` as a row (the bulk insert's), its items under "items"."""
    return {
        "project_id": run.project_id,
        "status": DRAFT,
        "source": "audit",
        "source_id": run.id,
        "created_by": actor.name,
        "created_at": utcnow(),
        "severity": "medium",
        "fields": {},
        "rule_refs": [],
        "category": None,
        "given": None,
        "expected": None,
        "items": [],
        **values,
    }


def _positives(
    run: AuditRun, reviews: list[tuple[AuditUnit, AuditReview]], actor: Actor
) -> list[dict[str, Any]]:
    judged = [(u, r) for u, r in reviews if r.verdict in ("correct", "incorrect")]
    wrong_all = sum(r.verdict == "incorrect" for _, r in judged)
    per: dict[int, list[int]] = defaultdict(lambda: [0, 0])  # annotator -> [wrong, n]
    for u, r in judged:
        per[u.annotator_id][0] += r.verdict == "incorrect"
        per[u.annotator_id][1] += 1
    notes = []
    for annotator, (wrong, n) in sorted(per.items()):
        rest_wrong, rest_n = wrong_all - wrong, len(judged) - n
        if n < MIN_POSITIVE or rest_n == 0:
            continue
        table = [[wrong, n - wrong], [rest_wrong, rest_n - rest_wrong]]
        p = float(sps.fisher_exact(table, alternative="less")[1])
        if p >= POSITIVE_P:
            continue
        mine, theirs = wrong / n, rest_wrong / rest_n
        notes.append(
            _row(
                run,
                actor,
                recipient_id=annotator,
                template="positive",
                severity="low",
                message=(
                    f"In the audit of {run.window_start:%Y-%m-%d} to {run.window_end:%Y-%m-%d} "
                    f"your error rate was {mine:.1%}, against {theirs:.1%} for the rest of "
                    f"the team (Fisher's exact test, p = {p:.3f})."
                ),
                fields={"what_was_right": f"{n - wrong} of {n} reviewed labels were right."},
                found_at=run.closed_at or utcnow(),
            )
        )
    return notes


def drafts_from_run(session: Session, *, actor: Actor, run: AuditRun) -> list[int]:
    """Insert the drafts of a closed run (see the module doc; two bulk inserts) and
    return their ids; nothing when the run's drafts were made before."""
    exists = session.scalar(
        select(FeedbackNote.id).where(
            FeedbackNote.source == "audit", FeedbackNote.source_id == run.id
        )
    )
    if exists is not None:
        return []
    reviews = _first_reviews(session, run)
    rows = [_note_for(run, g, actor) for g in _groups(reviews)]
    rows += _positives(run, reviews, actor)
    if not rows:
        return []
    items = [row.pop("items") for row in rows]
    ids = list(
        session.scalars(
            insert(FeedbackNote).returning(FeedbackNote.id, sort_by_parameter_order=True), rows
        )
    )
    links = [{**item, "note_id": nid} for nid, its in zip(ids, items, strict=True) for item in its]
    if links:
        session.execute(insert(FeedbackItem), links)
    return ids
