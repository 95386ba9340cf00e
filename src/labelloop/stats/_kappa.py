"""Two-rater kappa, the pairwise annotator × annotator matrix, and leave-one-out agreement.

Cohen's kappa (Cohen 1960; weighted: Cohen 1968) on the ``q × q`` table ``p`` of the
items both annotators rated, with agreement weights ``w`` (identity, linear or
quadratic on category values, or a custom matrix):
``kappa = (p_o - p_e) / (1 - p_e)``, ``p_o = sum_kl w_kl p_kl``,
``p_e = sum_kl w_kl p_k. p_.l``.
Large-sample variance (Fleiss, Cohen & Everitt 1969):
``var = [sum_kl p_kl (w_kl - (wbar_k. + wbar_.l)(1 - kappa))^2 - (kappa - p_e (1 - kappa))^2] / (n (1 - p_e)^2)``
with ``wbar_k. = sum_l p_.l w_kl`` and ``wbar_.l = sum_k p_k. w_kl``; the interval is
``kappa ± z se``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy import stats as sps

from labelloop.stats._agree_common import (
    AgreementResult,
    WeightSpec,
    check_confidence,
    one_rating_per_pair,
    require_ratings,
    weight_matrix,
    weights_name,
)
from labelloop.stats._data import FloatArray, IntArray, Level, Ratings
from labelloop.stats.intervals import bootstrap_items


def _kappa_from_cells(
    rows: IntArray, cols: IntArray, cnt: FloatArray, q: int, w: FloatArray | None
) -> tuple[float, float, float, float]:
    """Kappa, its standard error, p_o and p_e from the non-zero cells of a ``q × q`` table."""
    n = float(cnt.sum())
    p = cnt / n
    pr: FloatArray = np.bincount(rows, weights=p, minlength=q).astype(np.float64)  # rater 1
    pc: FloatArray = np.bincount(cols, weights=p, minlength=q).astype(np.float64)  # rater 2
    if w is None:
        po = float(p[rows == cols].sum())
        pe = float(pr @ pc)
        w_cells = (rows == cols).astype(np.float64)
        wbar_row, wbar_col = pc, pr
    else:
        w_cells = w[rows, cols]
        po = float((p * w_cells).sum())
        pe = float(pr @ w @ pc)
        wbar_row = w @ pc
        wbar_col = pr @ w
    if not pe < 1.0:
        return float("nan"), float("nan"), po, pe
    kappa = (po - pe) / (1.0 - pe)
    term = (p * (w_cells - (wbar_row[rows] + wbar_col[cols]) * (1.0 - kappa)) ** 2).sum()
    var = (term - (kappa - pe * (1.0 - kappa)) ** 2) / ((1.0 - pe) ** 2 * n)
    return float(kappa), float(np.sqrt(max(var, 0.0))), po, pe


def _pick_pair(r: Ratings, pair: tuple[Any, Any] | None) -> tuple[int, int]:
    present = np.flatnonzero(r.annotator_counts)
    if pair is None:
        if len(present) != 2:
            raise ValueError(
                f"Cohen's kappa compares two annotators; the data have {len(present)} "
                "(pass pair=(a, b), or use pairwise_kappa / fleiss_kappa)"
            )
        return int(present[0]), int(present[1])
    ids = r.annotators.tolist()
    out = []
    for a in pair:
        if a not in ids:
            raise ValueError(f"annotator {a!r} not found")
        out.append(ids.index(a))
    if out[0] == out[1]:
        raise ValueError("pair must name two different annotators")
    return out[0], out[1]


def cohen_kappa(
    r: Ratings,
    *,
    pair: tuple[Any, Any] | None = None,
    weights: WeightSpec = "identity",
    confidence: float = 0.95,
    n_boot: int = 0,
    seed: int | np.random.Generator | None = None,
) -> AgreementResult:
    """Cohen's kappa between two annotators on the items both rated.

    Weighted on category *values* in the declared order (unused declared categories
    still count; scikit-learn's ``weights="linear"`` uses label positions and drops
    unused labels unless ``labels=`` is given). Analytic SE and normal interval, or an
    item bootstrap with ``n_boot > 0``.
    """
    require_ratings(r)
    check_confidence(confidence)
    a, b = _pick_pair(r, pair)
    q = r.n_categories
    w = weight_matrix(r, weights)
    la = np.full(r.n_items, -1, dtype=np.int64)
    lb = np.full(r.n_items, -1, dtype=np.int64)
    ma, mb = r.annotator == a, r.annotator == b
    la[r.item[ma]] = r.label[ma]
    lb[r.item[mb]] = r.label[mb]
    if np.count_nonzero(la >= 0) != np.count_nonzero(ma) or np.count_nonzero(
        lb >= 0
    ) != np.count_nonzero(mb):
        raise ValueError(
            "Cohen's kappa needs one rating per annotator and item; some annotator rated an item "
            "more than once (deduplicate or adjudicate first)"
        )
    both = (la >= 0) & (lb >= 0)
    n = int(both.sum())
    if n == 0:
        raise ValueError("the two annotators share no item")
    key = la[both] * q + lb[both]
    if q * q <= 4 * n + 4096:
        full = np.bincount(key, minlength=q * q)
        cells = np.flatnonzero(full)
        cnt = full[cells]
    else:
        cells, cnt = np.unique(key, return_counts=True)
    value, se, po, pe = _kappa_from_cells(cells // q, cells % q, cnt.astype(np.float64), q, w)
    ci: tuple[float, float] | None = None
    se_out: float | None = se if np.isfinite(se) else None
    ci_method: str | None = None
    details: dict[str, Any] = {
        "weights": weights_name(weights),
        "pair": (r.annotators[a], r.annotators[b]),
    }
    if n_boot > 0 and n < 2:
        details["bootstrap"] = "skipped: fewer than two shared items"
    elif n_boot > 0:
        if q * q > 1_000_000:
            raise ValueError("bootstrap of Cohen's kappa supports up to 1,000 categories")
        cell_idx = np.searchsorted(cells, key)
        per = sp.csr_matrix((np.ones(n), (np.arange(n), cell_idx)), shape=(n, len(cells)))
        rows_c, cols_c = cells // q, cells % q
        w_c = (rows_c == cols_c).astype(np.float64) if w is None else w[rows_c, cols_c]
        wm = np.eye(q) if w is None else w
        to_row = np.zeros((len(cells), q))
        to_row[np.arange(len(cells)), rows_c] = 1.0  # cell -> rater-1 category
        to_col = np.zeros((len(cells), q))
        to_col[np.arange(len(cells)), cols_c] = 1.0  # cell -> rater-2 category

        def stat(s: FloatArray) -> FloatArray:
            p = s / s.sum(axis=1, keepdims=True)
            po_b = p @ w_c
            pe_b = np.einsum("bk,kl,bl->b", p @ to_row, wm, p @ to_col)
            return np.where(pe_b < 1.0, (po_b - pe_b) / (1.0 - pe_b), np.nan)

        boot = bootstrap_items(per, stat, n_boot=n_boot, confidence=confidence, seed=seed)
        ci, se_out, ci_method = boot.ci, boot.se, "bootstrap-items"
    elif np.isfinite(value) and se_out is not None:
        z = float(sps.norm.ppf(0.5 + confidence / 2.0))
        ci = (value - z * se_out, value + z * se_out)
        ci_method = "analytic"
    return AgreementResult(
        name="cohen_kappa",
        value=value,
        ci=ci,
        se=se_out,
        n_items=n,
        n_annotators=2,
        n_pairable=2 * n,
        observed=po,
        expected=pe,
        confidence=confidence,
        ci_method=ci_method,
        details=details,
    )


@dataclass(frozen=True)
class PairwiseAgreement:
    """Annotator × annotator agreement.

    Attributes:
        annotators: annotator ids (rows and columns).
        kappa: Cohen's kappa of each pair on their shared items (``nan`` without overlap
            or without variation); the diagonal is each annotator with itself.
        percent_agreement: (weighted) share of shared items on which the pair agrees.
        n_overlap: number of items both rated.
    """

    annotators: Any
    kappa: FloatArray
    percent_agreement: FloatArray
    n_overlap: IntArray


def pairwise_kappa(r: Ratings, *, weights: WeightSpec = "identity") -> PairwiseAgreement:
    """Cohen's kappa for every pair of annotators at once, from sparse contingency counts.

    With the one-hot matrix ``X`` (items × (annotator, category)) and the coverage matrix
    ``Y`` (items × annotator), ``X^T X`` holds every pair's contingency table and
    ``X^T Y`` every pair's marginals on their shared items, so the cost is
    ``sum_i r_i^2`` (ratings per item squared) rather than a loop over pairs.
    """
    require_ratings(r)
    one_rating_per_pair(r, "pairwise kappa")
    q = r.n_categories
    na = r.n_annotators
    w = weight_matrix(r, weights)
    n_it = r.n_items
    ones = np.ones(r.n_ratings)
    x = sp.csr_matrix((ones, (r.item, r.annotator * q + r.label)), shape=(n_it, na * q))
    y = sp.csr_matrix((ones, (r.item, r.annotator)), shape=(n_it, na))
    overlap = np.asarray((y.T @ y).todense())
    cont = sp.coo_matrix(x.T @ x)
    ra, ka = cont.row // q, cont.row % q
    rb, kb = cont.col // q, cont.col % q
    wc = (ka == kb).astype(np.float64) if w is None else w[ka, kb]
    agree = np.bincount(ra * na + rb, weights=cont.data * wc, minlength=na * na).reshape(na, na)
    marg = sp.coo_matrix(x.T @ y)  # ((a, c), b) -> items both rated where a said c
    ma, mc, mb = marg.row // q, marg.row % q, marg.col
    if w is None:
        key = (ma * na + mb) * q + mc
        partner = (mb * na + ma) * q + mc
        order = np.argsort(key)
        skey = key[order]
        pos = np.searchsorted(skey, partner)
        pos = np.minimum(pos, len(skey) - 1)
        hit = skey[pos] == partner
        prod = np.where(hit, marg.data * marg.data[order][pos], 0.0)
        chance = np.bincount(ma * na + mb, weights=prod, minlength=na * na).reshape(na, na)
    else:
        if na * na * q > 50_000_000:
            raise ValueError(
                "weighted pairwise kappa supports up to 50,000,000 annotator² × categories"
            )
        dense = np.zeros((na, na, q))
        np.add.at(dense, (ma, mb, mc), marg.data)
        chance = np.einsum("abk,kl,bal->ab", dense, w, dense)
    with np.errstate(divide="ignore", invalid="ignore"):
        nn = overlap.astype(np.float64)
        po = np.where(nn > 0, agree / nn, np.nan)
        pe = np.where(nn > 0, chance / (nn * nn), np.nan)
        kappa = np.where(pe < 1.0, (po - pe) / (1.0 - pe), np.nan)
    return PairwiseAgreement(
        annotators=r.annotators,
        kappa=kappa,
        percent_agreement=po,
        n_overlap=overlap.astype(np.int64),
    )


@dataclass(frozen=True)
class AnnotatorAgreement:
    """Agreement of each annotator with the rest (leave-one-out).

    Attributes:
        annotators: annotator ids.
        n_items: items the annotator shares with at least one other annotator.
        percent_agreement: mean over those items of the share of *other* ratings that
            equal the annotator's.
        kappa: ``(p_o - p_e) / (1 - p_e)`` with ``p_e = sum_c a_c o_c``: ``a_c`` the
            annotator's label distribution and ``o_c`` that of the others on the same items.
        alpha_without: Krippendorff's alpha of the data with the annotator removed
            (compare with the full alpha: a rise flags the annotator).
    """

    annotators: Any
    n_items: IntArray
    percent_agreement: FloatArray
    kappa: FloatArray
    alpha_without: FloatArray


def leave_one_out(r: Ratings, *, alpha_level: Level | None = None) -> AnnotatorAgreement:
    """Each annotator against the other annotators of the same items (nominal agreement)."""
    from labelloop.stats._alpha import krippendorff_alpha

    require_ratings(r)
    one_rating_per_pair(r, "leave-one-out agreement")
    q = r.n_categories
    na = r.n_annotators
    m = np.bincount(r.item, minlength=r.n_items).astype(np.float64)
    nuc_key = r.item.astype(np.int64) * q + r.label
    keys, inv, cnt = np.unique(nuc_key, return_inverse=True, return_counts=True)
    same = cnt[inv].astype(np.float64) - 1.0  # other ratings equal to this one
    others = m[r.item] - 1.0
    ok = others > 0
    ann = r.annotator[ok]
    frac = same[ok] / others[ok]
    n_shared = np.bincount(ann, minlength=na)
    with np.errstate(divide="ignore", invalid="ignore"):
        po = np.bincount(ann, weights=frac, minlength=na) / n_shared
        own = np.bincount(ann * q + r.label[ok], minlength=na * q).reshape(na, q).astype(np.float64)
        own /= n_shared[:, None]
        # others' distribution on the annotator's items: per item counts minus own rating
        it_ok = r.item[ok]
        lo = np.searchsorted(keys, it_ok * q)
        hi = np.searchsorted(keys, it_ok * q + q)
        reps = hi - lo
        rows = np.repeat(np.arange(len(it_ok)), reps)
        kidx = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps) + np.repeat(lo, reps)
        cats = keys[kidx] % q
        c = cnt[kidx].astype(np.float64) - (cats == r.label[ok][rows])
        wgt = c / others[ok][rows]
        oth = np.bincount(ann[rows] * q + cats, weights=wgt, minlength=na * q).astype(np.float64)
        oth = oth.reshape(na, q)
        oth /= n_shared[:, None]
        pe = (own * oth).sum(axis=1)
        kappa = np.where(pe < 1.0, (po - pe) / (1.0 - pe), np.nan)
    alpha_wo = np.full(na, np.nan)
    lvl = alpha_level or r.level
    for a in np.flatnonzero(n_shared):
        sub = r.subset(r.annotator != a)
        with contextlib.suppress(ValueError):  # e.g. nothing pairable left
            alpha_wo[a] = krippendorff_alpha(sub, level=lvl).value
    return AnnotatorAgreement(
        annotators=r.annotators,
        n_items=n_shared.astype(np.int64),
        percent_agreement=po,
        kappa=kappa,
        alpha_without=alpha_wo,
    )
