"""Krippendorff's alpha in coincidence form, without a values × values matrix.

``alpha = 1 - D_o / D_e = 1 - (n - 1) sum_ck o_ck delta_ck / sum_ck n_c n_k delta_ck``
(Krippendorff 2011, "Computing Krippendorff's alpha-reliability"; 2019, ch. 12), where
the coincidence ``o_ck = sum_u (number of c-k pairs of values in unit u) / (m_u - 1)``
counts ordered pairs of values by different coders within each unit ``u`` holding
``m_u >= 2`` values, ``n_c = sum_k o_ck`` and ``n = sum_c n_c`` is the number of
pairable values. Units with fewer than two values are dropped (missing data).

Each metric is reduced to per-unit sums, so memory is linear in the data:

* nominal (``delta = [c != k]``): ``sum o delta = n - sum_u sum_c n_uc (n_uc - 1) / (m_u - 1)``
  and ``sum n_c n_k delta = n^2 - sum_c n_c^2``.
* interval (``delta = (c - k)^2``): ``sum o delta = 2 sum_u m_u/(m_u - 1) SS_u`` with the
  within-unit sum of squares ``SS_u``, and ``sum n_c n_k delta = 2 n SS`` with the
  total sum of squares of the pairable values.
* ordinal: ``delta_ck = (sum_{g=c..k} n_g - (n_c + n_k)/2)^2 = (R_k - R_c)^2`` with the
  mid-rank ``R_c = sum_{g<c} n_g + n_c / 2``, i.e. interval alpha on mid-ranks.
* ratio (``delta = ((c - k)/(c + k))^2``, non-negative values): the observed part sums the
  pairs inside each unit; the expected part uses
  ``sum_ij x_i x_j / (x_i + x_j)^2 = int_0^inf t F(t)^2 dt`` with
  ``F(t) = sum_i x_i exp(-t x_i)``, integrated by the trapezoid rule in ``log t``
  (error below 1e-13 relative: the integrand is analytic in a strip of half-width
  pi/2), which is ``O(n)`` per node instead of ``O(V^2)``.

Multi-label (sets) and text spans are in :func:`set_alpha` and :func:`span_alpha`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from labelloop.stats._agree_common import (
    AgreementResult,
    check_confidence,
    require_ratings,
    sizes,
)
from labelloop.stats._data import LEVELS, FloatArray, IntArray, Level, Ratings
from labelloop.stats.intervals import bootstrap_items, krippendorff_bootstrap

Bootstrap = Literal["krippendorff", "items"]


# --------------------------------------------------------------------- helpers
def _pairable(r: Ratings) -> tuple[IntArray, IntArray, FloatArray]:
    """Compacted unit code, category code and unit size of every pairable rating."""
    m_all = r.item_counts
    is_pairable = m_all >= 2
    m = m_all[is_pairable].astype(np.float64)
    if len(m) == len(m_all):  # every item pairable: codes are already compact
        return r.item, r.label, m
    lookup = np.cumsum(is_pairable) - 1
    keep = is_pairable[r.item]
    return lookup[r.item[keep]], r.label[keep], m


def _unit_pairs(unit: IntArray, m: FloatArray) -> tuple[IntArray, IntArray]:
    """Indices (i, j), i != j, of every ordered pair of ratings in the same unit."""
    order = np.argsort(unit, kind="stable")
    mi = m.astype(np.int64)
    start = np.concatenate([[0], np.cumsum(mi)[:-1]])
    size_row = mi[unit[order]]  # unit size of each sorted rating
    total = int((size_row).sum())
    i_sorted = np.repeat(np.arange(len(order)), size_row)
    offs = np.arange(total) - np.repeat(np.cumsum(size_row) - size_row, size_row)
    j_sorted = start[unit[order]][i_sorted] + offs
    keep = j_sorted != i_sorted
    return order[i_sorted[keep]], order[j_sorted[keep]]


def _ratio_cross(x: FloatArray, wts: FloatArray) -> FloatArray | float:
    """``sum_ij w_i w_j x_i x_j / (x_i + x_j)^2`` over positive ``x`` (see module docstring).

    ``wts`` may be 1-D (one set) or 2-D ``B × len(x)`` (one set per row).
    """
    pos = x > 0
    x = x[pos]
    w2 = np.atleast_2d(wts)[:, pos]
    if len(x) == 0:
        return np.zeros(w2.shape[0]) if np.ndim(wts) == 2 else 0.0
    scale = float(x.max())
    xs = x / scale  # the sum is scale-free
    lo = np.log(1e-9)  # t * max(x) = 1e-9: integrand ~ t (sum)^2 there, contributes < 1e-18
    hi = np.log(40.0 / float(xs.min()))  # exp(-2 t min(x)) < 1e-34 beyond
    h = 0.25
    s_nodes = np.arange(lo, hi + h, h)
    total = np.zeros(w2.shape[0])
    for s in s_nodes:
        t = np.exp(s)
        f = w2 @ (xs * np.exp(-t * xs))
        total += t * t * f * f  # dt = t ds
    out = total * h
    return out if np.ndim(wts) == 2 else float(out[0])


def _mid_ranks(n_c: FloatArray) -> FloatArray:
    return np.cumsum(n_c) - n_c / 2.0


# ----------------------------------------------------------------- point value
def _nominal_parts(r: Ratings) -> dict[str, Any]:
    """Nominal sums from the units × categories counts ``n_uc`` (one bincount)."""
    q = r.n_categories
    n_it = r.n_items
    if n_it * q <= 4 * r.n_ratings + 4096:  # dense items × categories counts
        cnt = np.bincount(r.item * q + r.label, minlength=n_it * q).reshape(n_it, q)
        m_all = r.item_counts
        pair = m_all >= 2
        m = m_all[pair].astype(np.float64)
        sq = np.einsum("uc,uc->u", cnt, cnt)[pair]  # sum_c n_uc^2
        agree = float(((sq - m) / (m - 1.0)).sum())  # sum_c n_uc (n_uc - 1) = sq - m_u
        single = m_all == 1  # few: subtract them instead of copying the pairable rows
        n_c = (cnt.sum(axis=0) - cnt[single].sum(axis=0)).astype(np.float64)
    else:
        unit, lab, m = _pairable(r)
        keys, cnt1 = np.unique(unit * q + lab, return_counts=True)
        cntf = cnt1.astype(np.float64)
        agree = float((cntf * (cntf - 1.0) / (m[keys // q] - 1.0)).sum())
        n_c = np.bincount(lab, minlength=q).astype(np.float64)
    n = float(n_c.sum())
    return {"obs": n - agree, "exp": n * n - float((n_c * n_c).sum()), "n": n}


def _alpha_parts(r: Ratings, level: Level) -> dict[str, Any]:
    """Observed and expected disagreement sums (``sum o delta``, ``sum n_c n_k delta``)."""
    q = r.n_categories
    if level == "nominal":
        return _nominal_parts(r)
    unit, lab, m = _pairable(r)
    n = float(len(lab))
    mu = m[unit]
    if level == "ordinal":
        n_c = np.bincount(lab, minlength=q).astype(np.float64)
        v = _mid_ranks(n_c)[lab]
    else:
        v = r.require_numeric()[lab]
    if level == "ratio":
        if (v < 0).any():
            raise ValueError("ratio alpha needs non-negative values")
        i, j = _unit_pairs(unit, m)
        a, b = v[i], v[j]
        s = a + b
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(s > 0, ((a - b) / np.where(s > 0, s, 1.0)) ** 2, 0.0)
        obs = float((d / (mu[i] - 1.0)).sum())
        n0 = float((v == 0).sum())
        vals, inv = np.unique(v, return_inverse=True)
        wv = np.bincount(inv).astype(np.float64)
        cross = _ratio_cross(vals, wv)
        exp = n * n - n0 * n0 - 4.0 * float(cross)
        return {"obs": obs, "exp": exp, "n": n, "unit": unit, "lab": lab, "m": m, "v": v}
    # interval (and ordinal on mid-ranks): sums of squares
    nu = len(m)
    mean_u = np.bincount(unit, weights=v, minlength=nu) / m
    ss_u = np.bincount(unit, weights=(v - mean_u[unit]) ** 2, minlength=nu)
    obs = float((2.0 * m / (m - 1.0) * ss_u).sum())
    exp = 2.0 * n * float(((v - v.mean()) ** 2).sum())
    return {"obs": obs, "exp": exp, "n": n, "unit": unit, "lab": lab, "m": m, "v": v}


def _value(obs: float, exp: float, n: float) -> float:
    if not exp > 0:
        return float("nan")
    return 1.0 - (n - 1.0) * obs / exp


def krippendorff_alpha(
    r: Ratings,
    *,
    level: Level | None = None,
    confidence: float = 0.95,
    n_boot: int = 0,
    bootstrap: Bootstrap = "items",
    seed: int | np.random.Generator | None = None,
) -> AgreementResult:
    """Krippendorff's alpha for nominal, ordinal, interval or ratio data with missing values.

    Args:
        r: ratings; ``level`` defaults to ``r.level`` (note: the ``krippendorff`` package
            defaults to interval -- here the level is always explicit in the data).
        n_boot: bootstrap resamples for the interval (0: no interval; alpha has no
            analytic standard error in general).
        bootstrap: ``"items"`` (default: resample units, keeping their values together) or
            ``"krippendorff"`` (Hayes & Krippendorff 2007: draw ``min(25 Q, (m - 1) n / 2)``
            pairs from the coincidence matrix with the expected disagreement fixed; its cap
            makes intervals wide on large data -- kept for comparability with KALPHA).

    Returns ``nan`` when the pairable values show no variation at all (``D_e = 0``).
    """
    require_ratings(r)
    check_confidence(confidence)
    lvl: Level = r.level if level is None else level
    if lvl not in LEVELS:
        raise ValueError(f"unknown level {lvl!r}; expected one of {', '.join(LEVELS)}")
    if bootstrap not in ("krippendorff", "items"):
        raise ValueError(f"bootstrap must be 'krippendorff' or 'items', got {bootstrap!r}")
    n_items, n_ann, n_pairable = sizes(r)
    parts = _alpha_parts(r, lvl)
    n = parts["n"]
    value = _value(parts["obs"], parts["exp"], n)
    d_o = parts["obs"] / n
    d_e = parts["exp"] / (n * (n - 1.0))
    ci: tuple[float, float] | None = None
    se: float | None = None
    ci_method: str | None = None
    details: dict[str, Any] = {"level": lvl, "D_o": d_o, "D_e": d_e}
    if n_boot > 0 and "unit" not in parts:
        parts.update(zip(("unit", "lab", "m"), _pairable(r), strict=True))
    if n_boot > 0 and len(parts["m"]) < 2:
        details["bootstrap"] = "skipped: fewer than two pairable items"
    elif n_boot > 0:
        if bootstrap == "krippendorff":
            delta, mass = _pair_distribution(r, lvl, parts)
            boot = krippendorff_bootstrap(
                delta,
                mass,
                n_pairable=int(n),
                n_coders=n_ann,
                expected_disagreement=d_e,
                n_boot=n_boot,
                confidence=confidence,
                seed=seed,
            )
            ci_method = "bootstrap-krippendorff"
        else:
            per_item, stat = _item_stats(r, lvl, parts)
            boot = bootstrap_items(per_item, stat, n_boot=n_boot, confidence=confidence, seed=seed)
            ci_method = "bootstrap-items"
        ci, se = boot.ci, boot.se
        details["n_undefined_resamples"] = boot.n_undefined
    return AgreementResult(
        name="krippendorff_alpha",
        value=value,
        ci=ci,
        se=se,
        n_items=n_items,
        n_annotators=n_ann,
        n_pairable=n_pairable,
        observed=1.0 - d_o,
        expected=1.0 - d_e,
        confidence=confidence,
        ci_method=ci_method,
        details=details,
    )


# ------------------------------------------------------------------ bootstraps
def _pair_distribution(
    r: Ratings, level: Level, parts: dict[str, Any]
) -> tuple[FloatArray, FloatArray]:
    """Disagreement and mass ``o_ck`` of every non-empty cell of the coincidence matrix.

    Built sparse as ``o = N^T diag(1/(m_u - 1)) N - diag(sum_u n_uc / (m_u - 1))`` from the
    units × values count matrix ``N``, so only co-occurring value pairs are stored.
    """
    unit, lab, m = parts["unit"], parts["lab"], parts["m"]
    q = r.n_categories
    nu = len(m)
    mat = sp.csr_matrix((np.ones(len(lab)), (unit, lab)), shape=(nu, q))
    inv = sp.diags(1.0 / (m - 1.0))
    o = sp.coo_matrix(mat.T @ inv @ mat)
    diag_fix = np.asarray((inv @ mat).sum(axis=0)).ravel()
    mass = o.data.astype(np.float64).copy()
    on_diag = o.row == o.col
    mass[on_diag] -= diag_fix[o.row[on_diag]]
    mass[np.abs(mass) < 1e-12] = 0.0
    if level == "nominal":
        delta = (~on_diag).astype(np.float64)
    elif level == "ordinal":
        x = _mid_ranks(np.bincount(lab, minlength=q).astype(np.float64))
        delta = (x[o.row] - x[o.col]) ** 2
    else:
        x = r.require_numeric()
        a, b = x[o.row], x[o.col]
        if level == "ratio":
            s = a + b
            delta = np.where(s > 0, ((a - b) / np.where(s > 0, s, 1.0)) ** 2, 0.0)
        else:
            delta = (a - b) ** 2
    return delta, mass


def _item_stats(
    r: Ratings, level: Level, parts: dict[str, Any]
) -> tuple[FloatArray | sp.csr_matrix, Callable[[FloatArray], FloatArray]]:
    """Per-unit additive statistics and the vectorised alpha of their sums."""
    unit, lab, m = parts["unit"], parts["lab"], parts["m"]
    nu = len(m)
    q = r.n_categories
    if level == "nominal":
        keys, cnt = np.unique(unit * q + lab, return_counts=True)
        cntf = cnt.astype(np.float64)
        ku = keys // q
        agree_u = np.bincount(ku, weights=cntf * (cntf - 1.0) / (m[ku] - 1.0), minlength=nu)
        nuc = sp.csr_matrix((cntf, (ku, keys % q)), shape=(nu, q))
        per = sp.hstack([sp.csr_matrix(np.column_stack([m, agree_u])), nuc], format="csr")

        def nominal(s: FloatArray) -> FloatArray:
            n = s[:, 0]
            exp = n * n - (s[:, 2:] ** 2).sum(axis=1)
            return np.where(exp > 0, 1.0 - (n - 1.0) * (n - s[:, 1]) / exp, np.nan)

        return per, nominal
    if level == "interval":
        v = parts["v"] - parts["v"].mean()
        s1 = np.bincount(unit, weights=v, minlength=nu)
        s2 = np.bincount(unit, weights=v * v, minlength=nu)
        mean_u = s1 / m
        ss_u = np.bincount(unit, weights=(v - mean_u[unit]) ** 2, minlength=nu)
        obs_u = 2.0 * m / (m - 1.0) * ss_u
        per_d = np.column_stack([m, obs_u, s1, s2])

        def interval(s: FloatArray) -> FloatArray:
            n = s[:, 0]
            exp = 2.0 * (n * s[:, 3] - s[:, 2] ** 2)
            return np.where(exp > 0, 1.0 - (n - 1.0) * s[:, 1] / exp, np.nan)

        return per_d, interval
    if level == "ordinal":
        if q * q > 250_000:
            raise ValueError(
                "item bootstrap of ordinal alpha supports up to 500 categories; "
                "use bootstrap='krippendorff'"
            )
        # per-unit coincidences (q*q columns) and per-unit category counts
        i, j = _unit_pairs(unit, m)
        w = 1.0 / (m[unit[i]] - 1.0)
        per_o = sp.csr_matrix((w, (unit[i], lab[i] * q + lab[j])), shape=(nu, q * q))
        per_n = sp.csr_matrix((np.ones(len(lab)), (unit, lab)), shape=(nu, q))
        per = sp.hstack([per_o, per_n], format="csr")

        def ordinal(s: FloatArray) -> FloatArray:
            o = s[:, : q * q].reshape(-1, q, q)
            n_c = s[:, q * q :]
            rk = np.cumsum(n_c, axis=1) - n_c / 2.0
            d = (rk[:, :, None] - rk[:, None, :]) ** 2
            n = n_c.sum(axis=1)
            obs = (o * d).sum(axis=(1, 2))
            exp = np.einsum("bc,bck,bk->b", n_c, d, n_c)
            return np.where(exp > 0, 1.0 - (n - 1.0) * obs / exp, np.nan)

        return per, ordinal
    # ratio
    v = parts["v"]
    i, j = _unit_pairs(unit, m)
    a, b = v[i], v[j]
    ssum = a + b
    d = np.where(ssum > 0, ((a - b) / np.where(ssum > 0, ssum, 1.0)) ** 2, 0.0)
    obs_u = np.bincount(unit[i], weights=d / (m[unit[i]] - 1.0), minlength=nu)
    vals, inv = np.unique(v, return_inverse=True)
    if len(vals) > 20_000:
        raise ValueError(
            "item bootstrap of ratio alpha supports up to 20,000 distinct values; "
            "use bootstrap='krippendorff'"
        )
    per_v = sp.csr_matrix((np.ones(len(v)), (unit, inv)), shape=(nu, len(vals)))
    zero = (vals == 0).astype(np.float64)
    per = sp.hstack([sp.csr_matrix(np.column_stack([m, obs_u])), per_v], format="csr")

    def ratio(s: FloatArray) -> FloatArray:
        n = s[:, 0]
        wv = s[:, 2:]
        n0 = wv @ zero
        cross = np.asarray(_ratio_cross(vals, wv))
        exp = n * n - n0 * n0 - 4.0 * cross
        return np.where(exp > 0, 1.0 - (n - 1.0) * s[:, 1] / exp, np.nan)

    return per, ratio


# ------------------------------------------------------------ sets and spans
SetDistance = Literal["masi", "jaccard"]


def _set_distance(a: frozenset[Hashable], b: frozenset[Hashable], kind: SetDistance) -> float:
    if not a and not b:
        return 0.0
    inter = len(a & b)
    union = len(a | b)
    jac = inter / union
    if kind == "jaccard":
        return 1.0 - jac
    if a == b:
        mono = 1.0
    elif a <= b or b <= a:
        mono = 2.0 / 3.0
    elif inter:
        mono = 1.0 / 3.0
    else:
        mono = 0.0
    return 1.0 - jac * mono


def set_alpha(
    items: Sequence[Hashable],
    annotators: Sequence[Hashable],
    labels: Sequence[Iterable[Hashable]],
    *,
    distance: SetDistance | Callable[[frozenset[Hashable], frozenset[Hashable]], float] = "masi",
) -> AgreementResult:
    """Krippendorff's alpha for multi-label annotations with a set distance.

    Each rating is a *set* of labels; ``delta(A, B)`` is the MASI distance
    ``1 - J(A, B) M(A, B)`` (Passonneau 2006; ``J`` Jaccard, ``M`` = 1 equal, 2/3 subset,
    1/3 overlap, 0 disjoint) or the Jaccard distance ``1 - |A ∩ B| / |A ∪ B|``. Alpha is
    ``1 - (n - 1) sum_ck o_ck delta_ck / sum_ck n_c n_k delta_ck`` over the distinct sets
    (the metric is not a sum of squares, so this is quadratic in the number of
    *distinct sets*, which is small in practice). Empty sets are allowed values.
    """
    sets = [frozenset(x) for x in labels]
    if not (len(items) == len(annotators) == len(sets)):
        raise ValueError("items, annotators and labels must have equal lengths")
    codes: dict[frozenset[Hashable], int] = {}
    lab = np.fromiter(
        (codes.setdefault(s, len(codes)) for s in sets), dtype=np.int64, count=len(sets)
    )
    distinct = list(codes)
    cat_ids = np.arange(len(distinct))
    r = Ratings.from_long(list(items), list(annotators), lab, categories=cat_ids.tolist())
    require_ratings(r)
    n_items, n_ann, n_pairable = sizes(r)
    fn: Callable[[frozenset[Hashable], frozenset[Hashable]], float]
    if callable(distance):
        fn = distance
    elif distance in ("masi", "jaccard"):
        kind: SetDistance = distance

        def fn(a: frozenset[Hashable], b: frozenset[Hashable]) -> float:
            return _set_distance(a, b, kind)
    else:
        raise ValueError(
            f"unknown set distance {distance!r}; expected 'masi', 'jaccard' or a function"
        )
    k = len(distinct)
    delta = np.array([[fn(a, b) for b in distinct] for a in distinct], dtype=np.float64).reshape(
        k, k
    )
    res = _alpha_from_delta(r, delta)
    return AgreementResult(
        name="krippendorff_alpha_sets",
        value=res[0],
        ci=None,
        se=None,
        n_items=n_items,
        n_annotators=n_ann,
        n_pairable=n_pairable,
        observed=1.0 - res[1],
        expected=1.0 - res[2],
        details={
            "distance": distance if isinstance(distance, str) else "custom",
            "n_distinct_sets": k,
        },
    )


def _alpha_from_delta(r: Ratings, delta: FloatArray) -> tuple[float, float, float]:
    """Alpha, D_o and D_e from a full category × category disagreement matrix."""
    unit, lab, m = _pairable(r)
    q = r.n_categories
    mat = sp.csr_matrix((np.ones(len(lab)), (unit, lab)), shape=(len(m), q))
    inv = sp.diags(1.0 / (m - 1.0))
    o = np.asarray((mat.T @ inv @ mat).todense())
    o -= np.diag(np.asarray((inv @ mat).sum(axis=0)).ravel())
    n_c = o.sum(axis=1)
    n = float(n_c.sum())
    obs = float((o * delta).sum())
    exp = float(n_c @ delta @ n_c)
    return _value(obs, exp, n), obs / n, exp / (n * (n - 1.0)) if n > 1 else float("nan")


def span_alpha(
    spans: Iterable[tuple[Hashable, Hashable, int, int, Hashable]],
    *,
    doc_lengths: dict[Hashable, int],
    annotators: Sequence[Hashable] | None = None,
    confidence: float = 0.95,
    n_boot: int = 0,
    seed: int | np.random.Generator | None = None,
) -> AgreementResult:
    """Token-level nominal alpha for text spans.

    Unitising choice: every *token* of every document is a unit; each annotator's value
    for a token is the label of the span covering it, or ``"O"`` (outside) when none
    does. Every annotator in ``annotators`` (default: all who marked a span) is taken to
    have read every document in ``doc_lengths``, so unmarked tokens are agreement on
    "no span". Overlapping spans by one annotator: the later span wins. This is simpler
    than Krippendorff's unitizing alpha (u-alpha, 1995/2004), which works on continuous
    segments, but it is exact, linear in tokens and rewards boundary agreement token by token.

    Args:
        spans: ``(document, annotator, start, end, label)`` with token offsets, ``end``
            exclusive.
        doc_lengths: number of tokens of each document.
        n_boot: resamples of a *document* bootstrap (tokens within a document are not
            independent, so whole documents are resampled).
    """
    rows = list(spans)
    anns = sorted({a for _, a, *_ in rows}, key=repr) if annotators is None else list(annotators)
    if len(anns) < 2:
        raise ValueError("span agreement needs at least two annotators")
    docs = list(doc_lengths)
    doc_index = {d: i for i, d in enumerate(docs)}
    ann_index = {a: i for i, a in enumerate(anns)}
    offsets = np.concatenate([[0], np.cumsum([int(doc_lengths[d]) for d in docs])]).astype(np.int64)
    n_tok = int(offsets[-1])
    label_codes: dict[Hashable, int] = {"O": 0}
    grid = np.zeros((len(anns), n_tok), dtype=np.int64)
    for k, (doc, ann, start, end, lab) in enumerate(rows):
        if doc not in doc_index:
            raise ValueError(f"span {k}: document {doc!r} is not in doc_lengths")
        if ann not in ann_index:
            raise ValueError(f"span {k}: annotator {ann!r} is not among the annotators")
        length = int(doc_lengths[doc])
        if not 0 <= start < end <= length:
            raise ValueError(
                f"span {k}: offsets [{start}, {end}) outside document of {length} tokens"
            )
        code = label_codes.setdefault(lab, len(label_codes))
        base = offsets[doc_index[doc]]
        grid[ann_index[ann], base + start : base + end] = code
    a_idx, t_idx = np.nonzero(np.ones_like(grid, dtype=bool))
    r = Ratings.from_long(
        t_idx.astype(np.int64),
        a_idx.astype(np.int64),
        grid[a_idx, t_idx],
        categories=list(range(len(label_codes))),
    )
    check_confidence(confidence)
    res = krippendorff_alpha(r, level="nominal")
    ci: tuple[float, float] | None = None
    se: float | None = None
    details: dict[str, Any] = {"unit": "token", "n_labels": len(label_codes) - 1}
    if n_boot > 0 and len(docs) < 2:
        details["bootstrap"] = "skipped: fewer than two documents"
    elif n_boot > 0:
        # tokens of a document are not independent: resample whole documents (cluster
        # bootstrap) by summing the per-token sufficient statistics per document
        parts = _alpha_parts(r, "nominal")
        parts.update(zip(("unit", "lab", "m"), _pairable(r), strict=True))
        per_tok, stat = _item_stats(r, "nominal", parts)
        doc_of_tok = np.repeat(np.arange(len(docs)), np.diff(offsets))
        to_doc = sp.csr_matrix(
            (np.ones(n_tok), (doc_of_tok, np.arange(n_tok))), shape=(len(docs), n_tok)
        )
        boot = bootstrap_items(
            to_doc @ per_tok, stat, n_boot=n_boot, confidence=confidence, seed=seed
        )
        ci, se = boot.ci, boot.se
        details["n_undefined_resamples"] = boot.n_undefined
    return AgreementResult(
        name="krippendorff_alpha_spans",
        value=res.value,
        ci=ci,
        se=se,
        confidence=confidence,
        ci_method="bootstrap-documents" if ci is not None else None,
        n_items=res.n_items,
        n_annotators=res.n_annotators,
        n_pairable=res.n_pairable,
        observed=res.observed,
        expected=res.expected,
        details=details,
    )
