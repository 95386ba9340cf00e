"""Did feedback work? ``labelloop feedback stats``: counts, latency, and the effect of
notes on their recipients' errors.

**Reference labels.** An item's gold label when it has one, else the Dawid–Skene
consensus of its votes (:mod:`labelloop.adjudication.votes`), as
:func:`labelloop.feedback.quality.reference_labels` builds them for "My quality" too.

**Error measured per note.** A note about a confusion (label given → label expected)
measures the recipient's error on the expected class: among their annotations whose
reference is the expected label, the share labelled otherwise. A note without one (a
positive note) measures their overall error rate. *Before* is the
:data:`WINDOW_DAYS` before the note was sent, *after* the same span after it, by submit
time.

**Effect per template (and per sender).** Pooled rates before and after with Wilson
95 % intervals, and the Cochran–Mantel–Haenszel test with one stratum per note
(:func:`labelloop.stats.cochran_mantel_haenszel`), so each recipient is compared with
themselves and differences between recipients' base rates cancel. Notes with no
annotations on either side carry no information and are left out.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.accounts.policy import require
from labelloop.accounts.roles import Permission
from labelloop.adjudication.reading import read_annotations
from labelloop.feedback.models import DRAFT, FeedbackNote
from labelloop.feedback.quality import reference_labels
from labelloop.projects.models import Project
from labelloop.stats import cochran_mantel_haenszel, wilson_interval

WINDOW_DAYS = 28
IntArray = npt.NDArray[np.int64]


def _quantiles(hours: list[float]) -> dict[str, float | None]:
    if not hours:
        return {"median": None, "p90": None}
    arr = np.asarray(hours)
    return {
        "median": round(float(np.median(arr)), 2),
        "p90": round(float(np.quantile(arr, 0.9)), 2),
    }


def _hours(a: datetime | None, b: datetime | None) -> float | None:
    return None if a is None or b is None else (b - a).total_seconds() / 3600


@dataclass(frozen=True)
class _Errors:
    """The project's annotations sorted by (annotator, reference, time), with the
    cumulative count of errors, for window counts by binary search."""

    key: IntArray  # annotator * (K + 1) + reference code, sorted
    key_time: npt.NDArray[np.float64]  # submit times in that order
    cum: IntArray  # errors before position i, in that order
    person: IntArray  # annotators, sorted
    person_time: npt.NDArray[np.float64]  # submit times in that order
    cum_person: IntArray
    k: int
    categories: list[str]


def _reference(session: Session, project: Project) -> _Errors | None:
    cols = read_annotations(session, project, times=True)
    if not len(cols.item):
        return None
    ref, _ = reference_labels(session, project, cols)
    k = len(cols.categories)
    assert cols.submitted is not None
    time = np.where(np.isnan(cols.submitted), -np.inf, cols.submitted)
    wrong = (cols.label != ref).astype(np.int64)
    key = cols.annotator * (k + 1) + ref
    order = np.lexsort((time, key))
    by_person = np.lexsort((time, cols.annotator))
    return _Errors(
        key[order],
        time[order],
        np.concatenate([[0], np.cumsum(wrong[order])]),
        cols.annotator[by_person],
        time[by_person],
        np.concatenate([[0], np.cumsum(wrong[by_person])]),
        k,
        cols.categories,
    )


def _window(
    times: npt.NDArray[np.float64], cum: IntArray, lo: int, hi: int, start: float, end: float
) -> tuple[int, int]:
    """(errors, n) among positions lo..hi-1 whose time lies in [start, end)."""
    a = lo + int(np.searchsorted(times[lo:hi], start, "left"))
    b = lo + int(np.searchsorted(times[lo:hi], end, "left"))
    return int(cum[b] - cum[a]), b - a


def _tables(errors: _Errors, notes: Sequence[Any], days: int) -> dict[int, list[int]]:
    """Per note: [errors after, n after, errors before, n before]."""
    code = {c: i for i, c in enumerate(errors.categories)}
    span = days * 86400.0
    out: dict[int, list[int]] = {}
    for note in notes:
        assert note.sent_at is not None
        t0 = note.sent_at.timestamp()
        if note.expected is not None and note.expected in code:
            nkey = note.recipient_id * (errors.k + 1) + code[note.expected]
            lo = int(np.searchsorted(errors.key, nkey, "left"))
            hi = int(np.searchsorted(errors.key, nkey, "right"))
            times, cum = errors.key_time, errors.cum
        elif note.expected is None:
            lo = int(np.searchsorted(errors.person, note.recipient_id, "left"))
            hi = int(np.searchsorted(errors.person, note.recipient_id, "right"))
            times, cum = errors.person_time, errors.cum_person
        else:
            continue
        after = _window(times, cum, lo, hi, math.nextafter(t0, math.inf), t0 + span)
        before = _window(times, cum, lo, hi, t0 - span, t0)
        if after[1] and before[1]:
            out[note.id] = [*after, *before]
    return out


def _rate(k: int, n: int) -> dict[str, Any]:
    if not n:
        return {"rate": None, "ci": None, "n": 0}
    lo, hi = wilson_interval(k / n, n)
    return {"rate": round(k / n, 4), "ci": [round(lo, 4), round(hi, 4)], "n": n}


def effect_of(rows: list[list[int]]) -> dict[str, Any]:
    """Pooled before/after rates with Wilson intervals and the CMH p-value of per-note
    tables ``[errors after, n after, errors before, n before]``."""
    t = np.asarray(rows, dtype=np.float64)
    strata = np.stack(
        [[t[:, 0], t[:, 1] - t[:, 0]], [t[:, 2], t[:, 3] - t[:, 2]]], axis=0
    ).transpose(2, 0, 1)
    test = cochran_mantel_haenszel(strata)
    total = t.sum(axis=0).astype(int)
    return {
        "n_notes": len(rows),
        "before": _rate(int(total[2]), int(total[3])),
        "after": _rate(int(total[0]), int(total[1])),
        "p_value": None if math.isnan(test.p_value) else round(test.p_value, 6),
    }


def _effect(
    group: str, key: str, notes: Sequence[Any], tables: dict[int, list[int]]
) -> list[dict[str, Any]]:
    by: dict[str, list[list[int]]] = defaultdict(list)
    for note in notes:
        if note.id in tables:
            by[str(getattr(note, key) or "")].append(tables[note.id])
    return [{group: name, **effect_of(rows)} for name, rows in sorted(by.items())]


def stats(
    session: Session, *, actor: Actor, project: Project, window_days: int = WINDOW_DAYS
) -> dict[str, Any]:
    """``sent``, ``acknowledged``, ``ack_rate``, ``latency_hours`` (``finding_to_sent``,
    ``sent_to_ack``: ``median`` and ``p90``), ``effect`` per template and
    ``effect_by_sender`` (see the module doc)."""
    require(session, actor, Permission.FEEDBACK_SEND, project_id=project.id)
    # plain rows, not ORM objects (their items would be loaded too): ten thousand notes
    notes = session.execute(
        select(
            FeedbackNote.id,
            FeedbackNote.template,
            FeedbackNote.recipient_id,
            FeedbackNote.expected,
            FeedbackNote.found_at,
            FeedbackNote.sent_at,
            FeedbackNote.acknowledged_at,
            FeedbackNote.sent_by,
        ).where(FeedbackNote.project_id == project.id, FeedbackNote.status != DRAFT)
    ).all()
    acked = [n for n in notes if n.acknowledged_at is not None]
    found = [h for n in notes if (h := _hours(n.found_at, n.sent_at)) is not None]
    answered = [h for n in acked if (h := _hours(n.sent_at, n.acknowledged_at)) is not None]
    out: dict[str, Any] = {
        "sent": len(notes),
        "acknowledged": len(acked),
        "ack_rate": round(len(acked) / len(notes), 4) if notes else None,
        "latency_hours": {
            "finding_to_sent": _quantiles(found),
            "sent_to_ack": _quantiles(answered),
        },
        "window_days": window_days,
        "effect": [],
        "effect_by_sender": [],
    }
    reference = _reference(session, project) if notes else None
    if reference is not None:
        tables = _tables(reference, notes, window_days)
        out["effect"] = _effect("template", "template", notes, tables)
        out["effect_by_sender"] = _effect("sender", "sent_by", notes, tables)
    return out
