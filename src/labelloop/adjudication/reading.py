"""The project's annotations as the few columns detection needs, in one scan: item id,
annotator id, label (coded; the keys sorted in ``categories``) and whether the
annotator flagged it as uncertain. Plain driver tuples into numpy, chunk by chunk, so a
million annotations cost a few arrays, not a million objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Text, case, cast, select
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


def read_annotations(session: Session, project: Project, *, times: bool = False) -> Annotations:
    """The columns of the module doc (``times``: the submit times too)."""
    a = Annotation.__table__.c
    flagged = case((cast(a.flags, Text).like('%"uncertain"%'), 1), else_=0)
    extra = [sql_epoch(session, a.submitted_at)] if times else []
    stmt = select(a.item_id, a.annotator_id, cast(a.value, Text), flagged, *extra).where(
        project_filter(session, a, project.id)
    )
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
        empty = np.zeros(0, dtype=np.int64)
        none = np.zeros(0, dtype=np.float64) if times else None
        return Annotations(empty, empty, empty, [], np.zeros(0, dtype=bool), none)
    cols: list[npt.NDArray[Any]] = [np.concatenate(c) for c in zip(*parts, strict=True)]
    item, annotator, label, flag = cols[:4]
    submitted = cols[4].astype(np.float64) if times else None
    return Annotations(item, annotator, remap[label], categories, flag.astype(bool), submitted)
