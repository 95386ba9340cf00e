"""Bootstrap confidence intervals, vectorised over resamples.

Item (cluster) bootstrap (Efron & Tibshirani 1993, ch. 6; for agreement: Gwet 2014,
ch. 5): resample the *items* with replacement, keeping every rating of a drawn item
together, and recompute the statistic. Nothing loops over resamples in Python: a
resample is a row of counts ``w_b`` (how often each item was drawn), and every
statistic here is a function of *linear* per-item sufficient statistics ``S`` (one
row per item), so all resamples of a chunk are ``W @ S`` -- one matrix product --
followed by a vectorised formula on the aggregated rows.

Krippendorff's own bootstrap for alpha (Hayes & Krippendorff 2007; Krippendorff
2016, "Bootstrapping distributions for Krippendorff's alpha") resamples *pairs of
values* from the coincidence matrix with the expected disagreement held fixed; it
is implemented in :func:`krippendorff_bootstrap` as one multinomial draw per
resample over the distinct disagreement values.

Intervals are percentile intervals; resamples whose statistic is undefined (e.g.
no variation left) are dropped and counted in ``n_undefined``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from labelloop.stats._data import FloatArray

Statistic = Callable[[FloatArray], FloatArray]

_MAX_CHUNK_CELLS = 2_000_000  # resamples × items per chunk (16 MB of float64, cache-friendly)


@dataclass(frozen=True)
class BootstrapResult:
    """Replicates of a statistic and their percentile interval.

    Attributes:
        replicates: one value per resample (``nan`` where undefined).
        ci: percentile interval ``(low, high)`` at ``confidence``.
        se: standard deviation of the defined replicates.
        confidence: the level of ``ci``.
        n_undefined: resamples whose statistic was undefined.
    """

    replicates: FloatArray
    ci: tuple[float, float]
    se: float
    confidence: float
    n_undefined: int


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def resample_counts(n_items: int, n_boot: int, rng: np.random.Generator) -> FloatArray:
    """``n_boot × n_items`` matrix of multinomial(n, 1/n) draw counts (exact item bootstrap)."""
    idx = rng.integers(0, n_items, size=(n_boot, n_items), dtype=np.int64)
    idx += (np.arange(n_boot, dtype=np.int64) * n_items)[:, None]
    flat = np.bincount(idx.ravel(), minlength=n_boot * n_items)
    return flat.reshape(n_boot, n_items).astype(np.float64)


def percentile_interval(replicates: FloatArray, confidence: float) -> tuple[float, float]:
    """Equal-tailed percentile interval of the defined replicates."""
    ok = replicates[np.isfinite(replicates)]
    if len(ok) == 0:
        return (float("nan"), float("nan"))
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(ok, [tail, 1.0 - tail])
    return (float(lo), float(hi))


def summarize(replicates: FloatArray, confidence: float) -> BootstrapResult:
    """Percentile interval and standard error of bootstrap replicates."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    ok = np.isfinite(replicates)
    se = float(np.std(replicates[ok], ddof=1)) if ok.sum() > 1 else float("nan")
    return BootstrapResult(
        replicates=replicates,
        ci=percentile_interval(replicates, confidence),
        se=se,
        confidence=confidence,
        n_undefined=int((~ok).sum()),
    )


def _item_types(
    mat: FloatArray | sp.csr_matrix,
) -> tuple[FloatArray | sp.csr_matrix, FloatArray] | None:
    """Distinct rows of ``mat`` and how many items share each, or ``None`` if rows are mostly distinct.

    Resampling ``n`` items uniformly is the same as drawing how many items of each *type*
    (distinct row) are taken, multinomial with probabilities ``count / n`` -- exact, and
    with categorical data there are few types (e.g. ~250 for 5 coders and 5 categories).
    """
    n = mat.shape[0]
    if sp.issparse(mat):
        csr = sp.csr_matrix(mat)
        rng = np.random.default_rng(12345)
        proj = np.asarray(csr @ rng.random((csr.shape[1], 2)))
        _, first, inv, cnt = np.unique(
            proj, axis=0, return_index=True, return_inverse=True, return_counts=True
        )
        inv = inv.reshape(-1)
        if len(cnt) > n // 4:
            return None
        reps = csr[first]
        if (csr - reps[inv]).count_nonzero() != 0:  # a hash collision: do not trust it
            return None
        return reps, cnt.astype(np.float64)
    uniq, cnt = np.unique(mat, axis=0, return_counts=True)
    if len(cnt) > n // 4:
        return None
    return uniq, cnt.astype(np.float64)


def bootstrap_items(
    per_item: FloatArray | sp.spmatrix | sp.sparray,
    statistic: Statistic,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int | np.random.Generator | None = None,
) -> BootstrapResult:
    """Item bootstrap of a statistic of summed per-item sufficient statistics.

    Args:
        per_item: ``n_items × p`` matrix (dense or scipy sparse); row ``i`` holds item
            ``i``'s additive contributions.
        statistic: maps a ``B × p`` array of column sums (one row per resample) to ``B``
            values; it must be vectorised over rows.
        n_boot: number of resamples (``>= 2``).
        confidence: level of the percentile interval.
        seed: seed or ``numpy.random.Generator`` (reproducible).

    Resample counts come from one multinomial draw per resample over the distinct item
    rows when items repeat (categorical data), else from ``n`` uniform item indices per
    resample; both are the exact nonparametric bootstrap.
    """
    if n_boot < 2:
        raise ValueError(f"n_boot must be at least 2, got {n_boot}")
    rng = _rng(seed)
    n = per_item.shape[0]
    if n < 2:
        raise ValueError("the bootstrap needs at least two items")
    mat: FloatArray | sp.csr_matrix
    if sp.issparse(per_item):
        mat = sp.csr_matrix(per_item)
        if mat.shape[1] <= 64:
            mat = np.asarray(mat.todense(), dtype=np.float64)
    else:
        mat = np.asarray(per_item, dtype=np.float64)
    types = _item_types(mat)
    out = np.empty(n_boot, dtype=np.float64)
    if types is not None:
        rows, cnt = types
        p = cnt / cnt.sum()
        chunk = max(1, min(n_boot, _MAX_CHUNK_CELLS // max(len(cnt), 1)))
        for start in range(0, n_boot, chunk):
            b = min(chunk, n_boot - start)
            w = rng.multinomial(n, p, size=b).astype(np.float64)
            out[start : start + b] = _apply(statistic, w, rows)
        return summarize(out, confidence)
    chunk = max(1, min(n_boot, _MAX_CHUNK_CELLS // max(n, 1)))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        w = resample_counts(n, b, rng)
        out[start : start + b] = _apply(statistic, w, mat)
    return summarize(out, confidence)


def _apply(statistic: Statistic, w: FloatArray, mat: FloatArray | sp.csr_matrix) -> FloatArray:
    sums = np.asarray((mat.T @ w.T).T) if sp.issparse(mat) else w @ mat
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(statistic(np.asarray(sums, dtype=np.float64)), dtype=np.float64)


def krippendorff_bootstrap(
    delta: FloatArray,
    mass: FloatArray,
    *,
    n_pairable: int,
    n_coders: int,
    expected_disagreement: float,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int | np.random.Generator | None = None,
    max_cells: int = 4096,
) -> BootstrapResult:
    """Krippendorff's bootstrap of alpha (Hayes & Krippendorff 2007).

    The coincidence matrix, normalised to probabilities ``o_ck / n``, is the population
    of pairable value pairs. Each resample draws ``M = min(25 q, (m - 1) n / 2)`` pairs
    (``q`` non-empty cells, ``m`` coders, ``n`` pairable values) and sets
    ``alpha* = 1 - sum(delta of drawn pairs) / (M D_e)`` with the expected disagreement
    ``D_e`` of the full data held fixed, clipped below at -1.

    ``delta`` and ``mass`` list the distinct cells (disagreement, coincidence mass).
    Cells with equal disagreement are pooled (the result depends only on the summed
    disagreement); when more than ``max_cells`` distinct values remain (continuous
    data), they are pooled into ``max_cells`` equal-mass groups by their mass-weighted
    mean -- this keeps the mean of ``alpha*`` exact and loses only the within-group
    spread (negligible at 4,096 groups).
    """
    if n_boot < 2:
        raise ValueError(f"n_boot must be at least 2, got {n_boot}")
    rng = _rng(seed)
    keep = mass > 0
    delta, mass = delta[keep], mass[keep]
    q_cells = len(delta)
    if q_cells == 0 or not expected_disagreement > 0:
        return summarize(np.full(n_boot, np.nan), confidence)
    big_m = int(min(25 * q_cells, (n_coders - 1) * n_pairable / 2))
    big_m = max(big_m, 1)
    uniq, inv = np.unique(delta, return_inverse=True)
    pooled_mass = np.bincount(inv, weights=mass)
    if len(uniq) > max_cells:
        cum = np.cumsum(pooled_mass)
        group = np.minimum((cum - pooled_mass / 2) / cum[-1] * max_cells, max_cells - 1).astype(
            np.int64
        )
        gmass = np.bincount(group, weights=pooled_mass, minlength=max_cells)
        gsum = np.bincount(group, weights=pooled_mass * uniq, minlength=max_cells)
        nz = gmass > 0
        uniq = gsum[nz] / gmass[nz]
        pooled_mass = gmass[nz]
    p = pooled_mass / pooled_mass.sum()
    draws: npt.NDArray[np.int64] = rng.multinomial(big_m, p, size=n_boot)
    total = draws @ uniq
    alpha = 1.0 - total / (big_m * expected_disagreement)
    return summarize(np.maximum(alpha, -1.0), confidence)
