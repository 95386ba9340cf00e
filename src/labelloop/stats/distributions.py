"""Label skew across segments and drift across time windows.

A lead wants to know whether one language, source or region gets a different label mix
than the rest (skew), and whether this week's labels differ from last month's (drift).
Each comparison of two label distributions reports:

* a chi-square test of homogeneity (Pearson 1900) on the 2 × K count table, with its
  p-value and Cramér's V = ``sqrt(χ² / (n · (min(r, c) - 1)))`` (Cramér 1946), an effect
  size in ``[0, 1]`` that does not grow with ``n``;
* the Jensen–Shannon divergence ``JSD(P, Q) = ½ KL(P ‖ M) + ½ KL(Q ‖ M)``, ``M = ½(P + Q)``
  (Lin 1991, "Divergence measures based on the Shannon entropy", IEEE Trans. Inf. Theory
  37), bounded by ``1`` in base 2 and defined with empty categories;
* the population stability index ``PSI = Σ_k (q_k - p_k) ln(q_k / p_k)`` (a symmetrised
  KL divergence used in credit scoring; Siddiqi 2006, Yurdakul 2018): < 0.1 stable,
  0.1–0.25 moderate shift, > 0.25 major shift. Zero cells are smoothed by adding
  ``smoothing`` (default 0.5) to every count.

When many segments or windows are tested at once, p-values are adjusted by the
Benjamini–Hochberg (1995) step-up procedure to control the false discovery rate.

Small-count rule: a comparison only *alarms* when both sides have at least ``min_count``
items, the BH-adjusted p-value is below ``alpha`` *and* the effect is material
(Cramér's V ≥ ``min_effect``). A handful of items can never raise an alarm, and a huge
window cannot alarm on a negligible difference.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

from labelloop.stats._data import Ratings

# ``ratings_distribution`` is new and not yet re-exported by ``labelloop.stats``; it joins
# ``__all__`` once the package ``__init__`` lists it.
__all__ = [
    "Chi2Result",
    "Comparison",
    "LabelDistribution",
    "benjamini_hochberg",
    "chi2_homogeneity",
    "compare_distributions",
    "jensen_shannon_divergence",
    "label_distribution",
    "population_stability_index",
    "segment_skew",
    "window_drift",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


# ----------------------------------------------------------------------------- distributions
@dataclass(frozen=True, eq=False)
class LabelDistribution:
    """Label counts per segment.

    Attributes:
        segments: segment labels (rows), sorted.
        categories: category values (columns), declared or sorted order.
        counts: segments × categories (weighted) counts.
    """

    segments: npt.NDArray[Any]
    categories: npt.NDArray[Any]
    counts: FloatArray

    @property
    def totals(self) -> FloatArray:
        return np.asarray(self.counts.sum(axis=1), dtype=np.float64)

    @property
    def proportions(self) -> FloatArray:
        """Row-normalised counts (NaN for an empty segment)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(self.counts / self.totals[:, None], dtype=np.float64)

    @property
    def overall(self) -> FloatArray:
        return np.asarray(self.counts.sum(axis=0), dtype=np.float64)


def _codes(
    values: Sequence[Hashable] | npt.NDArray[Any], name: str, order: Sequence[Any] | None = None
) -> tuple[npt.NDArray[Any], IntArray]:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise ValueError(f"{name} contain NaN; drop unlabeled rows first")
    if arr.dtype == object and any(v is None for v in arr.tolist()):
        raise ValueError(f"{name} contain None; drop unlabeled rows first")
    if order is not None:
        cats = list(order)
        if len(set(cats)) != len(cats):
            raise ValueError(f"{name}: declared categories contain duplicates")
        index = {c: i for i, c in enumerate(cats)}
        try:
            codes = np.fromiter(
                (index[v] for v in arr.tolist()), dtype=np.int64, count=arr.shape[0]
            )
        except KeyError as exc:
            raise ValueError(
                f"{name}: value {exc.args[0]!r} is not among the declared categories"
            ) from None
        out = np.empty(len(cats), dtype=object)
        out[:] = cats
        return out, codes
    try:
        uniq, codes = np.unique(arr, return_inverse=True)
    except TypeError:
        raise ValueError(f"{name} must be of one orderable type") from None
    return uniq, codes.astype(np.int64).reshape(-1)


def label_distribution(
    labels: Sequence[Hashable] | npt.NDArray[Any],
    segments: Sequence[Hashable] | npt.NDArray[Any],
    *,
    categories: Sequence[Any] | None = None,
    weights: npt.ArrayLike | None = None,
) -> LabelDistribution:
    """Count labels per segment (one row per labelled item, e.g. its consensus label)."""
    cats, lab = _codes(labels, "labels", categories)
    segs, seg = _codes(segments, "segments")
    if lab.shape != seg.shape:
        raise ValueError(
            f"labels and segments must have equal lengths ({lab.shape[0]} vs {seg.shape[0]})"
        )
    if lab.shape[0] == 0:
        raise ValueError("no labels given")
    if weights is None:
        w = None
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != lab.shape or not np.isfinite(w).all() or (w < 0).any():
            raise ValueError("weights must be finite, non-negative, one per label")
    k = cats.shape[0]
    counts = np.bincount(seg * k + lab, weights=w, minlength=segs.shape[0] * k).reshape(
        segs.shape[0], k
    )
    return LabelDistribution(segments=segs, categories=cats, counts=counts.astype(np.float64))


def ratings_distribution(
    ratings: Ratings,
    item_segments: Sequence[Hashable] | npt.NDArray[Any] | None = None,
) -> LabelDistribution:
    """Label counts per segment from long-form ratings (every rating counts, weighted).

    ``item_segments`` gives the segment of every item (in ``ratings.items`` order); without
    it the segments are the annotators, which shows annotators whose label mix departs
    from the team's (a bias indicator for :func:`segment_skew`).
    """
    k = ratings.n_categories
    if item_segments is None:
        segs = ratings.annotators
        seg = ratings.annotator
    else:
        segs, codes = _codes(item_segments, "item_segments")
        if codes.shape[0] != ratings.n_items:
            raise ValueError(
                f"item_segments must give one segment per item ({ratings.n_items}), got {codes.shape[0]}"
            )
        seg = codes[ratings.item]
    counts = np.bincount(
        seg * k + ratings.label, weights=ratings.weight, minlength=segs.shape[0] * k
    )
    return LabelDistribution(
        segments=segs,
        categories=ratings.categories,
        counts=np.asarray(counts, dtype=np.float64).reshape(segs.shape[0], k),
    )


def _as_dist(x: npt.ArrayLike, name: str) -> FloatArray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1 or a.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of counts or probabilities")
    if not np.isfinite(a).all() or (a < 0).any():
        raise ValueError(f"{name} must be finite and non-negative")
    if a.sum() <= 0:
        raise ValueError(f"{name} is all zero")
    return a


# ----------------------------------------------------------------------------- divergences
def jensen_shannon_divergence(p: npt.ArrayLike, q: npt.ArrayLike, *, base: float = 2.0) -> float:
    """Jensen–Shannon divergence between two distributions (counts are normalised).

    ``JSD = ½ Σ p log(p/m) + ½ Σ q log(q/m)``, ``m = (p + q)/2``, ``0 log 0 = 0`` (Lin 1991).
    In ``[0, 1]`` for base 2. Its square root is the Jensen–Shannon *distance* that
    ``scipy.spatial.distance.jensenshannon`` returns.
    """
    a, b = _as_dist(p, "p"), _as_dist(q, "q")
    if a.shape != b.shape:
        raise ValueError(
            f"p and q must have the same number of categories ({a.shape[0]} vs {b.shape[0]})"
        )
    if base <= 0 or base == 1:
        raise ValueError("base must be positive and not 1")
    a = a / a.sum()
    b = b / b.sum()
    m = (a + b) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        ka = np.where(a > 0, a * np.log(a / m), 0.0).sum()
        kb = np.where(b > 0, b * np.log(b / m), 0.0).sum()
    return float(max((ka + kb) / 2 / np.log(base), 0.0))


def population_stability_index(
    reference: npt.ArrayLike, current: npt.ArrayLike, *, smoothing: float = 0.5
) -> float:
    """Population stability index of ``current`` against ``reference`` (both counts).

    ``PSI = Σ (c_k - r_k) ln(c_k / r_k)`` on proportions after adding ``smoothing`` to
    every count (so an empty category gives a large but finite value). With
    ``smoothing=0`` the inputs may be proportions, and a zero on either side raises.
    Rule of thumb: < 0.1 stable, 0.1–0.25 moderate shift, > 0.25 major shift.
    """
    r, c = _as_dist(reference, "reference"), _as_dist(current, "current")
    if r.shape != c.shape:
        raise ValueError(
            f"reference and current must have the same number of categories ({r.shape[0]} vs {c.shape[0]})"
        )
    if smoothing < 0:
        raise ValueError("smoothing must be >= 0")
    r = r + smoothing
    c = c + smoothing
    if (r == 0).any() or (c == 0).any():
        raise ValueError("PSI is infinite with an empty category; use smoothing > 0")
    r = r / r.sum()
    c = c / c.sum()
    return float(np.sum((c - r) * np.log(c / r)))


# ----------------------------------------------------------------------------- tests
@dataclass(frozen=True, eq=False)
class Chi2Result:
    """Chi-square test of homogeneity.

    Attributes:
        statistic: Pearson χ² (with Yates' correction when requested and dof = 1).
        dof: degrees of freedom ``(r - 1)(c - 1)`` after dropping empty rows/columns.
        p_value: upper-tail probability of χ² with ``dof``.
        cramers_v: effect size from the uncorrected χ².
        expected: expected counts under homogeneity (empty rows/columns dropped).
        n: total count.
        min_expected: smallest expected count (χ² is unreliable below ~5).
    """

    statistic: float
    dof: int
    p_value: float
    cramers_v: float
    expected: FloatArray
    n: float
    min_expected: float


def chi2_homogeneity(counts: npt.ArrayLike, *, correction: bool = True) -> Chi2Result:
    """Pearson's chi-square test that all rows of a count table share one distribution.

    ``χ² = Σ (O - E)² / E``, ``E_ij = R_i C_j / n``; rows or columns that are entirely zero
    are dropped (they carry no information and would make ``E = 0``). ``correction``
    applies Yates' continuity correction when dof = 1, as ``scipy.stats.chi2_contingency``
    does by default. A table left with one row or column gives χ² = 0, p = 1, V = 0.
    """
    table = np.asarray(counts, dtype=np.float64)
    if table.ndim != 2:
        raise ValueError(
            f"counts must be a 2-D table (segments × categories), got shape {table.shape}"
        )
    if not np.isfinite(table).all() or (table < 0).any():
        raise ValueError("counts must be finite and non-negative")
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    n = float(table.sum())
    if n == 0:
        raise ValueError("counts are all zero")
    r, c = table.shape
    if r < 2 or c < 2:
        return Chi2Result(
            0.0, 0, 1.0, 0.0, table.copy(), n, float(table.min()) if table.size else 0.0
        )
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    dof = (r - 1) * (c - 1)
    raw = float(((table - expected) ** 2 / expected).sum())
    stat = raw
    if correction and dof == 1:
        diff = np.abs(table - expected)
        adj = np.minimum(diff, 0.5)  # scipy: never correct past zero
        stat = float(((diff - adj) ** 2 / expected).sum())
    p = float(sps.chi2.sf(stat, dof))
    v = float(np.sqrt(raw / (n * (min(r, c) - 1))))
    return Chi2Result(stat, dof, p, min(v, 1.0), expected, n, float(expected.min()))


def benjamini_hochberg(
    p_values: npt.ArrayLike, *, alpha: float = 0.05
) -> tuple[BoolArray, FloatArray]:
    """Benjamini–Hochberg (1995) step-up FDR control.

    Adjusted ``q_(i) = min_{j ≥ i} min(1, m p_(j) / j)`` over the sorted p-values; reject
    where ``q ≤ alpha``. Returns ``(reject, adjusted)`` in the input order (equal to
    ``statsmodels.stats.multitest.multipletests(method='fdr_bh')``). NaN p-values (tests
    not run) are left out of ``m`` and are never rejected.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError("p_values must be 1-D")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    nan = np.isnan(p)
    has_nan = bool(nan.any())
    pv = p[~nan] if has_nan else p
    m = pv.shape[0]
    if m == 0:
        return np.zeros(p.shape, dtype=bool), np.full(p.shape, np.nan)
    if pv.min() < 0 or pv.max() > 1:
        raise ValueError("p-values must lie in [0, 1]")
    order = np.argsort(pv)
    ranked_p = pv[order]
    ecdf = np.arange(1, m + 1) / m
    q = np.minimum(np.minimum.accumulate((ranked_p / ecdf)[::-1])[::-1], 1.0)
    out = np.empty(m)
    out[order] = q
    # step-up rule on the raw p-values (p_(i) <= i/m * alpha), avoiding rounding in q;
    # everything up to the largest such p_(r) is rejected (ties of p_(r) included)
    below = np.flatnonzero(ranked_p <= ecdf * alpha)
    rej = pv <= ranked_p[below[-1]] if below.size else np.zeros(m, dtype=bool)
    if not has_nan:
        return np.asarray(rej, dtype=np.bool_), out
    adjusted = np.full(p.shape, np.nan)
    reject = np.zeros(p.shape, dtype=bool)
    adjusted[~nan] = out
    reject[~nan] = rej
    return reject, adjusted


# ----------------------------------------------------------------------------- comparisons
@dataclass(frozen=True)
class Comparison:
    """One distribution compared with its reference.

    Attributes:
        name: the segment or window compared.
        reference: what it was compared with (``rest``, ``overall``, a window name).
        n: items in the compared group; ``n_reference``: items in the reference.
        chi2, dof, p_value, cramers_v: chi-square test of homogeneity on the 2 × K table.
        p_adjusted: Benjamini–Hochberg adjusted p-value over the whole family.
        jsd: Jensen–Shannon divergence (base 2). ``psi``: population stability index.
        alarm: True when the change is significant, material and well supported.
        reason: why it did or did not alarm.
    """

    name: Any
    reference: Any
    n: float
    n_reference: float
    chi2: float
    dof: int
    p_value: float
    p_adjusted: float
    cramers_v: float
    jsd: float
    psi: float
    alarm: bool
    reason: str


def compare_distributions(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    correction: bool = False,
    smoothing: float = 0.5,
) -> tuple[Chi2Result, float, float]:
    """Chi-square test, JSD and PSI of ``current`` counts against ``reference`` counts."""
    r, c = _as_dist(reference, "reference"), _as_dist(current, "current")
    if r.shape != c.shape:
        raise ValueError("reference and current must have the same categories")
    test = chi2_homogeneity(np.vstack([r, c]), correction=correction)
    return (
        test,
        jensen_shannon_divergence(r, c),
        population_stability_index(r, c, smoothing=smoothing),
    )


def _family(
    rows: list[tuple[Any, Any, FloatArray, FloatArray]],
    *,
    alpha: float,
    min_count: float,
    min_effect: float,
    smoothing: float,
) -> list[Comparison]:
    if min_count < 0 or min_effect < 0:
        raise ValueError("min_count and min_effect must be >= 0")
    results: list[tuple[Any, Any, float, float, Chi2Result | None, float, float]] = []
    for name, ref_name, cur, ref in rows:
        if cur.sum() > 0 and ref.sum() > 0:
            found, jsd, psi = compare_distributions(ref, cur, smoothing=smoothing)
            results.append((name, ref_name, cur.sum(), ref.sum(), found, jsd, psi))
        else:
            results.append((name, ref_name, cur.sum(), ref.sum(), None, float("nan"), float("nan")))
    pvals = np.array([np.nan if t is None else t.p_value for *_, t, _, _ in results])
    reject, adjusted = benjamini_hochberg(pvals, alpha=alpha)
    out = []
    for (name, ref_name, n, n_ref, test, jsd, psi), rej, q in zip(
        results, reject, adjusted, strict=True
    ):
        if test is None:
            alarm, reason = False, "empty group: nothing to compare"
        elif min(n, n_ref) < min_count:
            alarm, reason = (
                False,
                f"too few items (n={n:g}, reference={n_ref:g} < min_count={min_count:g})",
            )
        elif not rej:
            alarm, reason = (
                False,
                f"not significant after Benjamini–Hochberg (q={q:.3g} > {alpha:g})",
            )
        elif test.cramers_v < min_effect:
            alarm, reason = (
                False,
                f"significant but negligible (Cramér's V={test.cramers_v:.3f} < {min_effect:g})",
            )
        else:
            alarm, reason = (
                True,
                f"q={q:.3g}, Cramér's V={test.cramers_v:.3f}, JSD={jsd:.3f}, PSI={psi:.3f}",
            )
        out.append(
            Comparison(
                name=name,
                reference=ref_name,
                n=float(n),
                n_reference=float(n_ref),
                chi2=float("nan") if test is None else test.statistic,
                dof=0 if test is None else test.dof,
                p_value=float("nan") if test is None else test.p_value,
                p_adjusted=float(q),
                cramers_v=float("nan") if test is None else test.cramers_v,
                jsd=jsd,
                psi=psi,
                alarm=bool(alarm),
                reason=reason,
            )
        )
    return out


def segment_skew(
    dist: LabelDistribution,
    *,
    against: Literal["rest", "overall"] = "rest",
    alpha: float = 0.05,
    min_count: float = 30,
    min_effect: float = 0.1,
    smoothing: float = 0.5,
) -> list[Comparison]:
    """Compare every segment's label mix with the rest of the data (or the overall mix).

    One chi-square test per segment (2 × K table, no continuity correction), p-values
    adjusted by Benjamini–Hochberg across segments, alarms by the small-count rule of the
    module docstring. ``against="rest"`` keeps the two sides independent, which the test
    assumes; ``overall`` includes the segment in its own reference (descriptive only).
    """
    if against not in ("rest", "overall"):
        raise ValueError(f"against must be 'rest' or 'overall', got {against!r}")
    total = dist.overall
    rows = []
    for s, seg in enumerate(dist.segments.tolist()):
        cur = dist.counts[s]
        ref = total - cur if against == "rest" else total
        rows.append((seg, against, cur, ref))
    return _family(
        rows, alpha=alpha, min_count=min_count, min_effect=min_effect, smoothing=smoothing
    )


def window_drift(
    dist: LabelDistribution,
    *,
    baseline: Literal["first", "previous"] | Any = "first",
    alpha: float = 0.05,
    min_count: float = 30,
    min_effect: float = 0.1,
    smoothing: float = 0.5,
) -> list[Comparison]:
    """Compare each time window (rows of ``dist``, in sorted order) with a baseline window.

    ``baseline``: ``first`` (every later window against the first), ``previous`` (each
    window against the one before), or the label of a reference window. BH adjustment and
    the small-count rule as in :func:`segment_skew`.
    """
    names = dist.segments.tolist()
    if len(names) < 2:
        raise ValueError("drift needs at least two windows")
    rows = []
    if baseline == "first" or baseline == "previous":
        for w in range(1, len(names)):
            ref_i = 0 if baseline == "first" else w - 1
            rows.append((names[w], names[ref_i], dist.counts[w], dist.counts[ref_i]))
    else:
        if baseline not in names:
            raise ValueError(f"baseline window {baseline!r} not found among {names}")
        b = names.index(baseline)
        for w in range(len(names)):
            if w != b:
                rows.append((names[w], baseline, dist.counts[w], dist.counts[b]))
    return _family(
        rows, alpha=alpha, min_count=min_count, min_effect=min_effect, smoothing=smoothing
    )
