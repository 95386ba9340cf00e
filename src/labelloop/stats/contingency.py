"""Stratified 2×2 tables: the Cochran–Mantel–Haenszel test and the Mantel–Haenszel
common odds ratio.

Each stratum ``k`` is a table ``[[a, b], [c, d]]`` (rows: two conditions, e.g. after
and before a feedback note; columns: event and no event, e.g. error and no error),
with ``n = a + b + c + d``. Under the null hypothesis of no association in any stratum,
given the margins,

    E[a]   = (a + b)(a + c) / n
    Var[a] = (a + b)(c + d)(a + c)(b + d) / (n² (n − 1))

and the CMH statistic ``(|Σ (a − E[a])| − δ)² / Σ Var[a]`` (``δ = 0.5`` with the
continuity correction, else 0) follows χ² with one degree of freedom (Mantel &
Haenszel 1959; Agresti, *Categorical Data Analysis*, 3rd ed., §6.4). Strata with fewer
than two observations carry no information and are left out. The common odds ratio
estimate is ``Σ (a d / n) / Σ (b c / n)``.

Stratifying by recipient (one stratum per note) compares each annotator with
themselves, so differences between annotators' base rates do not masquerade as an
effect. ``statsmodels.stats.contingency_tables.StratifiedTable`` gives the same
numbers (``test_null_odds``, ``oddsratio_pooled``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class CMHResult:
    statistic: float
    p_value: float
    odds_ratio: float  # Mantel–Haenszel common odds ratio (nan when undefined)
    strata: int  # strata that carried information (two or more observations)


def _tables(tables: npt.ArrayLike) -> FloatArray:
    t = np.asarray(tables, dtype=np.float64)
    if t.ndim != 3 or t.shape[1:] != (2, 2):
        raise ValueError(f"expected strata of 2x2 tables (shape K x 2 x 2), got {t.shape}")
    if np.any(t < 0) or not np.all(np.isfinite(t)):
        raise ValueError("table counts must be finite and non-negative")
    return t


def cochran_mantel_haenszel(tables: npt.ArrayLike, *, correction: bool = False) -> CMHResult:
    """The CMH test of the module doc over ``tables`` (shape ``K × 2 × 2``)."""
    t = _tables(tables)
    a, b, c, d = t[:, 0, 0], t[:, 0, 1], t[:, 1, 0], t[:, 1, 1]
    n = a + b + c + d
    keep = n >= 2
    a, b, c, d, n = a[keep], b[keep], c[keep], d[keep], n[keep]
    expected = (a + b) * (a + c) / n
    variance = (a + b) * (c + d) * (a + c) * (b + d) / (n * n * (n - 1))
    total_var = float(variance.sum())
    num = bfloat = np.nan
    if total_var > 0:
        deviation = abs(float((a - expected).sum())) - (0.5 if correction else 0.0)
        num = max(deviation, 0.0) ** 2 / total_var
        bfloat = float(sps.chi2.sf(num, 1))
    ad, bc = float((a * d / n).sum()), float((b * c / n).sum())
    odds = ad / bc if bc > 0 else (np.inf if ad > 0 else np.nan)
    return CMHResult(float(num), float(bfloat), float(odds), int(keep.sum()))
