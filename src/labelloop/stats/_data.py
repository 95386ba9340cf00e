"""The long-form data contract shared by every statistic.

Every method in :mod:`labelloop.stats` takes a :class:`Ratings`: one row per rating
(item, annotator, label, optional weight). Missing ratings are simply absent rows.
Items, annotators and categories are coded as dense integers once, here, so the
estimators work on ``numpy`` integer arrays and never on Python objects.

Labels keep their values as written: for ``nominal`` and ``ordinal`` levels the
category order is the declared ``categories`` (or the sorted distinct values); for
``interval`` and ``ratio`` levels labels are parsed as numbers and ``values`` holds
them as ``float64``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt

Level = Literal["nominal", "ordinal", "interval", "ratio"]
LEVELS: tuple[Level, ...] = ("nominal", "ordinal", "interval", "ratio")

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def _is_nan(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _encode(values: Sequence[Hashable] | npt.NDArray[Any]) -> tuple[npt.NDArray[Any], IntArray]:
    """Dense integer codes in order of first appearance-independent sorted uniques."""
    arr = np.asarray(values, dtype=object)
    try:
        uniques, codes = np.unique(arr, return_inverse=True)
    except TypeError:  # unorderable mix (e.g. int and str ids): order by repr, stable
        mapping: dict[Hashable, int] = {}
        for v in arr.tolist():
            mapping.setdefault(v, len(mapping))
        order = sorted(mapping, key=repr)
        remap = {v: i for i, v in enumerate(order)}
        codes = np.fromiter((remap[v] for v in arr.tolist()), dtype=np.int64, count=len(arr))
        uniques = np.empty(len(order), dtype=object)
        uniques[:] = order
    return uniques, codes.astype(np.int64, copy=False).reshape(-1)


def _fast_kind(arr: object) -> str | None:
    """``"number"``/``"str"`` for plain numpy arrays that can be coded without Python objects."""
    if not isinstance(arr, np.ndarray) or arr.ndim != 1:
        return None
    if arr.dtype.kind in "iuf":
        return "number"
    if arr.dtype.kind in "US":
        return "str"
    return None


def _encode_fast(arr: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], IntArray]:
    """Sorted uniques (as Python scalars in an object array) and dense codes, vectorised.

    Small-range integers are coded in O(n) with a presence table instead of a sort.
    """
    n = len(arr)
    if arr.dtype.kind in "iu" and n:
        lo, hi = int(arr.min()), int(arr.max())
        if hi - lo <= 4 * n + 1024:
            shifted = arr.astype(np.int64, copy=False) if lo == 0 else (arr - lo).astype(np.int64)
            present = np.bincount(shifted, minlength=hi - lo + 1) > 0
            uniques_num = np.flatnonzero(present) + lo
            out = np.empty(len(uniques_num), dtype=object)
            out[:] = uniques_num.tolist()
            if present.all():  # values are exactly lo..hi: the shifted values are the codes
                return out, shifted
            lookup = np.cumsum(present, dtype=np.int64) - 1
            return out, lookup[shifted]
    uniques, codes = np.unique(arr, return_inverse=True)
    out = np.empty(len(uniques), dtype=object)
    out[:] = uniques.tolist()
    return out, codes.astype(np.int64, copy=False).reshape(-1)


def _label_kind(value: object) -> str:
    if isinstance(value, bool | np.bool_):
        return "bool"
    if isinstance(value, int | float | np.integer | np.floating):
        return "number"
    if isinstance(value, str):
        return "str"
    return type(value).__name__


def _encode_labels(
    labels: npt.NDArray[Any], categories: Sequence[Any] | None, level: Level
) -> tuple[npt.NDArray[Any], IntArray, FloatArray | None]:
    """Categories, label codes and category values of a numeric or string numpy array."""
    n = len(labels)
    kind = _fast_kind(labels)
    if labels.dtype.kind == "f" and n:
        bad = np.flatnonzero(np.isnan(labels))
        if len(bad):
            raise ValueError(
                f"row {int(bad[0])}: label is missing (NaN or None); drop missing ratings instead"
            )
    if level in ("interval", "ratio") and kind != "number":
        try:
            labels = labels.astype(np.float64)
        except ValueError as exc:
            raise ValueError(f"{level} level needs numeric labels: {exc}") from None
        kind = "number"
    if categories is None:
        cat_arr, label_codes = _encode_fast(labels)
    else:
        cats = list(categories)
        if len(set(cats)) != len(cats):
            raise ValueError("categories contain duplicates")
        cat_arr = np.empty(len(cats), dtype=object)
        cat_arr[:] = cats
        uniq, inverse = _encode_fast(labels)
        index = {c: i for i, c in enumerate(cats)}
        try:
            remap = np.fromiter((index[v] for v in uniq.tolist()), dtype=np.int64, count=len(uniq))
        except KeyError as exc:
            raise ValueError(
                f"label {exc.args[0]!r} is not among the declared categories"
            ) from None
        label_codes = remap[inverse]
    values: FloatArray | None = None
    cat_list = cat_arr.tolist()
    if categories is None and kind == "number" and len(cat_list):
        values = np.asarray(cat_list, dtype=np.float64)  # uniques of a numeric array
    elif cat_list and all(_label_kind(c) == "number" for c in cat_list):
        values = np.asarray(cat_list, dtype=np.float64)
        if np.isnan(values).any():
            raise ValueError("categories contain NaN")
    elif level in ("interval", "ratio"):
        raise ValueError(f"{level} level needs numeric categories")
    return cat_arr, label_codes, values


@dataclass(frozen=True, eq=False)
class Ratings:
    """Long-form ratings coded as integers.

    Attributes:
        item: item code per rating, in ``0..n_items-1`` (index into ``items``).
        annotator: annotator code per rating (index into ``annotators``).
        label: category code per rating (index into ``categories``).
        items: original item ids, sorted.
        annotators: original annotator ids, sorted.
        categories: category values in their declared order.
        level: level of measurement.
        weight: per-rating weight (ones when not given).
        values: numeric value per category (``float64``) for ordinal-with-numbers,
            interval and ratio levels; ``None`` when categories are not numbers.
    """

    item: IntArray
    annotator: IntArray
    label: IntArray
    items: npt.NDArray[Any]
    annotators: npt.NDArray[Any]
    categories: npt.NDArray[Any]
    level: Level = "nominal"
    weight: FloatArray = field(default_factory=lambda: np.ones(0))
    values: FloatArray | None = None

    # ---------------------------------------------------------------- builders
    @classmethod
    def from_long(
        cls,
        items: Iterable[Hashable] | npt.NDArray[Any],
        annotators: Iterable[Hashable] | npt.NDArray[Any],
        labels: Iterable[Any] | npt.NDArray[Any],
        *,
        categories: Sequence[Any] | None = None,
        level: Level = "nominal",
        weights: Iterable[float] | npt.NDArray[Any] | None = None,
    ) -> Ratings:
        """Build from three parallel sequences (and optional weights).

        Raises:
            ValueError: on unequal lengths, an unknown level, NaN/None labels,
                labels of mixed types, labels outside ``categories``, duplicate
                categories, non-numeric labels at the interval or ratio level.
        """
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r}; expected one of {', '.join(LEVELS)}")
        if (
            _fast_kind(items) is not None
            and _fast_kind(annotators) is not None
            and _fast_kind(labels) is not None
        ):
            return cls._from_arrays(
                cast(npt.NDArray[Any], items),
                cast(npt.NDArray[Any], annotators),
                cast(npt.NDArray[Any], labels),
                categories=categories,
                level=level,
                weights=weights,
            )
        item_arr = np.asarray(
            list(items) if not isinstance(items, np.ndarray) else items, dtype=object
        )
        ann_arr = np.asarray(
            list(annotators) if not isinstance(annotators, np.ndarray) else annotators, dtype=object
        )
        lab_list = list(labels.tolist() if isinstance(labels, np.ndarray) else labels)
        n = len(lab_list)
        if not (len(item_arr) == len(ann_arr) == n):
            raise ValueError(
                f"items, annotators and labels must have equal lengths "
                f"(got {len(item_arr)}, {len(ann_arr)}, {n})"
            )
        for name, arr in (("item", item_arr), ("annotator", ann_arr)):
            for i, v in enumerate(arr.tolist()):
                if _is_nan(v):
                    raise ValueError(f"row {i}: {name} is missing")
        kinds: set[str] = set()
        for i, v in enumerate(lab_list):
            if _is_nan(v):
                raise ValueError(
                    f"row {i}: label is missing (NaN or None); drop missing ratings instead"
                )
            kinds.add(_label_kind(v))
        if len(kinds) > 1:
            raise ValueError(f"labels have mixed types ({', '.join(sorted(kinds))}); use one type")
        numeric = kinds <= {"number"}
        if level in ("interval", "ratio") and kinds and not numeric:
            try:
                lab_list = [float(v) for v in lab_list]
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{level} level needs numeric labels: {exc}") from None
            numeric = True
        if categories is None:
            distinct = set(lab_list)
            try:
                cats = sorted(distinct)
            except TypeError:
                cats = sorted(distinct, key=repr)
        else:
            cats = list(categories)
            if len(set(cats)) != len(cats):
                raise ValueError("categories contain duplicates")
        index = {c: i for i, c in enumerate(cats)}
        try:
            label_codes = np.fromiter((index[v] for v in lab_list), dtype=np.int64, count=n)
        except KeyError as exc:
            raise ValueError(
                f"label {exc.args[0]!r} is not among the declared categories"
            ) from None
        values: FloatArray | None = None
        if all(_label_kind(c) == "number" for c in cats) and cats:
            values = np.asarray(cats, dtype=np.float64)
            if np.isnan(values).any():
                raise ValueError("categories contain NaN")
        elif level in ("interval", "ratio"):
            raise ValueError(f"{level} level needs numeric categories")
        items_u, item_codes = _encode(item_arr)
        ann_u, ann_codes = _encode(ann_arr)
        if weights is None:
            w = np.ones(n, dtype=np.float64)
        else:
            w = np.asarray(
                list(weights) if not isinstance(weights, np.ndarray) else weights, dtype=np.float64
            )
            if w.shape != (n,):
                raise ValueError(f"weights must have one value per rating ({n}), got {w.shape}")
            if not np.isfinite(w).all() or (w < 0).any():
                raise ValueError("weights must be finite and non-negative")
        cat_arr = np.empty(len(cats), dtype=object)
        cat_arr[:] = cats
        return cls(
            item=item_codes,
            annotator=ann_codes,
            label=label_codes,
            items=items_u,
            annotators=ann_u,
            categories=cat_arr,
            level=level,
            weight=w,
            values=values,
        )

    @classmethod
    def _from_arrays(
        cls,
        items: npt.NDArray[Any],
        annotators: npt.NDArray[Any],
        labels: npt.NDArray[Any],
        *,
        categories: Sequence[Any] | None,
        level: Level,
        weights: Iterable[float] | npt.NDArray[Any] | None,
    ) -> Ratings:
        """Vectorised :meth:`from_long` for plain numeric or string numpy arrays (same rules)."""
        n = len(labels)
        if not (len(items) == len(annotators) == n):
            raise ValueError(
                f"items, annotators and labels must have equal lengths "
                f"(got {len(items)}, {len(annotators)}, {n})"
            )
        for name, arr in (("item", items), ("annotator", annotators)):
            if arr.dtype.kind == "f" and n:
                bad = np.flatnonzero(np.isnan(arr))
                if len(bad):
                    raise ValueError(f"row {int(bad[0])}: {name} is missing")
        cat_arr, label_codes, values = _encode_labels(labels, categories, level)
        items_u, item_codes = _encode_fast(items)
        ann_u, ann_codes = _encode_fast(annotators)
        if weights is None:
            w = np.broadcast_to(np.float64(1.0), (n,))  # read-only ones, no allocation
        else:
            w = np.asarray(
                list(weights) if not isinstance(weights, np.ndarray) else weights, dtype=np.float64
            )
            if w.shape != (n,):
                raise ValueError(f"weights must have one value per rating ({n}), got {w.shape}")
            if not np.isfinite(w).all() or (w < 0).any():
                raise ValueError("weights must be finite and non-negative")
        return cls(
            item=item_codes,
            annotator=ann_codes,
            label=label_codes,
            items=items_u,
            annotators=ann_u,
            categories=cat_arr,
            level=level,
            weight=w,
            values=values,
        )

    @classmethod
    def from_matrix(
        cls,
        matrix: Any,
        *,
        rows: Literal["annotators", "items"] = "annotators",
        categories: Sequence[Any] | None = None,
        level: Level = "nominal",
    ) -> Ratings:
        """Build from a wide matrix with NaN (or ``None``) for missing ratings.

        ``rows="annotators"`` is Krippendorff's reliability-data layout (coders × units,
        as :func:`krippendorff.alpha` takes it); ``rows="items"`` is the subjects ×
        raters layout of irrCAC and pingouin. Item and annotator ids are the column
        and row positions.
        """
        if rows not in ("annotators", "items"):
            raise ValueError(f"rows must be 'annotators' or 'items', got {rows!r}")
        arr = np.asarray(matrix)
        if arr.ndim != 2:
            raise ValueError(f"matrix must be two-dimensional, got shape {arr.shape}")
        # work in the array's own (C) order: rows are arr's first axis
        arr = np.ascontiguousarray(arr)
        if arr.dtype.kind in "iu":
            present = np.ones(arr.shape, dtype=bool)
        elif arr.dtype.kind == "f":
            present = ~np.isnan(arr)
        elif arr.dtype.kind in "US":
            present = arr != ""
        else:
            present = np.vectorize(lambda v: not _is_nan(v), otypes=[bool])(arr)
        n_rows, n_cols = arr.shape
        row_counts = present.sum(axis=1)
        col_counts = present.sum(axis=0)
        if arr.dtype.kind in "iu":  # nothing missing: the codes are a grid
            grid = (n_rows, n_cols)
            row_idx = np.broadcast_to(np.arange(n_rows, dtype=np.int64)[:, None], grid).ravel()
            col_idx = np.broadcast_to(np.arange(n_cols, dtype=np.int64)[None, :], grid).ravel()
        elif n_rows <= 1024:  # few rows: per-row scans, no division
            col_idx = np.concatenate(
                [np.flatnonzero(present[i]) for i in range(n_rows)] or [np.zeros(0, np.int64)]
            )
            row_idx = np.repeat(np.arange(n_rows, dtype=np.int64), row_counts)
        else:
            flat = np.flatnonzero(present)
            row_idx, col_idx = np.divmod(flat, n_cols)
        labels = arr.ravel() if arr.dtype.kind in "iu" else arr[present]
        if rows == "annotators":
            ann_idx, item_idx, n_ann, n_items = row_idx, col_idx, n_rows, n_cols
            ann_counts, item_counts = row_counts, col_counts
        else:
            ann_idx, item_idx, n_ann, n_items = col_idx, row_idx, n_cols, n_rows
            ann_counts, item_counts = col_counts, row_counts
        if labels.dtype.kind == "O":
            kinds = {_label_kind(v) for v in labels.tolist()}
            if len(kinds) > 1:
                raise ValueError(
                    f"labels have mixed types ({', '.join(sorted(kinds))}); use one type"
                )
            if kinds == {"number"}:
                labels = labels.astype(np.float64)
            elif kinds == {"str"}:
                labels = labels.astype(str)
            elif kinds:
                raise ValueError(f"unsupported label type {kinds.pop()}")
        if labels.dtype.kind == "f" and len(labels):
            with np.errstate(invalid="ignore"):
                as_int = labels.astype(np.int64)
            if np.array_equal(as_int, labels):  # integral values: code them as integers
                labels = as_int
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r}; expected one of {', '.join(LEVELS)}")
        cat_arr, label_codes, values = _encode_labels(labels, categories, level)
        out = cls(
            item=item_idx.astype(np.int64, copy=False),
            annotator=ann_idx.astype(np.int64, copy=False),
            label=label_codes,
            items=np.arange(n_items, dtype=np.int64),
            annotators=np.arange(n_ann, dtype=np.int64),
            categories=cat_arr,
            level=level,
            weight=np.broadcast_to(np.float64(1.0), (len(label_codes),)),  # read-only ones
            values=values,
        )
        # the matrix already knows the counts: fill the cached properties for free
        out.__dict__["item_counts"] = item_counts.astype(np.int64)
        out.__dict__["annotator_counts"] = ann_counts.astype(np.int64)
        return out

    @classmethod
    def from_frame(
        cls,
        frame: Any,
        *,
        item: str = "item",
        annotator: str = "annotator",
        label: str = "label",
        weight: str | None = None,
        categories: Sequence[Any] | None = None,
        level: Level = "nominal",
    ) -> Ratings:
        """Build from a pandas or polars data frame (or a mapping of columns)."""

        def column(name: str) -> list[Any]:
            try:
                col = frame[name]
            except (KeyError, Exception) as exc:  # polars raises ColumnNotFoundError
                if isinstance(exc, KeyError) or type(exc).__name__ == "ColumnNotFoundError":
                    raise ValueError(f"column {name!r} not found") from None
                raise
            if hasattr(col, "to_list"):
                return cast(list[Any], col.to_list())
            if hasattr(col, "tolist"):
                return cast(list[Any], col.tolist())
            return list(col)

        return cls.from_long(
            column(item),
            column(annotator),
            column(label),
            categories=categories,
            level=level,
            weights=column(weight) if weight is not None else None,
        )

    # ------------------------------------------------------------- properties
    @cached_property
    def item_counts(self) -> IntArray:
        """Number of ratings of each item (computed once)."""
        return np.bincount(self.item, minlength=self.n_items).astype(np.int64, copy=False)

    @cached_property
    def annotator_counts(self) -> IntArray:
        """Number of ratings by each annotator (computed once)."""
        return np.bincount(self.annotator, minlength=self.n_annotators).astype(np.int64, copy=False)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_annotators(self) -> int:
        return len(self.annotators)

    @property
    def n_categories(self) -> int:
        return len(self.categories)

    @property
    def n_ratings(self) -> int:
        return len(self.label)

    def require_numeric(self) -> FloatArray:
        """Numeric value of every category, or a ValueError naming the level."""
        if self.values is None:
            raise ValueError(f"{self.level} statistics need numeric labels")
        return self.values

    def counts(self) -> FloatArray:
        """Items × categories matrix of (weighted) rating counts."""
        k = self.n_categories
        flat = np.bincount(
            self.item * k + self.label, weights=self.weight, minlength=self.n_items * k
        )
        return flat.astype(np.float64, copy=False).reshape(self.n_items, k)

    def subset(self, mask: npt.NDArray[np.bool_]) -> Ratings:
        """Rows selected by a boolean mask; codes and category order are kept."""
        return Ratings(
            item=self.item[mask],
            annotator=self.annotator[mask],
            label=self.label[mask],
            items=self.items,
            annotators=self.annotators,
            categories=self.categories,
            level=self.level,
            weight=self.weight[mask],
            values=self.values,
        )
