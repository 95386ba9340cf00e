"""Computing the lead dashboard of a project from its annotations, held as columns.

A project can hold millions of annotations, so they are read in chunks of
:data:`CHUNK` rows into a handful of numpy arrays (item, annotator, label code, submit
time, active seconds) and everything is computed on those arrays with
:mod:`labelloop.stats`; flagged annotations are counted per annotator in SQL:

* volume per day (by submit time, UTC) with throughput: annotations per active hour
  (the day's annotations over the sum of their active seconds) and active annotators;
* Krippendorff's alpha (nominal, on the canonical label key) per ISO week with an item
  bootstrap interval (weeks with fewer than :data:`MIN_PAIRABLE_ITEMS` items labelled
  twice are listed without a value);
* the audit error rate per closed cycle with its CI, and findings by error category;
* by guideline version (when annotations record one): alpha with its bootstrap CI and
  the audit error rate of reviewed units (Wilson CI), so a rule change shows its effect;
* turnaround: per item, the hours from its first submitted annotation to its second (the
  moment it can enter agreement and consensus), median and 90th percentile per ISO week
  of the second annotation;
* the annotator scorecard, with agreement against the Dawid–Skene consensus over items
  with two or more labels.

Annotations without a submit time count in the totals and the scorecard only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Float, Text, case, cast, func, select
from sqlalchemy.orm import Session

from labelloop.accounts.models import User
from labelloop.analytics.schemas import Chart, Overview, ScoreRow
from labelloop.audits import service as audits
from labelloop.audits.models import AuditAssignment, AuditReview, AuditRun, AuditUnit
from labelloop.audits.population import label_from_json_text, project_filter, sql_epoch
from labelloop.guidelines.schemas import version_order
from labelloop.projects.models import Annotation, GoldLabel, Project
from labelloop.stats import DawidSkene, Ratings, krippendorff_alpha
from labelloop.stats.sampling import wilson_interval

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

CHUNK = 100_000
BOOTSTRAP_RESAMPLES = 300
MIN_PAIRABLE_ITEMS = 5
EPOCH_DAY = date(1970, 1, 1)


@dataclass(frozen=True, eq=False)
class Columns:
    """A project's annotations up to ``max_id``, in id order; ``label`` codes index
    ``categories`` (the sorted canonical label keys)."""

    max_id: int  # the largest annotation id read (0 when none)
    item: IntArray
    annotator: IntArray
    label: IntArray
    categories: list[str]
    submitted: FloatArray  # epoch seconds, NaN without a submit time
    active: FloatArray  # active seconds, NaN when not recorded
    #: guideline version codes, indexing ``versions`` (the numbers, None for none)
    version: IntArray | None = None
    versions: list[str | None] | None = None
    #: annotation ids (read only when asked for: ``read_columns(..., ids=True)``)
    ids: IntArray | None = None

    def __len__(self) -> int:
        return int(self.item.shape[0])


def _epoch_seconds(session: Session, column: Any) -> Any:
    """SQL for a timestamp as float seconds since 1970 (a double on PostgreSQL, where
    ``extract`` alone returns numeric, which the driver turns into ``Decimal``)."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.extract("epoch", column), Float)
    return sql_epoch(session, column)


def stream_rows(session: Session, stmt: Any) -> Iterator[Sequence[Any]]:
    """The statement's rows as plain driver tuples, :data:`CHUNK` at a time, inside the
    session's transaction. PostgreSQL streams them from a server-side cursor; SQLite's
    cursor steps through the result as it is fetched."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        driver = conn.connection.driver_connection
        with driver.cursor(name=f"labelloop_dashboard_{id(stmt):x}") as cur:  # type: ignore[union-attr]
            cur.itersize = CHUNK
            cur.execute(compiled.string, compiled.params)
            while batch := cur.fetchmany(CHUNK):
                yield batch
        return
    result = conn.execute(stmt)
    try:
        assert result.cursor is not None
        while batch := result.cursor.fetchmany(CHUNK):
            yield batch
    finally:
        result.close()


def _floats(values: tuple[Any, ...]) -> FloatArray:
    return np.fromiter(
        (np.nan if v is None else v for v in values), dtype=np.float64, count=len(values)
    )


def read_columns(
    session: Session, project: Project, *, ids: bool = False, where: Any = None
) -> Columns:
    """Read the project's annotations chunk by chunk (bounded memory: the arrays plus one
    chunk of driver rows). ``ids`` reads the annotation ids too (``Columns.ids``);
    ``where`` is an extra SQL condition on the annotations table's columns."""
    a = Annotation.__table__.c
    where_project = project_filter(session, a, project.id)
    # everything up to the newest id now: rows added while reading wait for the next one
    max_id = int(session.scalar(select(func.max(a.id)).where(a.project_id == project.id)) or 0)
    stmt = (
        select(
            a.item_id,
            a.annotator_id,
            cast(a.value, Text),
            _epoch_seconds(session, a.submitted_at),
            a.active_seconds,
            a.guideline_version,
            *([a.id] if ids else []),
        )
        .where(where_project, a.id <= max_id, *([] if where is None else [where]))
        .order_by(a.id)
    )
    codes: dict[str | None, int] = {}
    version_codes: dict[str | None, int] = {}
    parts: list[tuple[Any, ...]] = []
    for batch in stream_rows(session, stmt):
        items, anns, texts, subs, acts, vers, *more = zip(*batch, strict=True)
        n = len(batch)
        parts.append(
            (
                np.fromiter(items, dtype=np.int64, count=n),
                np.fromiter(anns, dtype=np.int64, count=n),
                np.fromiter(
                    (codes.setdefault(t, len(codes)) for t in texts), dtype=np.int64, count=n
                ),
                _floats(subs),
                _floats(acts),
                np.fromiter(
                    (version_codes.setdefault(v, len(version_codes)) for v in vers),
                    dtype=np.int64,
                    count=n,
                ),
                *(np.fromiter(col, dtype=np.int64, count=n) for col in more),
            )
        )
    keys = [label_from_json_text(text) for text in codes]  # by code
    categories = sorted(set(keys))
    position = {k: i for i, k in enumerate(categories)}
    remap = np.asarray([position[k] for k in keys], dtype=np.int64)
    if not parts:
        empty_i = np.zeros(0, dtype=np.int64)
        empty_f = np.zeros(0, dtype=np.float64)
        return Columns(
            0, empty_i, empty_i, empty_i, [], empty_f, empty_f, ids=empty_i if ids else None
        )
    cols = [np.concatenate(c) for c in zip(*parts, strict=True)]
    return Columns(
        max_id=max_id,
        item=cols[0],
        annotator=cols[1],
        label=remap[cols[2]],
        categories=categories,
        submitted=cols[3],
        active=cols[4],
        version=cols[5],
        versions=list(version_codes),
        ids=cols[6] if ids else None,
    )


def flagged_per_annotator(session: Session, project: Project, max_id: int) -> dict[int, int]:
    """Annotations carrying validation warnings, per annotator, up to ``max_id``."""
    a = Annotation.__table__.c
    flags_text = func.coalesce(cast(a.flags, Text), "[]")
    flagged = func.sum(case((flags_text.in_(["[]", "null"]), 0), else_=1))
    return {
        int(ann): int(n or 0)
        for ann, n in session.execute(
            select(a.annotator_id, flagged)
            .where(project_filter(session, a, project.id), a.id <= max_id)
            .group_by(a.annotator_id)
        ).tuples()
    }


def compute(session: Session, project: Project) -> tuple[Overview, int]:
    """The project's dashboard and the largest annotation id it covers (0 when none)."""
    cols = read_columns(session, project)
    gold = {
        int(item): label_from_json_text(text)
        for item, text in session.execute(
            select(GoldLabel.item_id, cast(GoldLabel.value, Text)).where(
                GoldLabel.project_id == project.id
            )
        ).tuples()
    }
    ov = Overview(
        project=project,
        totals={
            "annotations": len(cols),
            "items": int(np.unique(cols.item).shape[0]),
            "annotators": int(np.unique(cols.annotator).shape[0]),
            "gold": len(gold),
        },
    )
    day = _days(cols.submitted)
    ov.charts.append(_volume(cols, day))
    ov.charts.append(_agreement(cols, day))
    ov.charts.append(_turnaround(cols, day))
    ov.charts.append(_audit_trend(session, project))
    ov.charts.append(_categories(session, project))
    by_version = _guideline_versions(session, project, cols)
    if by_version is not None:
        ov.charts.append(by_version)
    ov.scorecard = _scorecard(session, project, cols, gold)
    return ov, cols.max_id


# ----------------------------------------------------------------------------- helpers
def _days(epoch: FloatArray) -> IntArray:
    """Day number since 1970-01-01 (UTC) of each time; -1 for NaN. Rounded to the
    millisecond first, so a time at midnight is never put on the day before by the
    floating-point error of the database's epoch conversion."""
    out = np.full(epoch.shape[0], -1, dtype=np.int64)
    ok = ~np.isnan(epoch)
    out[ok] = np.floor(np.round(epoch[ok], 3) / 86400.0).astype(np.int64)
    return out


def _iso_week(day: int) -> str:
    year, week, _ = (EPOCH_DAY + timedelta(days=day)).isocalendar()
    return f"{year}-W{week:02d}"


def _week_codes(day: IntArray) -> tuple[IntArray, list[str]]:
    """Per row, the index of its ISO week in the sorted week labels (-1 without a day)."""
    udays, inverse = np.unique(day, return_inverse=True)
    week_of_day = [_iso_week(int(d)) if d >= 0 else "" for d in udays.tolist()]
    weeks = sorted({w for w in week_of_day if w})
    index = {w: i for i, w in enumerate(weeks)}
    code_of_day = np.asarray([index.get(w, -1) for w in week_of_day], dtype=np.int64)
    return code_of_day[inverse.reshape(-1)], weeks


def _groups(codes: IntArray, n: int) -> list[IntArray]:
    """Row indices of each code 0..n-1 (rows in their original order)."""
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(n + 1))
    return [order[bounds[i] : bounds[i + 1]] for i in range(n)]


def _fmt(v: float | None, pct: bool = False, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "–"
    return f"{v:.1%}" if pct else f"{v:.{digits}f}"


def _r(v: float | None, digits: int = 4) -> float | None:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return None
    return round(float(v), digits)


# ----------------------------------------------------------------------------- charts
def _volume(cols: Columns, day: IntArray) -> Chart:
    ok = day >= 0
    udays, inverse = np.unique(day[ok], return_inverse=True)
    inverse = inverse.reshape(-1)
    count = np.bincount(inverse, minlength=len(udays))
    seconds = np.bincount(inverse, weights=np.nan_to_num(cols.active[ok]), minlength=len(udays))
    uann, ann = np.unique(cols.annotator[ok], return_inverse=True)
    width = max(len(uann), 1)
    day_annotator = np.unique(inverse * width + ann.reshape(-1))
    active = np.bincount(day_annotator // width, minlength=len(udays))
    days = [(EPOCH_DAY + timedelta(days=int(d))).isoformat() for d in udays.tolist()]
    per_hour = [
        round(int(c) / (float(s) / 3600), 1) if s > 0 else None
        for c, s in zip(count.tolist(), seconds.tolist(), strict=True)
    ]
    return Chart(
        id="volume",
        title="Volume and throughput per day",
        kind="bar",
        labels=days,
        series=[
            {"name": "annotations", "data": count.tolist(), "axis": "y"},
            {
                "name": "annotations per active hour",
                "data": per_hour,
                "axis": "y2",
                "type": "line",
            },
        ],
        columns=["day", "annotations", "per active hour", "annotators active"],
        rows=[
            [d, str(c), "–" if p is None else f"{p:.1f}", str(n)]
            for d, c, p, n in zip(days, count.tolist(), per_hour, active.tolist(), strict=True)
        ],
        note="Per active hour: the day's annotations over the sum of their active seconds.",
    )


def _agreement(cols: Columns, day: IntArray) -> Chart:
    week, weeks = _week_codes(day)
    labels: list[str] = []
    values: list[float | None] = []
    lows: list[float | None] = []
    highs: list[float | None] = []
    table: list[list[str]] = []
    for name, rows in zip(weeks, _groups(week, len(weeks)), strict=True):
        items = cols.item[rows]
        _, per_item = np.unique(items, return_counts=True)
        if int((per_item >= 2).sum()) < MIN_PAIRABLE_ITEMS:
            table.append([name, "–", "–", str(len(rows)), "too few items with two labels"])
            continue
        ratings = Ratings.from_long(items, cols.annotator[rows], cols.label[rows])
        res = krippendorff_alpha(ratings, level="nominal", n_boot=BOOTSTRAP_RESAMPLES, seed=0)
        ci = res.ci or (None, None)
        labels.append(name)
        values.append(_r(res.value))
        lows.append(_r(ci[0]))
        highs.append(_r(ci[1]))
        table.append([name, _fmt(res.value), f"[{_fmt(ci[0])}, {_fmt(ci[1])}]", str(len(rows)), ""])
    return Chart(
        id="agreement",
        title="Agreement per week: Krippendorff's alpha (nominal) with 95% CI",
        kind="line",
        labels=labels,
        series=[{"name": "alpha", "data": values, "band": [lows, highs], "axis": "y"}],
        columns=["week", "alpha", "95% CI", "annotations", "note"],
        rows=table,
        note=f"Bootstrap over items ({BOOTSTRAP_RESAMPLES} resamples).",
    )


def _turnaround(cols: Columns, day: IntArray) -> Chart:
    ok = np.flatnonzero(day >= 0)
    order = ok[np.lexsort((cols.submitted[ok], cols.item[ok]))]
    item = cols.item[order]
    starts = np.flatnonzero(np.r_[True, item[1:] != item[:-1]]) if len(item) else ok[:0]
    sizes = np.diff(np.r_[starts, len(item)])
    first = starts[sizes >= 2]
    hours = (cols.submitted[order[first + 1]] - cols.submitted[order[first]]) / 3600.0
    week, weeks = _week_codes(day[order[first + 1]])
    labels: list[str] = []
    medians: list[float | None] = []
    p90s: list[float | None] = []
    table: list[list[str]] = []
    for name, rows in zip(weeks, _groups(week, len(weeks)), strict=True):
        h = hours[rows]
        med, p90 = (float(v) for v in np.percentile(h, [50, 90]))
        labels.append(name)
        medians.append(_r(med, 2))
        p90s.append(_r(p90, 2))
        table.append([name, str(len(rows)), f"{med:.2f}", f"{p90:.2f}"])
    return Chart(
        id="turnaround",
        title="Turnaround per week: hours from an item's first label to its second",
        kind="line",
        labels=labels,
        series=[
            {"name": "median hours", "data": medians, "axis": "y"},
            {"name": "90th percentile hours", "data": p90s, "axis": "y"},
        ],
        columns=["week", "items", "median hours", "90th percentile hours"],
        rows=table,
        note="Items counted in the week of their second submitted annotation.",
    )


def _audit_trend(session: Session, project: Project) -> Chart:
    labels: list[str] = []
    values: list[float | None] = []
    lows: list[float | None] = []
    highs: list[float | None] = []
    table: list[list[str]] = []
    for policy in audits.list_policies(session, project):
        for row in audits.trend(session, policy):
            er = row["error_rate"] or {}
            ci = er.get("ci") or [None, None]
            label = f"{policy.name} #{row['run']} ({row['window_end'][:10]})"
            labels.append(label)
            values.append(_r(er.get("value")))
            lows.append(_r(ci[0]))
            highs.append(_r(ci[1]))
            change = (row.get("change") or {}).get("error_rate") or {}
            table.append(
                [
                    label,
                    f"{row['sample']} / {row['population']}",
                    _fmt(er.get("value"), pct=True),
                    f"[{_fmt(ci[0], pct=True)}, {_fmt(ci[1], pct=True)}]",
                    "significant" if change.get("significant") else "",
                ]
            )
    return Chart(
        id="audit-trend",
        title="Audit error rate per closed cycle, with 95% CI",
        kind="line",
        labels=labels,
        series=[{"name": "error rate", "data": values, "band": [lows, highs], "axis": "y"}],
        columns=["cycle", "sample / population", "error rate", "95% CI", "change"],
        rows=table,
    )


def _first_reviews(project: Project, key: Any, *, closed_only: bool = False) -> Any:
    """(key, verdict) of the first reviews of the project's audit units with a verdict
    of correct or incorrect (double reviews measure the reviewers, not the work)."""
    stmt = (
        select(key, AuditReview.verdict)
        .join(AuditReview, AuditReview.unit_id == AuditUnit.id)
        .join(AuditRun, AuditRun.id == AuditUnit.run_id)
        .join(AuditAssignment, AuditAssignment.id == AuditReview.assignment_id)
        .where(
            AuditRun.project_id == project.id,
            AuditReview.verdict.in_(("correct", "incorrect")),
            AuditAssignment.double.is_(False),
        )
    )
    return stmt.where(AuditRun.status == "closed") if closed_only else stmt


def _tally(rows: Any, key: Any) -> dict[Any, list[int]]:
    """[incorrect, judged] per ``key(row key)``."""
    out: dict[Any, list[int]] = {}
    for k, verdict in rows:
        counts = out.setdefault(key(k), [0, 0])
        counts[0] += verdict == "incorrect"
        counts[1] += 1
    return out


def _audit_errors_by_version(session: Session, project: Project) -> dict[str | None, list[int]]:
    """[errors, judged] per guideline version over the first reviews of closed runs."""
    rows = session.execute(_first_reviews(project, AuditUnit.snapshot, closed_only=True))
    return _tally(rows.tuples(), lambda snapshot: (snapshot or {}).get("guideline_version"))


def _guideline_versions(session: Session, project: Project, cols: Columns) -> Chart | None:
    """Alpha and the audit error rate per guideline version the annotations were made
    under, with 95% intervals (None when no annotation records a version). Alpha:
    Krippendorff's nominal alpha over the items labelled twice under that version, item
    bootstrap. Error rate: reviewed units of every closed cycle pooled, unweighted, with
    a Wilson interval (the reports give the design-weighted estimate per cycle)."""
    if cols.version is None or not cols.versions or all(v is None for v in cols.versions):
        return None
    errors = _audit_errors_by_version(session, project)
    labels: list[str] = []
    series: dict[str, list[Any]] = {k: [] for k in ("a", "al", "ah", "e", "el", "eh")}
    table: list[list[str]] = []
    for code, version in sorted(enumerate(cols.versions), key=lambda cv: version_order(cv[1])):
        rows = np.flatnonzero(cols.version == code)
        name = version or "none"
        alpha = ci = None
        items = cols.item[rows]
        _, per_item = np.unique(items, return_counts=True)
        if int((per_item >= 2).sum()) >= MIN_PAIRABLE_ITEMS:
            ratings = Ratings.from_long(items, cols.annotator[rows], cols.label[rows])
            res = krippendorff_alpha(ratings, level="nominal", n_boot=BOOTSTRAP_RESAMPLES, seed=0)
            alpha, ci = res.value, res.ci or (None, None)
        k, n = errors.get(version, [0, 0])
        rate = wilson_interval(k / n, n, confidence=0.95) if n else None
        labels.append(name)
        for key, value in zip(
            ("a", "al", "ah", "e", "el", "eh"),
            (alpha, *(ci or (None, None)), *((k / n, *rate) if rate else (None, None, None))),
            strict=True,
        ):
            series[key].append(_r(value))
        table.append(
            [
                name,
                str(len(rows)),
                _fmt(alpha),
                f"[{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else "–",
                f"{k} / {n}" if n else "–",
                _fmt(k / n, pct=True) if n else "–",
                f"[{_fmt(rate[0], pct=True)}, {_fmt(rate[1], pct=True)}]" if rate else "–",
            ]
        )
    return Chart(
        id="guideline-versions",
        title="By guideline version: agreement and audit error rate, with 95% CI",
        kind="line",
        labels=labels,
        series=[
            {
                "name": "alpha",
                "data": series["a"],
                "band": [series["al"], series["ah"]],
                "axis": "y",
            },
            {
                "name": "audit error rate",
                "data": series["e"],
                "band": [series["el"], series["eh"]],
                "axis": "y",
            },
        ],
        columns=[
            "version",
            "annotations",
            "alpha",
            "95% CI",
            "errors / reviewed",
            "error rate",
            "95% CI",
        ],
        rows=table,
        note="Error rate: first reviews of every closed audit cycle pooled, unweighted "
        "(Wilson interval); the audit report gives design-weighted estimates per cycle.",
    )


def _categories(session: Session, project: Project) -> Chart:
    counts = (
        session.execute(
            select(AuditReview.error_category, func.count(AuditReview.id))
            .join(AuditRun, AuditRun.id == AuditReview.run_id)
            .join(AuditAssignment, AuditAssignment.id == AuditReview.assignment_id)
            .where(
                AuditRun.project_id == project.id,
                AuditReview.verdict == "incorrect",
                # second reviews measure reviewer agreement; reports count first ones
                AuditAssignment.double.is_(False),
            )
            .group_by(AuditReview.error_category)
            .order_by(func.count(AuditReview.id).desc(), AuditReview.error_category)
        )
        .tuples()
        .all()
    )
    total = sum(n for _, n in counts) or 1
    return Chart(
        id="categories",
        title="Audit findings by error category (all cycles)",
        kind="bar",
        labels=[c or "unclassified" for c, _ in counts],
        series=[{"name": "findings", "data": [n for _, n in counts], "axis": "y"}],
        columns=["category", "findings", "share"],
        rows=[[c or "unclassified", str(n), f"{n / total:.1%}"] for c, n in counts],
    )


# ----------------------------------------------------------------------------- scorecard
def _consensus(cols: Columns, uitems: IntArray, item_inverse: IntArray) -> IntArray:
    """Per distinct item, the Dawid–Skene consensus label code (-1 for items with fewer
    than two labels)."""
    n_items = len(uitems)
    per_item = np.bincount(item_inverse, minlength=n_items)
    multi = per_item[item_inverse] >= 2
    out = np.full(n_items, -1, dtype=np.int64)
    if not multi.any():
        return out
    ratings = Ratings.from_long(cols.item[multi], cols.annotator[multi], cols.label[multi])
    model = DawidSkene().fit(ratings)
    where = np.searchsorted(uitems, np.asarray(ratings.items.tolist(), dtype=np.int64))
    out[where] = np.asarray(model.labels_.tolist(), dtype=np.int64)
    return out


def _group_medians(values: FloatArray, group: IntArray, n: int) -> list[float | None]:
    """Median of ``values`` per group 0..n-1, NaNs left out (``None`` for empty groups)."""
    ok = ~np.isnan(values)
    v, g = values[ok], group[ok]
    order = np.lexsort((v, g))
    v = v[order]
    counts = np.bincount(g, minlength=n)
    starts = np.cumsum(counts) - counts
    out: list[float | None] = []
    for s, c in zip(starts.tolist(), counts.tolist(), strict=True):
        out.append(None if c == 0 else (float(v[s + (c - 1) // 2]) + float(v[s + c // 2])) / 2)
    return out


def _scorecard(
    session: Session, project: Project, cols: Columns, gold: dict[int, str]
) -> list[ScoreRow]:
    if not len(cols):
        return []
    uann, ann = np.unique(cols.annotator, return_inverse=True)
    ann = ann.reshape(-1)
    n_ann = len(uann)
    uitems, item_inverse = np.unique(cols.item, return_inverse=True)
    item_inverse = item_inverse.reshape(-1)

    position = {k: i for i, k in enumerate(cols.categories)}
    gold_items = np.asarray(sorted(gold), dtype=np.int64)
    gold_code = np.asarray([position.get(gold[i], -1) for i in gold_items.tolist()], np.int64)
    pos = np.minimum(np.searchsorted(gold_items, cols.item), max(len(gold_items) - 1, 0))
    on_gold = gold_items[pos] == cols.item if len(gold_items) else np.zeros(len(cols), dtype=bool)
    gold_right = on_gold & (gold_code[pos] == cols.label) if len(gold_items) else on_gold

    consensus = _consensus(cols, uitems, item_inverse)[item_inverse]
    on_cons = consensus >= 0
    cons_right = on_cons & (consensus == cols.label)

    def per(mask: BoolArray) -> list[int]:
        return [int(x) for x in np.bincount(ann, weights=mask, minlength=n_ann).tolist()]

    volume = np.bincount(ann, minlength=n_ann).tolist()
    gold_n, gold_ok = per(on_gold), per(gold_right)
    cons_n, cons_ok = per(on_cons), per(cons_right)
    flagged = flagged_per_annotator(session, project, cols.max_id)
    medians = _group_medians(cols.active, ann, n_ann)

    # annotator -> [incorrect, judged]
    audit = _tally(session.execute(_first_reviews(project, AuditUnit.annotator_id)).tuples(), int)
    ids = [int(a) for a in uann.tolist()]
    names = dict(
        session.execute(select(User.id, User.username).where(User.id.in_(ids))).tuples().all()
    )
    out = []
    for k, aid in enumerate(ids):
        inc, judged = audit.get(aid, [0, 0])
        out.append(
            ScoreRow(
                annotator=names.get(aid, f"user {aid}"),
                volume=int(volume[k]),
                gold_n=gold_n[k],
                gold_accuracy=gold_ok[k] / gold_n[k] if gold_n[k] else None,
                consensus_n=cons_n[k],
                consensus_agreement=cons_ok[k] / cons_n[k] if cons_n[k] else None,
                audit_n=judged,
                audit_error_rate=inc / judged if judged else None,
                median_active_seconds=medians[k],
                flags=flagged.get(aid, 0),
            )
        )
    out.sort(key=lambda s: s.annotator)
    return out
