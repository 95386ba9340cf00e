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
from labelloop.feedback.models import DRAFT, FeedbackNote
from labelloop.feedback.quality import project_reference
from labelloop.feedback.reference_cache import CACHE
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
class _Codes:
    """Dense codes 0..n-1 of non-negative integer keys: a lookup table when the keys
    are small (user ids are; no sort), else the sorted distinct keys."""

    table: IntArray  # key -> code (-1: absent), or the sorted distinct keys
    direct: bool

    @classmethod
    def of(cls, keys: IntArray) -> tuple[_Codes, IntArray]:
        top = int(keys.max()) if keys.size else 0
        if top < 4 * keys.size + 1024:
            seen = np.zeros(top + 1, dtype=bool)
            seen[keys] = True
            table = np.full(top + 1, -1, dtype=np.int64)
            table[seen] = np.arange(int(seen.sum()), dtype=np.int64)
            return cls(table, True), table[keys]
        distinct, inverse = np.unique(keys, return_inverse=True)
        return cls(distinct, False), inverse.astype(np.int64)

    def encode(self, keys: IntArray) -> IntArray:
        """Codes of ``keys`` (-1 for keys never seen)."""
        if self.direct:
            inside = (keys >= 0) & (keys < self.table.size)
            return np.where(inside, self.table[np.where(inside, keys, 0)], -1)
        at = np.minimum(np.searchsorted(self.table, keys), max(self.table.size - 1, 0))
        found = self.table[at] == keys if self.table.size else np.zeros(keys.size, bool)
        return np.where(found, at, -1)


@dataclass(frozen=True)
class _Index:
    """Annotations sorted by (group, submit time) with the cumulative count of errors,
    so the errors of one group within a time window are two binary searches. Group and
    time share one integer, ``group_code << bits | time``: groups are dense codes
    (:class:`_Codes`), times are milliseconds after the earliest (0: no submit time)."""

    groups: _Codes
    bits: int
    packed: IntArray  # sorted
    cum: IntArray  # errors before position i of ``packed``

    @classmethod
    def build(cls, group: IntArray, offset: IntArray, bits: int, wrong: IntArray) -> _Index:
        groups, codes = _Codes.of(group)
        if (int(codes.max(initial=0)) + 1) << bits >= 2**63:  # a million groups over a century
            raise ValueError(f"{int(codes.max()) + 1} groups over {bits} bits of time do not pack")
        packed = (codes << bits) | offset
        order = np.argsort(packed)  # ties share group and time: any order counts the same
        return cls(groups, bits, packed[order], np.concatenate([[0], np.cumsum(wrong[order])]))

    def counts(self, group: IntArray, lo: IntArray, hi: IntArray) -> tuple[IntArray, IntArray]:
        """(errors, n) per query: annotations of ``group`` whose time offset lies in
        ``[lo, hi)``; zero for groups without annotations."""
        code = self.groups.encode(group)
        known = code >= 0
        base = np.where(known, code, 0) << self.bits
        a = np.searchsorted(self.packed, base | lo, "left")
        b = np.searchsorted(self.packed, base | hi, "left")
        return np.where(known, self.cum[b] - self.cum[a], 0), np.where(known, b - a, 0)


@dataclass(frozen=True)
class _Errors:
    """The project's errors indexed by (annotator, reference label) and by annotator."""

    by_class: _Index  # group: annotator * (K + 1) + reference code
    by_person: _Index  # group: annotator
    first_ms: int  # the earliest submit time, in ms since 1970 (offset 1)
    last_offset: int
    k: int
    categories: list[str]

    def offsets(self, seconds: npt.NDArray[np.float64], after: bool) -> IntArray:
        """Offsets of the first annotation time at or after ``seconds`` (``after``:
        strictly after), clipped to the times held (offset 0, no time, never counts)."""
        ms = seconds * 1000.0
        first = np.floor(ms) + 1 if after else np.ceil(ms)
        offsets: IntArray = np.clip(
            first.astype(np.int64) - self.first_ms + 1, 1, self.last_offset + 1
        )
        return offsets


def _reference(session: Session, project: Project) -> _Errors | None:
    """The error index of the project, from the annotations with their reference
    labels as My quality keeps them between calls
    (:mod:`labelloop.feedback.reference_cache`)."""
    cols = CACHE.cached(session, project, project_reference)
    if not len(cols.annotator):
        return None
    ref = cols.ref
    k = len(cols.categories)
    timed = ~np.isnan(cols.submitted)
    ms = np.where(timed, np.round(np.nan_to_num(cols.submitted) * 1000.0), 0).astype(np.int64)
    first = int(ms[timed].min()) if timed.any() else 0
    offset = np.where(timed, ms - first + 1, 0)
    last = int(offset.max())
    by_class = cols.annotator * (k + 1) + ref
    bits = (last + 1).bit_length()
    wrong = (cols.label != ref).astype(np.int64)
    return _Errors(
        _Index.build(by_class, offset, bits, wrong),
        _Index.build(cols.annotator, offset, bits, wrong),
        first,
        last,
        k,
        list(cols.categories),
    )


def _tables(errors: _Errors, notes: Sequence[Any], days: int) -> dict[int, list[int]]:
    """Per note: [errors after, n after, errors before, n before] (after: the ``days``
    after it was sent, the moment itself excluded; before: the ``days`` before it), to
    the millisecond."""
    code = {c: i for i, c in enumerate(errors.categories)}
    by_class = [n for n in notes if n.expected is not None and n.expected in code]
    overall = [n for n in notes if n.expected is None]
    span = days * 86400.0
    out: dict[int, list[int]] = {}
    for index, chosen, group in (
        (
            errors.by_class,
            by_class,
            [n.recipient_id * (errors.k + 1) + code[n.expected] for n in by_class],
        ),
        (errors.by_person, overall, [n.recipient_id for n in overall]),
    ):
        if not chosen:
            continue
        g = np.asarray(group, dtype=np.int64)
        t0 = np.asarray([n.sent_at.timestamp() for n in chosen], dtype=np.float64)
        after = index.counts(
            g, errors.offsets(t0, after=True), errors.offsets(t0 + span, after=False)
        )
        before = index.counts(
            g, errors.offsets(t0 - span, after=False), errors.offsets(t0, after=False)
        )
        for i in np.flatnonzero((after[1] > 0) & (before[1] > 0)).tolist():
            out[chosen[i].id] = [
                int(after[0][i]),
                int(after[1][i]),
                int(before[0][i]),
                int(before[1][i]),
            ]
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
