"""Intraclass correlation coefficients (Shrout & Fleiss 1979; McGraw & Wong 1996).

From the two-way ANOVA of a complete items × raters table (``n`` items, ``k`` raters):
``MS_R`` (items), ``MS_C`` (raters), ``MS_E`` (residual), ``MS_W = (SS_C + SS_E)/(n(k-1))``:

* ICC(1,1) one-way random:      ``(MS_R - MS_W) / (MS_R + (k-1) MS_W)``
* ICC(2,1) two-way random, absolute agreement:
  ``(MS_R - MS_E) / (MS_R + (k-1) MS_E + k (MS_C - MS_E) / n)``
* ICC(3,1) two-way mixed, consistency: ``(MS_R - MS_E) / (MS_R + (k-1) MS_E)``
* ICC(1,k), ICC(2,k), ICC(3,k): the same for the mean of ``k`` raters:
  ``(MS_R - MS_W)/MS_R``, ``(MS_R - MS_E)/(MS_R + (MS_C - MS_E)/n)``, ``(MS_R - MS_E)/MS_R``.

F-based confidence intervals as in Shrout & Fleiss (1979) and McGraw & Wong (1996)
(ICC(2,·) with the Satterthwaite degrees of freedom), the same as pingouin's.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import stats as sps

from labelloop.stats._agree_common import (
    AgreementResult,
    check_confidence,
    one_rating_per_pair,
    require_ratings,
)
from labelloop.stats._data import Ratings

ICC_FORMS = ("ICC1", "ICC2", "ICC3", "ICC1k", "ICC2k", "ICC3k")


def intraclass_correlation(
    r: Ratings, *, missing: Literal["raise", "omit"] = "raise", confidence: float = 0.95
) -> dict[str, AgreementResult]:
    """All six ICC forms with F-based intervals, keyed ``ICC1 ... ICC3k``.

    Needs numeric labels and a complete design (every annotator rates every item once);
    ``missing="omit"`` drops items that lack a rating (listwise deletion, as pingouin's
    ``nan_policy="omit"``).
    """
    require_ratings(r)
    check_confidence(confidence)
    if missing not in ("raise", "omit"):
        raise ValueError(f"missing must be 'raise' or 'omit', got {missing!r}")
    one_rating_per_pair(r, "ICC")
    vals = r.require_numeric()
    ann_present = np.flatnonzero(np.bincount(r.annotator, minlength=r.n_annotators))
    k = len(ann_present)
    col = np.searchsorted(ann_present, r.annotator)
    m = np.bincount(r.item, minlength=r.n_items)
    complete = m == k
    if not complete[m > 0].all() and missing == "raise":
        bad = int(np.flatnonzero((m > 0) & ~complete)[0])
        raise ValueError(
            f"ICC needs every annotator to rate every item; item {r.items[bad]!r} has "
            f"{int(m[bad])} of {k} ratings (pass missing='omit' to drop such items)"
        )
    items = np.flatnonzero(complete)
    n = len(items)
    if n < 2:
        raise ValueError("ICC needs at least two completely rated items")
    row = np.searchsorted(items, r.item)
    keep = complete[r.item]
    x = np.zeros((n, k))
    x[row[keep], col[keep]] = vals[r.label[keep]]
    grand = x.mean()
    ss_r = k * ((x.mean(axis=1) - grand) ** 2).sum()
    ss_c = n * ((x.mean(axis=0) - grand) ** 2).sum()
    ss_t = ((x - grand) ** 2).sum()
    ss_e = ss_t - ss_r - ss_c
    msb = ss_r / (n - 1)
    msj = ss_c / (k - 1)
    mse = ss_e / ((n - 1) * (k - 1))
    msw = (ss_c + ss_e) / (n * (k - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        icc1 = (msb - msw) / (msb + (k - 1) * msw)
        icc2 = (msb - mse) / (msb + (k - 1) * mse + k * (msj - mse) / n)
        icc3 = (msb - mse) / (msb + (k - 1) * mse)
        icc1k = (msb - msw) / msb
        icc2k = (msb - mse) / (msb + (msj - mse) / n)
        icc3k = (msb - mse) / msb
        f1 = msb / msw
        f3 = msb / mse
        df1, df1w, df2e = n - 1, n * (k - 1), (n - 1) * (k - 1)
        a = 1.0 - confidence
        f1l = f1 / sps.f.ppf(1 - a / 2, df1, df1w)
        f1u = f1 * sps.f.ppf(1 - a / 2, df1w, df1)
        f3l = f3 / sps.f.ppf(1 - a / 2, df1, df2e)
        f3u = f3 * sps.f.ppf(1 - a / 2, df2e, df1)
        fj = msj / mse
        vn = df2e * (k * icc2 * fj + n * (1 + (k - 1) * icc2) - k * icc2) ** 2
        vd = df1 * k**2 * icc2**2 * fj**2 + (n * (1 + (k - 1) * icc2) - k * icc2) ** 2
        v = vn / vd
        f2u = sps.f.ppf(1 - a / 2, n - 1, v)
        f2l = sps.f.ppf(1 - a / 2, v, n - 1)
        l2 = n * (msb - f2u * mse) / (f2u * (k * msj + (k * n - k - n) * mse) + n * msb)
        u2 = n * (f2l * msb - mse) / (k * msj + (k * n - k - n) * mse + n * f2l * msb)
        cis = {
            "ICC1": ((f1l - 1) / (f1l + (k - 1)), (f1u - 1) / (f1u + (k - 1))),
            "ICC2": (l2, u2),
            "ICC3": ((f3l - 1) / (f3l + (k - 1)), (f3u - 1) / (f3u + (k - 1))),
            "ICC1k": (1 - 1 / f1l, 1 - 1 / f1u),
            "ICC2k": (l2 * k / (1 + l2 * (k - 1)), u2 * k / (1 + u2 * (k - 1))),
            "ICC3k": (1 - 1 / f3l, 1 - 1 / f3u),
        }
    values = {
        "ICC1": icc1,
        "ICC2": icc2,
        "ICC3": icc3,
        "ICC1k": icc1k,
        "ICC2k": icc2k,
        "ICC3k": icc3k,
    }
    f_of = {"ICC1": (f1, df1, df1w), "ICC1k": (f1, df1, df1w)}
    out: dict[str, AgreementResult] = {}
    for form in ICC_FORMS:
        fval, d1, d2 = f_of.get(form, (f3, df1, df2e))
        lo, hi = cis[form]
        out[form] = AgreementResult(
            name=form,
            value=float(values[form]),
            ci=(float(lo), float(hi)),
            se=None,
            n_items=n,
            n_annotators=k,
            n_pairable=n * k,
            confidence=confidence,
            ci_method="analytic",
            details={
                "F": float(fval),
                "df1": d1,
                "df2": d2,
                "pval": float(sps.f.sf(fval, d1, d2)),
                "MS_R": float(msb),
                "MS_C": float(msj),
                "MS_E": float(mse),
                "MS_W": float(msw),
            },
        )
    return out
