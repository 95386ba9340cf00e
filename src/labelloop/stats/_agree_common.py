"""Shared pieces of the agreement statistics: the result type, weights, unit counts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from labelloop.stats._data import FloatArray, IntArray, Ratings

WeightSpec = Literal["identity", "linear", "quadratic"] | npt.ArrayLike


@dataclass(frozen=True)
class AgreementResult:
    """One agreement coefficient with its uncertainty.

    Attributes:
        name: the statistic, e.g. ``"fleiss_kappa"``.
        value: the point estimate (``nan`` when undefined, e.g. no variation at all).
        ci: ``(low, high)`` at ``confidence``, or ``None`` when not computed.
        se: analytic (or bootstrap) standard error, or ``None``.
        n_items: items with at least one rating.
        n_annotators: annotators with at least one rating.
        n_pairable: ratings that sit in an item with at least two ratings.
        observed: observed agreement (or ``1 - D_o`` for alpha), when defined.
        expected: chance agreement (or ``1 - D_e``), when defined.
        confidence: confidence level of ``ci``.
        ci_method: ``"analytic"``, ``"bootstrap-items"``, ``"bootstrap-krippendorff"`` or ``None``.
        details: extra, statistic-specific numbers (e.g. weights name).
    """

    name: str
    value: float
    ci: tuple[float, float] | None
    se: float | None
    n_items: int
    n_annotators: int
    n_pairable: int
    observed: float | None = None
    expected: float | None = None
    confidence: float = 0.95
    ci_method: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __float__(self) -> float:
        return self.value


def check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def require_ratings(r: Ratings) -> None:
    """Refuse data that cannot carry agreement: no ratings, or one annotator only."""
    if not isinstance(r, Ratings):
        raise TypeError(
            f"expected a Ratings, got {type(r).__name__}; build one with Ratings.from_long"
        )
    if r.n_ratings == 0:
        raise ValueError("no ratings")
    n_ann = int(np.count_nonzero(r.annotator_counts))
    if n_ann < 2:
        raise ValueError("agreement needs at least two annotators; got a single annotator")


def sizes(r: Ratings) -> tuple[int, int, int]:
    """(items with a rating, annotators with a rating, pairable ratings)."""
    m = r.item_counts
    n_items = int(np.count_nonzero(m))
    n_ann = int(np.count_nonzero(r.annotator_counts))
    n_pairable = int(m[m >= 2].sum())
    if n_pairable == 0:
        raise ValueError("no item has two or more ratings, so nothing can be compared")
    return n_items, n_ann, n_pairable


def positions(r: Ratings) -> FloatArray:
    """Numeric position of each category: its value when numeric, else its rank in the declared order."""
    if r.values is not None:
        return r.values
    return np.arange(r.n_categories, dtype=np.float64)


def weight_matrix(r: Ratings, weights: WeightSpec) -> FloatArray | None:
    """Agreement weights ``w[k, l]`` (1 on the diagonal); ``None`` stands for identity.

    ``linear``: ``1 - |x_k - x_l| / (x_max - x_min)``; ``quadratic``:
    ``1 - (x_k - x_l)^2 / (x_max - x_min)^2``, on category *values* (positions in the
    declared order for non-numeric categories) -- Cohen (1968), Gwet (2014, ch. 3).
    """
    q = r.n_categories
    if isinstance(weights, str):
        if weights == "identity":
            return None
        if weights not in ("linear", "quadratic"):
            raise ValueError(
                f"unknown weights {weights!r}; expected identity, linear, quadratic or a matrix"
            )
        x = positions(r)
        span = float(x.max() - x.min()) if q else 0.0
        if span == 0.0:
            return None
        d = np.abs(x[:, None] - x[None, :]) / span
        return 1.0 - (d if weights == "linear" else d * d)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (q, q):
        raise ValueError(f"weight matrix must be {q}×{q} (one row per category), got {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError("weight matrix must be finite")
    if not np.allclose(np.diag(w), 1.0):
        raise ValueError("weight matrix must have ones on the diagonal (agreement weights)")
    return w


def weights_name(weights: WeightSpec) -> str:
    return weights if isinstance(weights, str) else "custom"


@dataclass(frozen=True)
class UnitCounts:
    """Sparse items × categories rating counts of the rated items.

    ``unit`` indexes the compacted rated items (``0..n-1``); ``orig`` maps them back
    to item codes; ``m`` is the number of ratings per rated item.
    """

    unit: IntArray
    cat: IntArray
    count: FloatArray
    m: FloatArray
    orig: IntArray
    q: int

    @property
    def n(self) -> int:
        return len(self.m)

    def matrix(self) -> sp.csr_matrix:
        return sp.csr_matrix((self.count, (self.unit, self.cat)), shape=(self.n, self.q))


def unit_counts(r: Ratings) -> UnitCounts:
    """Count ratings per (item, category) without an items × categories dense array."""
    q = r.n_categories
    key = r.item * q + r.label
    if r.n_items * q <= 4 * r.n_ratings + 4096:
        full = np.bincount(key, minlength=r.n_items * q)
        nz = np.flatnonzero(full)
        cnt = full[nz].astype(np.float64)
    else:
        nz, cnt_i = np.unique(key, return_counts=True)
        cnt = cnt_i.astype(np.float64)
    item, cat = np.divmod(nz, q)
    rated = r.item_counts > 0
    orig = np.flatnonzero(rated)
    unit = (np.cumsum(rated) - 1)[item]  # compact codes of the rated items
    m = r.item_counts[orig].astype(np.float64)
    return UnitCounts(
        unit=unit.astype(np.int64, copy=False),
        cat=cat.astype(np.int64, copy=False),
        count=cnt,
        m=m,
        orig=orig.astype(np.int64, copy=False),
        q=q,
    )


def one_rating_per_pair(r: Ratings, what: str) -> None:
    """Raise if an annotator rated an item more than once (pairwise methods need one)."""
    n_ann = max(r.n_annotators, 1)
    key = r.item * n_ann + r.annotator
    size = r.n_items * n_ann
    if size <= 4 * len(key) + (1 << 22):
        repeated = len(key) > 0 and int(np.bincount(key, minlength=size).max()) > 1
    else:
        repeated = len(np.unique(key)) != len(key)
    if repeated:
        raise ValueError(
            f"{what} needs one rating per annotator and item; some annotator rated an item "
            "more than once (deduplicate or adjudicate first)"
        )
