"""The error-type Pareto of feedback: which confusions the notes are about.

**What is counted.** Feedback items: one per piece of work a note points at (an audited
annotation, a ruled item), of the project's notes that were sent (every status but
``draft``) and name a confusion (label given → reference label; positive notes and
hand-written notes without one are left out). Items are grouped by the note's confusion
pair and sorted by count, descending (ties by the pair's labels).

For pair ``i`` of ``m`` pairs with ``c_i`` items and ``N = Σ c``: ``share_i = c_i / N``
and ``cumulative_i = Σ_{j ≤ i} c_j / N``, the Pareto line that shows how few confusions
make most of the errors. Pairs beyond the ``top`` largest are summed in one last
*other pairs* row.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.accounts.policy import require
from labelloop.accounts.roles import Permission
from labelloop.feedback.models import DRAFT, FeedbackItem, FeedbackNote
from labelloop.projects.models import Project

TOP = 10


@dataclass(frozen=True)
class ParetoRow:
    """One confusion pair (``given`` and ``expected`` None for the *other pairs* row)."""

    given: str | None
    expected: str | None
    items: int
    notes: int
    share: float
    cumulative: float


def error_pareto(
    session: Session, *, actor: Actor, project: Project, top: int = TOP
) -> list[ParetoRow]:
    """Feedback items per confusion pair, largest first, with cumulative shares (module
    doc); ``feedback.send``."""
    require(session, actor, Permission.FEEDBACK_SEND, project_id=project.id)
    n, i = FeedbackNote, FeedbackItem
    counts = session.execute(
        select(n.given, n.expected, func.count(i.id), func.count(distinct(n.id)))
        .join(i, i.note_id == n.id)
        .where(
            n.project_id == project.id,
            n.status != DRAFT,
            n.given.is_not(None),
            n.expected.is_not(None),
        )
        .group_by(n.given, n.expected)
    ).tuples()
    ranked = sorted(counts, key=lambda r: (-r[2], r[0], r[1]))
    pairs: list[tuple[str | None, str | None, int, int]] = [
        (g, e, int(c), int(k)) for g, e, c, k in ranked[:top]
    ]
    rest = ranked[top:]
    if rest:
        pairs.append((None, None, sum(r[2] for r in rest), sum(r[3] for r in rest)))
    return _with_shares(pairs)


def _with_shares(pairs: list[tuple[str | None, str | None, int, int]]) -> list[ParetoRow]:
    total = sum(p[2] for p in pairs)
    out: list[ParetoRow] = []
    running = 0
    for given, expected, items, notes in pairs:
        running += items
        out.append(ParetoRow(given, expected, items, notes, items / total, running / total))
    return out
