"""Hints from hidden gold checks missed in the workbench.

When an annotator submits an item the workbench served as a hidden gold check
(:attr:`labelloop.workbench.models.Lease.is_gold`) and their label differs from the
gold label, :func:`after_check` looks at their misses of that **confusion** (gold label
→ their label). Nothing is stored for a miss: misses are read back from the data, the
annotator's workbench annotations on gold items made while the item was gold, compared
with its gold label. Once :data:`MIN_MISSES` misses of one confusion within
:data:`WINDOW` are not yet covered by a hint, a *sent* note with source ``gold`` is
written in the submission's transaction, with a trail event (``feedback.gold_hint``) and
a notification.

**Aggregate only.** The hint never identifies a check item: no items, no item ids,
external ids or texts in the note, its JSON, its page, the trail event or the
notification; only the two labels and how many misses. Its template is
``guideline_misread`` with the rules of the current guideline that concern the gold
label, or ``attention_slip`` when no rule does (``guideline_misread`` requires a rule
to point to).

**Capped.** At most :data:`HINTS_PER_DAY` hints per annotator and project per UTC day,
and one hint per confusion until the annotator has acknowledged the previous one.

**Delayed.** A hint visible on the page after the submission that completed it would
tell the annotator that this item was a check. So hints go out in rounds: a miss in
the :data:`ROUND` starting at ``found_at`` is sent (becomes visible in the inbox, the
workbench banner and the notification inbox) :data:`MIN_DELAY` after that round ends,
between 5 and 35 minutes later, several items on. Its ``found_at`` and ``sent_at`` are
those round times, never the submission's own time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.audits.population import label_key
from labelloop.feedback.lifecycle import _mark_sent
from labelloop.feedback.models import DRAFT, SENT, FeedbackNote
from labelloop.feedback.service import _event, note_json, settings_of
from labelloop.guidelines.service import current
from labelloop.projects.models import Annotation, GoldLabel, Project

#: Misses of one confusion behind a hint.
MIN_MISSES = 3
#: Hints per annotator and project per UTC day.
HINTS_PER_DAY = 3
#: How far back misses count ("recent").
WINDOW = timedelta(days=30)
#: Hints go out in rounds of this length (a divisor of an hour) ...
ROUND = timedelta(minutes=30)
#: ... this long after the round of the miss that completed them ends.
MIN_DELAY = timedelta(minutes=5)
#: Task types with a finite label set (a span or free-text label is item-specific).
TASK_TYPES = ("single", "multi", "ordinal")
#: Rule references per hint at most.
MAX_RULES = 3
SOURCE = "gold"


def round_start(t: datetime) -> datetime:
    """The start of the :data:`ROUND` that ``t`` falls in."""
    minutes = int(ROUND.total_seconds() // 60)
    return t.replace(minute=t.minute - t.minute % minutes, second=0, microsecond=0)


def visible_at(t: datetime) -> datetime:
    """When a hint completed at ``t`` is sent: :data:`MIN_DELAY` after its round ends."""
    return round_start(t) + ROUND + MIN_DELAY


def counted_before(now: datetime) -> datetime:
    """Work submitted before this moment may show its correctness (My quality): the end
    of the last round whose hints are out, so no figure moves at the submission of a
    check item (:func:`visible_at` of any earlier moment is at most ``now``)."""
    return round_start(now - ROUND - MIN_DELAY) + ROUND


def _labels(value: Any) -> set[str]:
    """The labels a value names (one for single labels and ratings, each of a list)."""
    if isinstance(value, list):
        return {label_key(v) for v in value}
    return {label_key(value)}


def _misses(
    session: Session,
    annotation: Annotation,
    confusion: tuple[str, str],
    since: datetime,
    now: datetime,
) -> int:
    """The annotator's misses of ``confusion`` (expected, given) on gold items labeled
    in the same workbench source after ``since`` (while the item was gold)."""
    rows = session.execute(
        select(Annotation.value, GoldLabel.value)
        .join(GoldLabel, GoldLabel.item_id == Annotation.item_id)
        .where(
            Annotation.project_id == annotation.project_id,
            Annotation.annotator_id == annotation.annotator_id,
            Annotation.source == annotation.source,
            Annotation.submitted_at > since,
            Annotation.submitted_at <= now,
            Annotation.submitted_at >= GoldLabel.created_at,
        )
    ).tuples()
    expected, given = confusion
    return sum(label_key(g) == expected and label_key(a) == given for a, g in rows)


def _mine(annotation: Annotation) -> list[Any]:
    """Conditions: the gold hints of the annotation's annotator in its project."""
    return [
        FeedbackNote.project_id == annotation.project_id,
        FeedbackNote.recipient_id == annotation.annotator_id,
        FeedbackNote.source == SOURCE,
    ]


def _since(
    session: Session, annotation: Annotation, confusion: tuple[str, str], now: datetime
) -> datetime | None:
    """Where uncovered misses of the confusion start (the last hint on it, or the
    window's start); None when no hint may be written now (the daily cap is reached,
    or the last hint on the confusion is not acknowledged yet)."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    today = session.scalar(
        select(func.count(FeedbackNote.id)).where(
            *_mine(annotation), FeedbackNote.created_at >= midnight
        )
    )
    if int(today or 0) >= HINTS_PER_DAY:
        return None
    expected, given = confusion
    last = session.execute(
        select(FeedbackNote.status, FeedbackNote.created_at)
        .where(*_mine(annotation), FeedbackNote.expected == expected, FeedbackNote.given == given)
        .order_by(FeedbackNote.created_at.desc(), FeedbackNote.id.desc())
        .limit(1)
    ).first()
    if last is None:
        return now - WINDOW
    status, created_at = last
    if status == SENT:
        return None
    return max(created_at, now - WINDOW)


def _rules(session: Session, project_id: int, expected: Any, given: Any) -> list[tuple[str, str]]:
    """(key, title) of the current guideline's rules about the gold labels the
    annotator missed, those that also concern their label first."""
    version = current(session, project_id)
    if version is None:
        return []
    missed = _labels(expected) - _labels(given) or _labels(expected)
    about = [r for r in version.rules if missed & set(r.labels)]
    about.sort(key=lambda r: not (_labels(given) & set(r.labels)))
    return [(r.key, r.title) for r in about[:MAX_RULES]]


def _words(n: int, expected: str, given: str, rules: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The hint's confusion, template, message and fields (aggregate only)."""
    message = f"On {n} recent check items whose reference is ‘{expected}’, you chose ‘{given}’."
    confusion = {"expected": expected, "given": given}
    if rules:
        named = "; ".join(f"{key} ({title})" for key, title in rules)
        one = len(rules) == 1
        message += f" Re-read rule{'' if one else 's'} {named} of the guideline."
        change = f"Before choosing ‘{given}’, check the rule{'' if one else 's'} on ‘{expected}’."
        return {
            **confusion,
            "template": "guideline_misread",
            "category": "guideline misread",
            "message": message,
            "fields": {"what_to_change": change},
            "rule_refs": [key for key, _ in rules],
        }
    message += f" Take a moment on items like these: check what ‘{expected}’ covers."
    return {
        **confusion,
        "template": "attention_slip",
        "category": "attention slip",
        "message": message,
        "fields": {"what_to_change": f"Before choosing ‘{given}’, rule out ‘{expected}’."},
        "rule_refs": [],
    }


def after_check(
    session: Session, *, project: Project, annotation: Annotation, now: datetime
) -> FeedbackNote | None:
    """Called by the workbench for a submission that answered a hidden gold check:
    the hint it completes (see the module doc), or None."""
    if project.task_type not in TASK_TYPES:
        return None
    gold = session.scalar(select(GoldLabel.value).where(GoldLabel.item_id == annotation.item_id))
    if gold is None:
        return None
    expected, given = label_key(gold), label_key(annotation.value)
    if expected == given:
        return None
    since = _since(session, annotation, (expected, given), now)
    if since is None:
        return None
    n = _misses(session, annotation, (expected, given), since, now)
    if n < MIN_MISSES:
        return None
    words = _words(n, expected, given, _rules(session, project.id, gold, annotation.value))
    return _write(session, project, annotation.annotator_id, words, now, n)


def _write(
    session: Session,
    project: Project,
    annotator_id: int,
    words: dict[str, Any],
    now: datetime,
    misses: int,
) -> FeedbackNote:
    """The hint (``words``: :func:`_words`), sent for its round, with its trail event
    and notification."""
    actor = Actor.local("feedback")
    note = FeedbackNote(
        project_id=project.id,
        recipient_id=annotator_id,
        severity="medium",
        status=DRAFT,
        source=SOURCE,
        source_id=None,
        found_at=round_start(now),
        created_by=actor.name,
        created_at=now,
        items=[],
        **words,
    )
    session.add(note)
    session.flush()
    days = settings_of(session, project).due_days
    _mark_sent(session, actor, note, visible_at(now), days, kind="feedback.gold")
    session.flush()
    after = {**note_json(note), "misses": misses}
    _event(session, actor, project.id, "feedback.gold_hint", "feedback_note", note.id, None, after)
    return note
