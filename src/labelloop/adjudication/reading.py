"""The project's annotations as the few columns detection needs, in one scan: item id,
annotator id, label (coded; the keys sorted in ``categories``) and whether the
annotator flagged it as uncertain. Integers from the driver straight into numpy, chunk
by chunk, so a million annotations cost a few arrays, not a million objects."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import BigInteger, Text, case, cast, func, literal_column, select
from sqlalchemy.orm import Session

from labelloop.analytics.dashboard import stream_rows
from labelloop.audits.population import label_from_json_text, project_filter, sql_epoch
from labelloop.projects.models import Annotation, Project

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Annotations:
    item: IntArray
    annotator: IntArray
    label: IntArray  # index into ``categories``
    categories: list[str]
    flagged: npt.NDArray[np.bool_]  # flagged as uncertain by its annotator
    #: submit times in epoch seconds (NaN without one), read only when asked for
    submitted: npt.NDArray[np.float64] | None = None


#: Above this many distinct label texts the labels are coded in Python, not in SQL.
MAX_CODED = 256
#: Stands for "no submit time" in the integer column of milliseconds.
_NO_TIME = -(2**62)


def read_annotations(session: Session, project: Project, *, times: bool = False) -> Annotations:
    """The columns of the module doc (``times``: the submit times too).

    The few distinct label texts are read first and coded in SQL (a ``CASE``), and item,
    annotator and flag travel packed in one 64-bit integer (``item << 32 | annotator
    << 1 | flag``; ids are below 2^31), so every row is two or three integers that
    numpy takes in one pass, with no Python object per value. Projects with many
    distinct labels (free text) are coded in Python instead."""
    a = Annotation.__table__.c
    where = project_filter(session, a, project.id)
    texts = list(session.scalars(select(cast(a.value, Text)).where(where).distinct()))
    if not texts:
        return _empty(times)
    if len(texts) > MAX_CODED:
        return _read_coded_in_python(session, project, where, times)
    packed = (  # item << 32 | annotator << 1 | flag, as arithmetic both databases take
        cast(a.item_id, BigInteger) * literal_column("4294967296")
        + cast(a.annotator_id, BigInteger) * 2
        + _flagged(a)
    )
    known = [t for t in texts if t is not None]
    text = cast(a.value, Text)
    code = case(  # -1: a label first written after the texts were read (a new one)
        (text.is_(None), len(known)),
        else_=case({t: i for i, t in enumerate(known)}, value=text, else_=-1),
    )
    columns = [packed, code]
    if times:
        ms = cast(func.round(sql_epoch(session, a.submitted_at) * 1000.0), BigInteger)
        columns.append(func.coalesce(ms, _NO_TIME))
    width = len(columns)
    parts = [
        np.fromiter(chain.from_iterable(batch), np.int64, width * len(batch))
        for batch in stream_rows(session, select(*columns).where(where))
    ]
    flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    rows = flat.reshape(-1, width)
    if (rows[:, 1] < 0).any():  # a concurrent writer added a label: read it the long way
        return _read_coded_in_python(session, project, where, times)
    keys = [label_from_json_text(t) for t in [*known, None]]  # code len(known): null
    return _coded(rows[:, 0], rows[:, 1], keys, rows[:, 2] if times else None, times)


def _coded(
    packed: IntArray, raw: IntArray, keys: list[str], ms: IntArray | None, times: bool
) -> Annotations:
    """Unpack, and recode labels so that codes index the sorted distinct keys."""
    categories = sorted(set(keys[int(c)] for c in np.unique(raw))) if raw.size else []
    position = {k: i for i, k in enumerate(categories)}
    remap = np.asarray([position.get(k, 0) for k in keys], dtype=np.int64)
    submitted = None
    if times:
        assert ms is not None
        submitted = np.where(ms == _NO_TIME, np.nan, ms / 1000.0)
    return Annotations(
        packed >> 32,
        (packed >> 1) & 0x7FFFFFFF,
        remap[raw] if raw.size else raw,
        categories,
        (packed & 1).astype(bool),
        submitted,
    )


def _read_coded_in_python(
    session: Session, project: Project, where: Any, times: bool
) -> Annotations:
    """:func:`read_annotations` for projects with many distinct label texts."""
    a = Annotation.__table__.c
    extra = [sql_epoch(session, a.submitted_at)] if times else []
    stmt = select(a.item_id, a.annotator_id, cast(a.value, Text), _flagged(a), *extra).where(where)
    codes: dict[str | None, int] = {}
    parts: list[tuple[npt.NDArray[Any], ...]] = []
    for batch in stream_rows(session, stmt):
        items, annotators, texts, flags, *when = zip(*batch, strict=True)
        n = len(batch)
        parts.append(
            (
                np.fromiter(items, dtype=np.int64, count=n),
                np.fromiter(annotators, dtype=np.int64, count=n),
                np.fromiter((codes.setdefault(t, len(codes)) for t in texts), np.int64, n),
                np.fromiter(flags, dtype=np.int64, count=n),
                *(
                    np.fromiter((np.nan if v is None else v for v in col), np.float64, n)
                    for col in when
                ),
            )
        )
    keys = [label_from_json_text(text) for text in codes]  # by first-seen code
    categories = sorted(set(keys))
    position = {k: i for i, k in enumerate(categories)}
    remap = np.asarray([position[k] for k in keys], dtype=np.int64)
    if not parts:
        return _empty(times)
    cols: list[npt.NDArray[Any]] = [np.concatenate(c) for c in zip(*parts, strict=True)]
    item, annotator, label, flag = cols[:4]
    submitted = cols[4].astype(np.float64) if times else None
    return Annotations(item, annotator, remap[label], categories, flag.astype(bool), submitted)


def _flagged(a: Any) -> Any:
    """1 when the annotator flagged the annotation as uncertain, else 0 (SQL)."""
    return case((cast(a.flags, Text).like('%"uncertain"%'), 1), else_=0)


def _empty(times: bool) -> Annotations:
    empty = np.zeros(0, dtype=np.int64)
    none = np.zeros(0, dtype=np.float64) if times else None
    return Annotations(empty, empty, empty, [], np.zeros(0, dtype=bool), none)
