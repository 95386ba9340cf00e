"""Multi-rater chance-corrected coefficients in Gwet's unified form.

For item ``i`` with ``r_i`` ratings, ``r_ik`` of them in category ``k`` and agreement
weights ``w`` (identity when unweighted), with ``r*_ik = sum_l w_kl r_il``:

* observed agreement over the ``n'`` items with ``r_i >= 2``:
  ``p_a = (1/n') sum_i sum_k r_ik (r*_ik - 1) / (r_i (r_i - 1))``;
* category prevalence over the ``n`` rated items: ``pi_k = (1/n) sum_i r_ik / r_i``;
* coefficient ``(p_a - p_e) / (1 - p_e)`` with chance agreement
  - Fleiss' kappa (Fleiss 1971, unequal rater counts as generalised by Gwet 2014, §2.4):
    ``p_e = sum_kl w_kl pi_k pi_l``;
  - Gwet's AC1 / AC2 (Gwet 2008; 2014, ch. 4):
    ``p_e = T_w / (q (q - 1)) sum_k pi_k (1 - pi_k)``, ``T_w = sum_kl w_kl``;
  - Brennan–Prediger (1981): ``p_e = T_w / q^2``;
  - Scott's pi (Scott 1955): Fleiss' ``p_e`` with ``pi_k`` taken over the items with two
    or more ratings only (for two raters, the classic pi on the items both rated).

Standard errors are Gwet's linearisation (2014, §5.3; identical to irrCAC):
``v = 1/(n (n-1)) sum_i (kappa*_i - kappa)^2`` with
``kappa*_i = (n/n') (p_a,i - p_e [r_i >= 2]) / (1 - p_e) - 2 (1 - kappa) (p_e,i - p_e) / (1 - p_e)``;
intervals are ``kappa ± t_{n-1} se`` (upper end capped at 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from scipy import stats as sps

from labelloop.stats._agree_common import (
    AgreementResult,
    UnitCounts,
    WeightSpec,
    check_confidence,
    require_ratings,
    sizes,
    unit_counts,
    weight_matrix,
    weights_name,
)
from labelloop.stats._data import FloatArray, Ratings
from labelloop.stats.intervals import bootstrap_items

Kind = Literal["fleiss", "gwet", "bp", "scott", "percent"]

_NAMES = {
    "fleiss": "fleiss_kappa",
    "gwet": "gwet_ac1",
    "bp": "brennan_prediger",
    "scott": "scott_pi",
    "percent": "percent_agreement",
}


@dataclass(frozen=True)
class _Parts:
    pa_i: FloatArray  # per item observed agreement (0 where r_i < 2)
    two: FloatArray  # 1.0 where r_i >= 2
    pi_i: sp.csr_matrix  # r_ik / r_i, items × q
    cw: sp.csr_matrix | FloatArray  # r*_ik
    counts: sp.csr_matrix
    m: FloatArray


def _parts(uc: UnitCounts, w: FloatArray | None) -> _Parts:
    c = uc.matrix()
    m = uc.m
    if w is None:
        cw: sp.csr_matrix | FloatArray = c
        sum_q: FloatArray = np.bincount(
            uc.unit, weights=uc.count * (uc.count - 1.0), minlength=uc.n
        ).astype(np.float64)
    else:
        cw = np.asarray(c @ w.T)
        sum_q = np.asarray(c.multiply(cw).sum(axis=1)).ravel() - m
    two = (m >= 2).astype(np.float64)
    den = np.where(m >= 2, m * (m - 1.0), 1.0)
    pa_i = np.where(m >= 2, sum_q / den, 0.0)
    pi_i = sp.csr_matrix(sp.diags(1.0 / m) @ c)
    return _Parts(pa_i=pa_i, two=two, pi_i=pi_i, cw=cw, counts=c, m=m)


def _pe(kind: Kind, pi: FloatArray, w: FloatArray | None, q: int) -> FloatArray:
    """Chance agreement for rows of category prevalences ``pi`` (shape ``B × q``)."""
    tw = float(q if w is None else w.sum())
    if kind in ("fleiss", "scott"):
        if w is None:
            return np.asarray((pi * pi).sum(axis=1))
        return np.asarray(np.einsum("bk,kl,bl->b", pi, w, pi))
    if kind == "gwet":
        if q < 2:
            return np.ones(pi.shape[0])
        return np.asarray(tw * (pi * (1.0 - pi)).sum(axis=1) / (q * (q - 1)))
    if kind == "bp":
        return np.full(pi.shape[0], tw / (q * q) if q else 1.0)
    return np.zeros(pi.shape[0])  # percent agreement: no chance correction


def _coef(pa: FloatArray, pe: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(pe < 1.0, (pa - pe) / (1.0 - pe), np.nan)
    return np.asarray(out, dtype=np.float64)


def chance_corrected(
    r: Ratings,
    kind: Kind,
    *,
    weights: WeightSpec = "identity",
    confidence: float = 0.95,
    n_boot: int = 0,
    seed: int | np.random.Generator | None = None,
) -> AgreementResult:
    """Shared engine of Fleiss, Gwet, Brennan–Prediger, Scott and percent agreement."""
    require_ratings(r)
    check_confidence(confidence)
    n_items, n_ann, n_pairable = sizes(r)
    w = weight_matrix(r, weights)
    q = r.n_categories
    uc = unit_counts(r)
    parts = _parts(uc, w)
    if kind == "scott":  # prevalence from the pairable items only
        keep = parts.two > 0
        parts = _Parts(
            pa_i=parts.pa_i[keep],
            two=parts.two[keep],
            pi_i=parts.pi_i[keep],
            cw=parts.cw[keep],
            counts=parts.counts[keep],
            m=parts.m[keep],
        )
    n = len(parts.m)
    n2 = float(parts.two.sum())
    pa = float(parts.pa_i.sum() / n2)
    pi = np.asarray(parts.pi_i.sum(axis=0)).ravel() / n
    pe = float(_pe(kind, pi[None, :], w, q)[0])
    value = float(_coef(np.array([pa]), np.array([pe]))[0])
    name = _NAMES[kind]
    if kind == "gwet" and w is not None:
        name = "gwet_ac2"
    details: dict[str, Any] = {"weights": weights_name(weights), "n_categories": q}

    se: float | None = None
    ci: tuple[float, float] | None = None
    ci_method: str | None = None
    if n_boot > 0 and n < 2:
        details["bootstrap"] = "skipped: fewer than two items"
    elif n_boot > 0:
        per_item = sp.hstack(
            [sp.csr_matrix(np.column_stack([np.ones(n), parts.two, parts.pa_i])), parts.pi_i],
            format="csr",
        )

        def stat(s: FloatArray) -> FloatArray:
            pa_b = s[:, 2] / s[:, 1]
            pi_b = s[:, 3:] / s[:, [0]]
            return _coef(pa_b, _pe(kind, pi_b, w, q))

        boot = bootstrap_items(per_item, stat, n_boot=n_boot, confidence=confidence, seed=seed)
        se, ci, ci_method = boot.se, boot.ci, "bootstrap-items"
        details["n_undefined_resamples"] = boot.n_undefined
    elif np.isfinite(value) and n > 1:
        se = _gwet_se(kind, parts, pa, pe, value, pi, w, q, n, n2)
        t = float(sps.t.ppf(0.5 + confidence / 2.0, n - 1))
        ci = (value - t * se, min(1.0, value + t * se))
        ci_method = "analytic"
    return AgreementResult(
        name=name,
        value=value,
        ci=ci,
        se=se,
        n_items=n_items,
        n_annotators=n_ann,
        n_pairable=n_pairable,
        observed=pa,
        expected=pe,
        confidence=confidence,
        ci_method=ci_method,
        details=details,
    )


def _gwet_se(
    kind: Kind,
    parts: _Parts,
    pa: float,
    pe: float,
    value: float,
    pi: FloatArray,
    w: FloatArray | None,
    q: int,
    n: int,
    n2: float,
) -> float:
    """Gwet's (2014, §5.3) linearised variance, finite-population correction off."""
    if kind == "percent":
        x = (n / n2) * parts.pa_i
        return float(np.sqrt(((x - pa) ** 2).sum() / (n * (n - 1))))
    k_i = (n / n2) * (parts.pa_i - pe * parts.two) / (1.0 - pe)
    if kind in ("fleiss", "scott"):
        piw = pi if w is None else (w @ pi + w.T @ pi) / 2.0
        pe_i = np.asarray(parts.counts @ piw).ravel() / parts.m
        k_i = k_i - 2.0 * (1.0 - value) * (pe_i - pe) / (1.0 - pe)
    elif kind == "gwet":
        tw = float(q if w is None else w.sum())
        pe_i = tw / (q * (q - 1)) * np.asarray(parts.counts @ (1.0 - pi)).ravel() / parts.m
        k_i = k_i - 2.0 * (1.0 - value) * (pe_i - pe) / (1.0 - pe)
    return float(np.sqrt(((k_i - value) ** 2).sum() / (n * (n - 1))))


def percent_agreement(
    r: Ratings,
    *,
    weights: WeightSpec = "identity",
    confidence: float = 0.95,
    n_boot: int = 0,
    seed: int | np.random.Generator | None = None,
) -> AgreementResult:
    """Share of agreeing rating pairs within items, averaged over items with >= 2 ratings.

    ``p_a = (1/n') sum_i sum_k r_ik (r*_ik - 1) / (r_i (r_i - 1))`` -- not corrected for
    chance, so it flatters skewed label sets; report a chance-corrected coefficient too.
    """
    return chance_corrected(
        r, "percent", weights=weights, confidence=confidence, n_boot=n_boot, seed=seed
    )


def fleiss_kappa(
    r: Ratings,
    *,
    weights: WeightSpec = "identity",
    confidence: float = 0.95,
    n_boot: int = 0,
    seed: int | np.random.Generator | None = None,
) -> AgreementResult:
    """Fleiss' (1971) kappa for any number of raters per item (Gwet's generalisation).

    ``p_e = sum_kl w_kl pi_k pi_l``; equals statsmodels' ``fleiss_kappa`` on complete
    data and irrCAC's ``CAC.fleiss`` (with missing ratings) -- see the module docstring.
    """
    return chance_corrected(
        r, "fleiss", weights=weights, confidence=confidence, n_boot=n_boot, seed=seed
    )


def gwet_ac(
    r: Ratings,
    *,
    weights: WeightSpec = "identity",
    confidence: float = 0.95,
    n_boot: int = 0,
    seed: int | np.random.Generator | None = None,
) -> AgreementResult:
    """Gwet's AC1 (unweighted) / AC2 (weighted) (Gwet 2008; 2014).

    ``p_e = T_w / (q (q - 1)) sum_k pi_k (1 - pi_k)``: chance agreement is only possible
    on hard-to-classify items, so AC1 does not collapse on skewed prevalence (the kappa
    paradox). Depends on the number of *declared* categories ``q``.
    """
    return chance_corrected(
        r, "gwet", weights=weights, confidence=confidence, n_boot=n_boot, seed=seed
    )


def brennan_prediger(
    r: Ratings,
    *,
    weights: WeightSpec = "identity",
    confidence: float = 0.95,
    n_boot: int = 0,
    seed: int | np.random.Generator | None = None,
) -> AgreementResult:
    """Brennan–Prediger (1981) coefficient: uniform chance, ``p_e = T_w / q^2``.

    Also known as Randolph's free-marginal kappa; depends on the declared ``q``.
    """
    return chance_corrected(
        r, "bp", weights=weights, confidence=confidence, n_boot=n_boot, seed=seed
    )


def scott_pi(
    r: Ratings,
    *,
    weights: WeightSpec = "identity",
    confidence: float = 0.95,
    n_boot: int = 0,
    seed: int | np.random.Generator | None = None,
) -> AgreementResult:
    """Scott's (1955) pi: chance from the pooled label distribution of the pairable items.

    For two raters it is the classic pi on the items both rated; for more raters and
    complete data it equals Fleiss' kappa (which generalises it).
    """
    return chance_corrected(
        r, "scott", weights=weights, confidence=confidence, n_boot=n_boot, seed=seed
    )


@dataclass(frozen=True)
class CategoryAgreement:
    """Per-category agreement (Fleiss 1971, eq. 9; Uebersax 1982 specific agreement).

    Attributes:
        categories: category values in declared order.
        kappa: Fleiss' kappa of the category against all others (``nan`` if unused).
        specific_agreement: ``sum_i r_ik (r_ik - 1) / sum_i r_ik (r_i - 1)`` over items with
            two or more ratings: the chance that, given one rating says ``k``, another
            rating of the same item says ``k`` too.
        n_ratings: ratings of each category in items with two or more ratings.
    """

    categories: Any
    kappa: FloatArray
    specific_agreement: FloatArray
    n_ratings: FloatArray


def per_category_agreement(r: Ratings) -> CategoryAgreement:
    """Fleiss' per-category kappa and specific agreement for every category.

    Per-category kappa is Fleiss' kappa on the data dichotomised into ``k`` / not ``k``:
    ``kappa_k = 1 - [(1/n') sum_i 2 r_ik (r_i - r_ik) / (r_i (r_i - 1))] / (2 pi_k (1 - pi_k))``.
    """
    require_ratings(r)
    sizes(r)
    uc = unit_counts(r)
    q = r.n_categories
    m_row = uc.m[uc.unit]
    two = m_row >= 2
    n = uc.n
    n2 = float((uc.m >= 2).sum())
    pi = np.bincount(uc.cat, weights=uc.count / m_row, minlength=q) / n
    den = np.where(two, m_row * (m_row - 1.0), 1.0)
    dis = (
        np.bincount(
            uc.cat[two], weights=(2 * uc.count * (m_row - uc.count) / den)[two], minlength=q
        )
        / n2
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(pi * (1 - pi) > 0, 1.0 - dis / (2 * pi * (1 - pi)), np.nan)
        agree = np.bincount(uc.cat[two], weights=(uc.count * (uc.count - 1))[two], minlength=q)
        total = np.bincount(uc.cat[two], weights=(uc.count * (m_row - 1))[two], minlength=q)
        specific = np.where(total > 0, agree / total, np.nan)
    n_rat = np.bincount(uc.cat[two], weights=uc.count[two], minlength=q).astype(np.float64)
    return CategoryAgreement(
        categories=r.categories, kappa=kappa, specific_agreement=specific, n_ratings=n_rat
    )
