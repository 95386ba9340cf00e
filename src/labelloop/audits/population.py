"""The annotations an audit run is drawn from, held as columns.

A window can hold a million annotations, so the population is a handful of numpy arrays
(ids, item, annotator, label text, source, submission time in epoch seconds) plus one
entry per item for its segments and tags, rather than a Python object per annotation.
Everything a run needs from the whole population (filters, strata, the sample, the
agreement and fatigue figures of the report) is computed on these columns.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Float, Text, case, cast, func, null, select, type_coerce
from sqlalchemy.orm import Session

from labelloop.accounts.models import User
from labelloop.audits.schemas import PolicySpec
from labelloop.projects.models import Annotation, Item, Prediction, Project

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
ObjArray = npt.NDArray[np.object_]

MODEL_UNSURE_BELOW = 0.6


def label_key(value: Any) -> str:
    """A label value as text: the label itself for single labels, JSON otherwise."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def label_from_json_text(text: str | None) -> str:
    """:func:`label_key` of a stored JSON value, from its text (fast path for plain labels)."""
    if text is None:
        return "null"
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"' and "\\" not in text:
        return text[1:-1]
    return label_key(json.loads(text))


def sql_epoch(session: Session, column: Any) -> Any:
    """SQL for a timestamp column as float seconds since 1970 (NULL stays NULL)."""
    if session.get_bind().dialect.name == "sqlite":
        return type_coerce((func.julianday(column) - 2440587.5) * 86400.0, Float)
    return type_coerce(func.extract("epoch", column), Float)


def to_epoch(moment: datetime) -> float:
    return moment.astimezone(UTC).timestamp()


@dataclass(frozen=True, eq=False)
class Population:
    """Columns of the window's annotations, in annotation-id order."""

    annotation_id: IntArray
    item_id: IntArray
    annotator_id: IntArray
    label: ObjArray
    source: ObjArray
    submitted: FloatArray  # epoch seconds; NaN when the annotation has no submit time
    _facts: dict[str, Any]  # per item id: "segments" and "tags", read on first use
    _session: Session | None = None
    #: the guideline version each annotation was made under (None: unknown or none)
    guideline_version: ObjArray | None = None

    def _load_facts(self) -> None:
        if not self._facts.get("complete"):
            self.facts_for(np.unique(self.item_id).tolist())
            self._facts["complete"] = True

    def facts_for(self, item_ids: Sequence[int]) -> None:
        """Read segments and tags of the given items (those not read yet)."""
        segs = self._facts.setdefault("segments", {})
        tags = self._facts.setdefault("tags", {})
        missing = [i for i in item_ids if i not in segs]
        if missing and self._session is not None:
            new_segs, new_tags = _item_facts(self._session, missing)
            segs.update(new_segs)
            tags.update(new_tags)

    def segments_of(self, item_id: int) -> dict[str, Any]:
        self.facts_for([item_id])
        out: dict[str, Any] = self._facts["segments"].get(item_id, {})
        return out

    def tags_of(self, item_id: int) -> tuple[str, ...]:
        self.facts_for([item_id])
        out: tuple[str, ...] = self._facts["tags"].get(item_id, ())
        return out

    @property
    def segments(self) -> dict[int, dict[str, Any]]:
        """Segments per item id (read from the items on first use)."""
        self._load_facts()
        out: dict[int, dict[str, Any]] = self._facts["segments"]
        return out

    @property
    def tags(self) -> dict[int, tuple[str, ...]]:
        """Sorted tags per item id (read from the items on first use)."""
        self._load_facts()
        out: dict[int, tuple[str, ...]] = self._facts["tags"]
        return out

    def __len__(self) -> int:
        return int(self.annotation_id.shape[0])

    def take(self, mask: npt.NDArray[np.bool_]) -> Population:
        return Population(
            self.annotation_id[mask],
            self.item_id[mask],
            self.annotator_id[mask],
            self.label[mask],
            self.source[mask],
            self.submitted[mask],
            self._facts,
            self._session,
            None if self.guideline_version is None else self.guideline_version[mask],
        )

    def item_values(self, fn: Any) -> ObjArray:
        """A per-annotation array of ``fn(item_id)``, computed once per distinct item."""
        items, inverse = np.unique(self.item_id, return_inverse=True)
        per_item = np.empty(items.shape[0], dtype=object)
        per_item[:] = [fn(int(i)) for i in items.tolist()]
        out: ObjArray = per_item[inverse.reshape(-1)]
        return out


def _item_facts(
    session: Session, item_ids: Sequence[int]
) -> tuple[dict[int, dict[str, Any]], dict[int, tuple[str, ...]]]:
    segments: dict[int, dict[str, Any]] = {}
    tags: dict[int, tuple[str, ...]] = {}
    ids = sorted(set(item_ids))
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        for iid, segs, item_tags in session.execute(
            select(Item.id, Item.segments, Item.tags).where(Item.id.in_(chunk))
        ):
            segments[iid] = segs or {}
            tags[iid] = tuple(sorted(item_tags or ()))
    return segments, tags


def project_filter(session: Session, a: Any, project_id: int) -> Any:
    """``project_id = :id``; on SQLite, written so the planner scans the table in id order
    when the project holds a large share of all annotations (much faster there than
    walking the project index and sorting by id)."""
    if session.get_bind().dialect.name == "sqlite":
        n_project = session.scalar(select(func.count()).where(a.project_id == project_id)) or 0
        n_all = session.scalar(select(func.count()).select_from(Annotation.__table__)) or 0
        if n_project * 5 >= n_all:
            return (a.project_id + 0) == project_id
    return a.project_id == project_id


def tagged_items(session: Session, project: Project, tag: str) -> set[int]:
    """Ids of the project's items carrying ``tag`` (read as JSON text, no parsing)."""
    i = Item.__table__.c
    needle = json.dumps(tag)
    result = session.connection().execute(
        select(i.id, cast(i.tags, Text)).where(i.project_id == project.id)
    )
    rows = result.cursor.fetchall() if result.cursor is not None else result.all()
    result.close()
    return {int(item_id) for item_id, text in rows if text and needle in text}


def items_created_before(session: Session, project: Project, when: datetime) -> set[int]:
    """Ids of the project's items that existed before ``when``: created then in the
    source tool (``meta["created_at"]``, kept by imports) or, lacking that, stored then.

    Items without a source time are filtered in SQL; only the others are parsed.
    """
    source_time = Item.meta["created_at"].as_string()
    mine = Item.project_id == project.id
    ids = set(
        session.scalars(select(Item.id).where(mine, source_time.is_(None), Item.created_at < when))
    )
    for item_id, text, stored in session.execute(
        select(Item.id, source_time, Item.created_at).where(mine, source_time.is_not(None))
    ):
        if item_born(text, stored) < when:
            ids.add(item_id)
    return ids


def item_born(source_time: Any, stored_at: datetime) -> datetime:
    """When an item came to be: its creation time in the source tool (``meta
    ["created_at"]``, kept by imports) when that parses, else when it was stored."""
    return parse_time(source_time) or stored_at


def parse_time(value: Any) -> datetime | None:
    """A datetime from a datetime or an ISO 8601 string (naive means UTC), else None."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def load_population(
    session: Session,
    project: Project,
    spec: PolicySpec,
    start: datetime,
    end: datetime,
    *,
    labels: bool = True,
    times: bool = True,
) -> Population:
    """Annotations submitted (or, lacking a submit time, created) in ``[start, end)`` that
    pass the policy's filter. ``labels=False`` / ``times=False`` skip reading the label
    and submit-time columns when the caller does not use them (opening a run with
    strata that need neither)."""
    labels = labels or bool(spec.population.labels)
    a = Annotation.__table__.c  # Core columns: no ORM row machinery for a million rows
    when = func.coalesce(a.submitted_at, a.created_at)
    stmt = (
        select(
            a.id,
            a.item_id,
            a.annotator_id,
            cast(a.value, Text) if labels else null(),
            a.source,
            sql_epoch(session, a.submitted_at) if times else null(),
            a.guideline_version,
        )
        .where(project_filter(session, a, project.id), when >= start, when < end)
        .order_by(a.id)
    )
    flt = spec.population
    if flt.sources:
        stmt = stmt.where(a.source.in_(flt.sources))
    if flt.annotators:
        ids = session.scalars(select(User.id).where(User.username.in_(flt.annotators))).all()
        stmt = stmt.where(a.annotator_id.in_(ids))
    result = session.connection().execute(stmt)
    # plain ints, text and floats: read the driver's tuples directly (a million rows)
    raw = result.cursor.fetchall() if result.cursor is not None else result.all()
    result.close()
    if not raw:
        empty_i = np.zeros(0, dtype=np.int64)
        empty_o = np.zeros(0, dtype=object)
        return Population(
            empty_i, empty_i, empty_i, empty_o, empty_o, np.zeros(0), {"segments": {}, "tags": {}}
        )
    aid, iid, ann, value_text, source, submitted, version = zip(*raw, strict=True)
    label_col = np.empty(len(raw), dtype=object)
    label_col[:] = [label_from_json_text(t) for t in value_text] if labels else ""
    sources = np.empty(len(raw), dtype=object)
    sources[:] = source
    versions = np.empty(len(raw), dtype=object)
    versions[:] = version
    pop = Population(
        np.asarray(aid, dtype=np.int64),
        np.asarray(iid, dtype=np.int64),
        np.asarray(ann, dtype=np.int64),
        label_col,
        sources,
        np.asarray([np.nan if s is None else s for s in submitted], dtype=np.float64)
        if times
        else np.full(len(raw), np.nan),
        {},
        session,
        versions,
    )
    mask = np.ones(len(pop), dtype=bool)
    if flt.segments:
        wanted = {k: {str(v) for v in vals} for k, vals in flt.segments.items()}

        def seg_ok(item: int) -> bool:
            segs = pop.segments.get(item, {})
            return all(str(segs.get(k)) in vals for k, vals in wanted.items())

        mask &= pop.item_values(seg_ok).astype(bool)
    if flt.tags:
        tag_set = set(flt.tags)
        mask &= pop.item_values(
            lambda item: bool(tag_set.intersection(pop.tags.get(item, ())))
        ).astype(bool)
    if flt.labels:
        label_set = set(flt.labels)

        def label_ok(text: str) -> bool:
            if text.startswith("["):
                parsed = json.loads(text)
                if isinstance(parsed, list):
                    return bool(label_set.intersection(str(v) for v in parsed))
            return text in label_set

        uniq, inverse = np.unique(pop.label.astype(str), return_inverse=True)
        ok = np.asarray([label_ok(str(u)) for u in uniq.tolist()], dtype=bool)
        mask &= ok[inverse.reshape(-1)]
    return pop if mask.all() else pop.take(mask)


# ----------------------------------------------------------------------------- strata
def model_buckets(session: Session, pop: Population) -> ObjArray:
    """Per annotation: does the newest model prediction for its item disagree with it?"""
    item_ids = np.unique(pop.item_id).tolist()
    preds: dict[int, tuple[str, float | None]] = {}
    for start in range(0, len(item_ids), 5000):
        chunk = item_ids[start : start + 5000]
        for p in session.execute(
            select(Prediction.item_id, Prediction.value, Prediction.probabilities, Prediction.score)
            .where(Prediction.item_id.in_(chunk))
            .order_by(Prediction.created_at, Prediction.id)
        ):
            conf = p.score
            if p.probabilities:
                conf = max(float(v) for v in p.probabilities.values())
            preds[p.item_id] = (label_key(p.value), conf)
    predicted = pop.item_values(lambda item: preds.get(item))
    out = np.empty(len(pop), dtype=object)
    for i, (pred, given) in enumerate(zip(predicted.tolist(), pop.label.tolist(), strict=True)):
        if pred is None:
            out[i] = "no prediction"
        elif pred[0] != given:
            out[i] = "model disagrees"
        elif pred[1] is not None and pred[1] < MODEL_UNSURE_BELOW:
            out[i] = "model unsure"
        else:
            out[i] = "model agrees"
    return out


def new_annotator_flags(
    session: Session, project: Project, spec: PolicySpec, pop: Population, start: datetime
) -> ObjArray:
    """``new`` when the annotation is among its annotator's first ``new_annotator_items``
    in the project, or within ``new_annotator_days`` of their first one; else
    ``established``."""
    when = func.coalesce(Annotation.submitted_at, Annotation.created_at)
    first: dict[int, float] = {}
    before: dict[int, int] = {}
    for aid, first_at, n_before in session.execute(
        select(
            Annotation.annotator_id,
            sql_epoch(session, func.min(when)),
            func.sum(case((when < start, 1), else_=0)),
        )
        .where(Annotation.project_id == project.id)
        .group_by(Annotation.annotator_id)
    ):
        first[aid] = float(first_at) if first_at is not None else np.nan
        before[aid] = int(n_before or 0)
    t = np.where(np.isnan(pop.submitted), to_epoch(start), pop.submitted)
    order = np.lexsort((pop.annotation_id, t, pop.annotator_id))
    ann_sorted = pop.annotator_id[order]
    starts = np.r_[0, np.flatnonzero(np.diff(ann_sorted)) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    rank_sorted = np.arange(len(order)) - run_start
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = rank_sorted
    prior = np.asarray([before.get(int(a), 0) for a in pop.annotator_id.tolist()], dtype=np.int64)
    first_t = np.asarray(
        [first.get(int(a), np.nan) for a in pop.annotator_id.tolist()], dtype=np.float64
    )
    horizon = spec.new_annotator_days * 86400.0
    recent = (pop.submitted - first_t) < horizon  # NaN compares False
    new = (rank + prior < spec.new_annotator_items) | recent
    return np.where(new, "new", "established").astype(object)


def _as_codes(values: ObjArray) -> tuple[IntArray, list[str]]:
    uniq, inverse = np.unique(values.astype(str), return_inverse=True)
    return inverse.reshape(-1).astype(np.int64), [str(u) for u in uniq.tolist()]


def _item_codes(pop: Population, fn: Any) -> tuple[IntArray, list[str]]:
    """Codes of a per-item value (computed once per distinct item, not per annotation)."""
    items, inverse = np.unique(pop.item_id, return_inverse=True)
    per_item = np.empty(items.shape[0], dtype=object)
    per_item[:] = [fn(int(i)) for i in items.tolist()]
    item_code, names = _as_codes(per_item)
    return item_code[inverse.reshape(-1)], names


def stratum_codes(
    session: Session, project: Project, spec: PolicySpec, pop: Population, start: datetime
) -> tuple[IntArray, list[str]]:
    """The stratum of every annotation as an integer code, and the stratum names (its value
    on each policy dimension, joined with `` | ``), sorted."""
    n = len(pop)
    if not spec.strata:
        return np.zeros(n, dtype=np.int64), ["all"]
    dims: list[tuple[IntArray, list[str]]] = []
    for dim in spec.strata:
        if dim.startswith("segment:"):
            key = dim.split(":", 1)[1]
            dims.append(
                _item_codes(
                    pop, lambda item, k=key: f"{k}={pop.segments.get(item, {}).get(k, '(none)')}"
                )
            )
        elif dim == "annotator":
            uniq, inverse = np.unique(pop.annotator_id, return_inverse=True)
            names = dict(
                session.execute(select(User.id, User.username).where(User.id.in_(uniq.tolist())))
                .tuples()
                .all()
            )
            per = np.asarray(
                [f"annotator={names.get(int(a), a)}" for a in uniq.tolist()], dtype=object
            )
            code_of_id, labels = _as_codes(per)
            dims.append((code_of_id[inverse.reshape(-1)], labels))
        elif dim == "label":
            codes, labels = _as_codes(pop.label)
            dims.append((codes, ["label=" + lab for lab in labels]))
        elif dim == "tag":
            dims.append(
                _item_codes(
                    pop, lambda item: "tag=" + ("+".join(pop.tags.get(item, ())) or "untagged")
                )
            )
        elif dim == "new_annotator":
            codes, labels = _as_codes(new_annotator_flags(session, project, spec, pop, start))
            dims.append((codes, ["annotator is " + lab for lab in labels]))
        elif dim == "model_disagreement":
            dims.append(_as_codes(model_buckets(session, pop)))
    combined = np.zeros(n, dtype=np.int64)
    for codes, labels in dims:
        combined = combined * len(labels) + codes
    keys, inverse = np.unique(combined, return_inverse=True)
    names_out: list[str] = []
    for code in keys.tolist():
        parts = []
        for _, labels in reversed(dims):
            parts.append(labels[code % len(labels)])
            code //= len(labels)
        names_out.append(_fit(" | ".join(reversed(parts))))
    # keys are in combined-code order, which is the lexicographic order of the parts
    return inverse.reshape(-1).astype(np.int64), names_out


#: The longest stratum name stored (``AuditUnit.stratum``).
MAX_STRATUM = 300


def _fit(name: str) -> str:
    """A stratum name that fits its column: a long one (many tags, long segment values)
    is cut and ends with a digest of the whole name, so distinct strata stay distinct."""
    if len(name) <= MAX_STRATUM:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]
    return f"{name[: MAX_STRATUM - 18]}… {digest}"


# ---------------------------------------------------------------------------- sessions
SESSION_GAP = timedelta(minutes=30)
LATE_IN_SESSION = timedelta(minutes=30)
LONG_SESSION = timedelta(minutes=45)


def lateness(pop: Population) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Per annotation: (its session is long, it is late in its session).

    A session is a run of one annotator's annotations with gaps under ``SESSION_GAP``;
    late means at least ``LATE_IN_SESSION`` after the session's first annotation and long
    means the session spans at least ``LONG_SESSION``. Annotations without a submit time
    are in no session (both False)."""
    n = len(pop)
    long_out = np.zeros(n, dtype=bool)
    late_out = np.zeros(n, dtype=bool)
    has_t = ~np.isnan(pop.submitted)
    idx = np.flatnonzero(has_t)
    if idx.size == 0:
        return long_out, late_out
    t = pop.submitted[idx]
    a = pop.annotator_id[idx]
    order = np.lexsort((t, a))
    t, a, idx = t[order], a[order], idx[order]
    new_session = np.r_[True, (a[1:] != a[:-1]) | (np.diff(t) > SESSION_GAP.total_seconds())]
    session_id = np.cumsum(new_session) - 1
    first = t[new_session][session_id]
    last_of = np.maximum.reduceat(t, np.flatnonzero(new_session))
    span = last_of[session_id] - first
    long_out[idx] = span >= LONG_SESSION.total_seconds()
    late_out[idx] = (t - first) >= LATE_IN_SESSION.total_seconds()
    return long_out, late_out
