"""One annotator's quality, for themselves ("My quality") and for those who coach them.

**Reference labels** (shared with :mod:`labelloop.feedback.effect`): an item's gold
label when it has one, else the Dawid–Skene consensus of its votes
(:func:`labelloop.adjudication.votes.tally` over the whole project; the annotator's own
vote is one of them).

**What** :func:`my_quality` **reports**, each share with its Wilson 95 % interval
(:func:`labelloop.stats.wilson_interval`):

* ``gold``: accuracy on items with a gold label;
* ``audit``: the verdicts of closed audit runs on their annotations (the first,
  non-double review of each audited annotation; ``unsure`` verdicts are counted apart
  and left out of the share). Open runs are still being reviewed and are left out;
* ``reference``: accuracy against the reference labels, overall and per ISO week of
  submission (``weeks``);
* ``confusions``: their label against the reference where the two differ, most
  frequent first, with the share of the reference's items labeled that way;
* ``team``: where their accuracy against the reference stands among the project's
  annotators with at least :data:`MIN_TEAM_LABELS` labels (a mid-rank percentile and a
  histogram in bins of :data:`BIN_WIDTH`, nothing else about anyone); shown only with
  at least :data:`MIN_TEAM_SIZE` such annotators, so that no one's figure can be read
  off it;
* ``notes``: the feedback notes sent to them, newest first, with their status.

Everyone may read their own page; holders of ``project.manage`` (leads) or
``audit.review`` (auditors, adjudicators, mentors) may read any member's.

The project-wide half (every annotation with its reference label) is kept between
views while the project's annotations and gold labels are unchanged
(:mod:`labelloop.feedback.reference_cache`); the rest is read for each view.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.accounts.models import Membership, User
from labelloop.accounts.policy import allowed, require
from labelloop.accounts.roles import Permission, Role
from labelloop.adjudication.reading import Annotations, read_annotations
from labelloop.adjudication.votes import tally
from labelloop.audits.models import AuditAssignment, AuditReview, AuditRun, AuditUnit
from labelloop.audits.population import label_from_json_text
from labelloop.errors import NotFound, PermissionDenied, ValidationFailed
from labelloop.feedback import templates as tpl
from labelloop.feedback.models import FeedbackNote, FeedbackSettings
from labelloop.feedback.reference_cache import CACHE, ProjectReference
from labelloop.feedback.service import shown
from labelloop.projects.models import GoldLabel, Project
from labelloop.projects.validation import Violation
from labelloop.stats import wilson_interval
from labelloop.store.base import utcnow

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Annotators with fewer labels compared with a reference stay out of the team figures.
MIN_TEAM_LABELS = 10
#: The team's distribution is shown only when this many annotators are in it.
MIN_TEAM_SIZE = 5
#: Histogram bins of accuracy: 5 points wide (``BINS`` of them from 0 to 1).
BINS = 20
BIN_WIDTH = 1 / BINS
#: The roles whose holders label and so get a quality page in the member picker.
LABELING_ROLES = (Role.ANNOTATOR.value, Role.MENTOR.value)


# -- reference labels ----------------------------------------------------------------


def gold_codes(session: Session, project: Project, code: dict[str, int]) -> dict[int, int]:
    """Item id -> the code of its gold label in ``code`` (``len(code)`` for a gold label
    that no annotation uses)."""
    rows = session.execute(
        select(GoldLabel.item_id, cast(GoldLabel.value, Text)).where(
            GoldLabel.project_id == project.id
        )
    ).tuples()
    return {item: code.get(label_from_json_text(text), len(code)) for item, text in rows}


def reference_labels(
    session: Session, project: Project, cols: Annotations
) -> tuple[IntArray, BoolArray]:
    """Per annotation of ``cols``: the code of its item's reference label (gold, else the
    consensus; ``len(cols.categories)`` for a gold label outside the categories) and
    whether that reference is a gold label."""
    if not len(cols.item):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    votes = tally(cols.item, cols.annotator, cols.label, cols.categories)
    ref = votes.consensus[np.searchsorted(votes.items, cols.item)]
    is_gold = np.zeros(len(cols.item), dtype=bool)
    gold = gold_codes(session, project, {c: i for i, c in enumerate(cols.categories)})
    if gold:
        items = np.fromiter(gold, dtype=np.int64, count=len(gold))
        codes = np.fromiter(gold.values(), dtype=np.int64, count=len(gold))
        order = np.argsort(items)
        items, codes = items[order], codes[order]
        at = np.clip(np.searchsorted(items, cols.item), 0, len(items) - 1)
        is_gold = items[at] == cols.item
        ref = np.where(is_gold, codes[at], ref)
    return ref.astype(np.int64), is_gold


# -- permissions and people ----------------------------------------------------------


def may_view_others(session: Session, actor: Actor, project: Project) -> bool:
    """Whether the actor may read other members' quality (leads, reviewers, mentors)."""
    return allowed(session, actor, Permission.PROJECT_MANAGE, project_id=project.id) or allowed(
        session, actor, Permission.AUDIT_REVIEW, project_id=project.id
    )


def labelers(session: Session, *, actor: Actor, project: Project) -> list[dict[str, Any]]:
    """The project's annotators and mentors (``username``, ``display_name``), by
    username: the people a lead writes notes to, or whose quality a coach reads
    (``project.manage``, ``audit.review`` or ``feedback.send``)."""
    if not (
        may_view_others(session, actor, project)
        or allowed(session, actor, Permission.FEEDBACK_SEND, project_id=project.id)
    ):
        raise PermissionDenied(f"{actor.name} may not list the members of project {project.id}")
    rows = session.execute(
        select(User.username, User.display_name)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.project_id == project.id, Membership.role.in_(LABELING_ROLES))
        .distinct()
        .order_by(User.username)
    ).tuples()
    return [{"username": u, "display_name": d} for u, d in rows]


def _target(
    session: Session, actor: Actor, project: Project, username: str | None
) -> tuple[int, str, str | None, bool]:
    """(user id, username, display name, is the actor) of the page's subject."""
    require(session, actor, Permission.PROJECT_READ, project_id=project.id)
    own = None if actor.user_id is None else session.get(User, actor.user_id)
    if username is None or (own is not None and own.username == username):
        if own is None:
            raise ValidationFailed(
                "whose quality?", [Violation("user", "required", "name the annotator")]
            )
        return own.id, own.username, own.display_name, True
    if not may_view_others(session, actor, project):
        raise PermissionDenied(f"{actor.name} may read only their own quality")
    found = session.execute(
        select(User.id, User.username, User.display_name)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.project_id == project.id, User.username == username)
        .limit(1)
    ).first()
    if found is None:
        raise NotFound(f"no member {username!r} in project {project.name!r}")
    return found[0], found[1], found[2], False


# -- figures --------------------------------------------------------------------------


def share(correct: int, n: int) -> dict[str, Any]:
    """``{"correct", "n", "rate", "ci"}``: a share with its Wilson 95 % interval
    (``rate`` and ``ci`` are ``None`` when ``n`` is 0)."""
    if not n:
        return {"correct": 0, "n": 0, "rate": None, "ci": None}
    lo, hi = wilson_interval(correct / n, n)
    return {"correct": correct, "n": n, "rate": correct / n, "ci": [lo, hi]}


def iso_week(monday: int) -> tuple[str, str]:
    """(``2026-W45``, ``2026-11-02``) of the week whose Monday is ``monday`` days after
    1970-01-01."""
    day = date(1970, 1, 1) + timedelta(days=monday)
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}", day.isoformat()


def _weeks(seconds: npt.NDArray[np.float64], correct: BoolArray) -> list[dict[str, Any]]:
    """Accuracy per ISO week (UTC) of the submit times (annotations without one are left
    out), oldest first."""
    known = ~np.isnan(seconds)
    day = np.floor(seconds[known] / 86400.0).astype(np.int64)
    monday = day - (day + 3) % 7  # 1970-01-01 was a Thursday
    weeks, inverse = np.unique(monday, return_inverse=True)
    n = np.bincount(inverse, minlength=weeks.size)
    right = np.bincount(inverse, weights=correct[known], minlength=weeks.size)
    out = []
    for m, k, c in zip(weeks.tolist(), n.tolist(), right.tolist(), strict=True):
        label, start = iso_week(int(m))
        out.append({"week": label, "start": start, **share(round(c), int(k))})
    return out


def _confusions(given: IntArray, ref: IntArray, categories: Sequence[str]) -> list[dict[str, Any]]:
    """(their label, reference) pairs where they differ: count, and the share of the
    reference's annotations labeled that way; most frequent first."""
    k = len(categories) + 1
    names = [*categories, "(a gold label no one chose)"]
    of = np.bincount(ref, minlength=k)
    wrong = given != ref
    pairs, counts = np.unique(given[wrong] * k + ref[wrong], return_counts=True)
    order = np.lexsort((pairs, -counts))
    return [
        {
            "given": names[int(p) // k],
            "reference": names[int(p) % k],
            "count": int(c),
            "of": int(of[int(p) % k]),
            "share": int(c) / int(of[int(p) % k]),
        }
        for p, c in zip(pairs[order].tolist(), counts[order].tolist(), strict=True)
    ]


def team_standing(annotator: IntArray, correct: BoolArray, user_id: int) -> dict[str, Any]:
    """The user's place among the annotators with at least :data:`MIN_TEAM_LABELS`
    labels: ``annotators`` (how many), ``accuracy`` (theirs), ``percentile`` (the share
    of them below plus half of those level, × 100) and ``bins`` (``lo``, ``hi``,
    ``count``, ``mine``) from the lowest occupied bin to 100 %. ``percentile`` and
    ``bins`` are ``None`` below :data:`MIN_TEAM_SIZE` annotators or when the user has too
    few labels."""
    people, inverse = np.unique(annotator, return_inverse=True)
    n = np.bincount(inverse, minlength=people.size)
    right = np.bincount(inverse, weights=correct, minlength=people.size)
    keep = n >= MIN_TEAM_LABELS
    accuracy = right[keep] / n[keep]
    out: dict[str, Any] = {
        "annotators": int(keep.sum()),
        "min_labels": MIN_TEAM_LABELS,
        "min_size": MIN_TEAM_SIZE,
        "accuracy": None,
        "percentile": None,
        "bins": None,
    }
    at = np.flatnonzero(people[keep] == user_id)
    if not at.size or accuracy.size < MIN_TEAM_SIZE:
        return out
    mine = float(accuracy[at[0]])
    below = int((accuracy < mine).sum())
    level = int((accuracy == mine).sum())
    b = np.minimum(np.floor(accuracy * BINS + 1e-9).astype(np.int64), BINS - 1)
    counts = np.bincount(b, minlength=BINS)
    my_bin = int(b[at[0]])
    out.update(
        accuracy=mine,
        percentile=100.0 * (below + 0.5 * level) / accuracy.size,
        bins=[
            {"lo": i / BINS, "hi": (i + 1) / BINS, "count": int(counts[i]), "mine": i == my_bin}
            for i in range(int(b.min()), BINS)
        ],
    )
    return out


def _audits(session: Session, project: Project, user_id: int) -> dict[str, Any]:
    rows = session.execute(
        select(AuditUnit.id, AuditReview.verdict)
        .join(AuditReview, AuditReview.unit_id == AuditUnit.id)
        .join(AuditAssignment, AuditAssignment.id == AuditReview.assignment_id)
        .join(AuditRun, AuditRun.id == AuditUnit.run_id)
        .where(
            AuditRun.project_id == project.id,
            AuditRun.status == "closed",
            AuditUnit.annotator_id == user_id,
            AuditAssignment.double.is_(False),
        )
        .order_by(AuditUnit.id, AuditReview.id)
    ).tuples()
    first: dict[int, str] = {}
    for unit, verdict in rows:
        first.setdefault(unit, verdict)
    verdicts = list(first.values())
    correct, wrong = verdicts.count("correct"), verdicts.count("incorrect")
    return {**share(correct, correct + wrong), "unsure": verdicts.count("unsure")}


def _notes(session: Session, project: Project, user_id: int) -> list[dict[str, Any]]:
    cfg = session.get(FeedbackSettings, project.id)
    titles = tpl.catalogue(cfg.templates if cfg is not None else ())
    notes = session.scalars(
        select(FeedbackNote)
        .where(
            FeedbackNote.project_id == project.id,
            FeedbackNote.recipient_id == user_id,
            shown(),  # a gold hint waiting for its round is not shown yet
        )
        .order_by(FeedbackNote.sent_at.desc(), FeedbackNote.id.desc())
    )
    return [
        {
            "id": n.id,
            "template": n.template,
            "title": titles[n.template].title if n.template in titles else n.template,
            "severity": n.severity,
            "status": n.status,
            "response": n.response,
            "sent_at": n.sent_at,
            "due_at": n.due_at,
        }
        for n in notes
    ]


def project_reference(session: Session, project: Project) -> ProjectReference:
    """Every annotation of the project with its reference label (computed afresh)."""
    cols = read_annotations(session, project, times=True)
    ref, is_gold = reference_labels(session, project, cols)
    assert cols.submitted is not None
    return ProjectReference(
        cols.annotator, cols.label, ref, is_gold, cols.submitted, tuple(cols.categories)
    )


def my_quality(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    username: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The figures of the module doc for ``username`` (default: the actor): ``user``
    (``username``, ``display_name``, ``self``), ``labels`` (how many annotations),
    ``gold``, ``audit``, ``reference``, ``weeks``, ``confusions``, ``team``, ``notes``.
    PermissionDenied for another member's page without ``project.manage`` or
    ``audit.review``; NotFound when ``username`` holds no role in the project."""
    from labelloop.feedback.gold import counted_before

    user_id, name, display, is_self = _target(session, actor, project, username)
    p = CACHE.cached(session, project, project_reference)
    # the last half-hour rounds are left out, as gold-miss hints are held back: a figure
    # that moved at a submission would tell the annotator that the item was a check
    counted = ~(p.submitted >= counted_before(now or utcnow()).timestamp())
    correct = p.label == p.ref
    mine = (p.annotator == user_id) & counted
    is_gold = p.is_gold
    return {
        "user": {"username": name, "display_name": display, "self": is_self},
        "labels": int((p.annotator == user_id).sum()),
        "gold": share(int((correct & mine & is_gold).sum()), int((mine & is_gold).sum())),
        "audit": _audits(session, project, user_id),
        "reference": share(int((correct & mine).sum()), int(mine.sum())),
        "weeks": _weeks(p.submitted[mine], correct[mine]),
        "confusions": _confusions(p.label[mine], p.ref[mine], p.categories),
        "team": team_standing(p.annotator[counted], correct[counted], user_id),
        "notes": _notes(session, project, user_id),
    }
