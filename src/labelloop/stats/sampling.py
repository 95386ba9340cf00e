"""Audit sampling: stratified and risk-weighted samples, sample sizes and design-weighted estimates.

An audit reviews a sample of items and reports the population error rate. Two rules keep
the figures honest:

* every item has a *known, positive* inclusion probability ``π_i`` (the plan records it
  next to the selected index, so a frozen sample can be re-estimated later), and
* estimates weight each reviewed item by ``1/π_i`` (Horvitz & Thompson 1952, "A
  generalization of sampling without replacement from a finite universe", JASA 47;
  Hájek 1971 for the ratio form), so over-sampling risky strata does not inflate the
  reported error rate.

Designs:

``stratified``
    Simple random sampling without replacement inside each stratum, ``π_i = n_h / N_h``.
    Allocation of ``n`` to strata: proportional (``n_h ∝ N_h``), equal, Neyman
    (``n_h ∝ N_h S_h``, minimum variance for a fixed ``n``; Neyman 1934) or custom shares,
    with a minimum per stratum, capped at ``N_h`` and rounded by largest remainders.
``systematic``
    Fixed-size πps sampling: randomised systematic sampling (Goodman & Kish 1950; Hartley &
    Rao 1962). Units are put in a random order and a systematic grid with a random start
    is laid over the cumulated ``π_i``; first-order inclusion probabilities are exactly
    ``π_i = min(1, c·w_i)`` with ``Σ π_i = n`` (units that would exceed 1 are taken with
    certainty and the rest rescaled). Joint probabilities have no closed form; variances
    use the with-replacement (Hansen–Hurwitz) approximation, slightly conservative.
    With ``strata`` and ``allocation`` the draw is done independently inside each stratum
    (stratified πps: risk weighting within segments).
``poisson``
    Poisson sampling: independent Bernoulli(``π_i``) draws, same ``π_i``, random sample
    size with expectation ``n``; joint probabilities are ``π_i π_j`` so the HT variance is
    exact.

Estimates (:func:`estimate_error_rate`): the Hájek ratio ``Σ y_i/π_i / Σ 1/π_i`` (default;
equals the stratified mean ``Σ W_h p_h`` for stratified samples) or the Horvitz–Thompson
``Σ y_i/π_i / N``. The confidence interval is Wilson's (1927) score interval evaluated at
the design's effective sample size ``n_eff = p(1-p)/v`` (Kish 1965; Korn & Graubard 1998),
which stays inside ``[0, 1]`` and is not degenerate when no error is found; ``wald`` gives
the normal interval ``p ± z·se``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

Allocation = Literal["proportional", "equal", "neyman", "custom"]
Design = Literal["stratified", "systematic", "poisson"]
Estimator = Literal["hajek", "horvitz_thompson"]
CIMethod = Literal["wilson", "wald"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

ALLOCATIONS: tuple[Allocation, ...] = ("proportional", "equal", "neyman", "custom")
DESIGNS: tuple[Design, ...] = ("stratified", "systematic", "poisson")


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True, eq=False)
class SamplePlan:
    """A frozen audit sample.

    Attributes:
        indices: selected population positions (0-based), grouped by stratum, ascending.
        stratum: stratum code of each selected unit (index into ``strata``).
        inclusion_probability: ``π_i`` of each selected unit.
        strata: stratum labels, sorted.
        population_sizes: ``N_h`` per stratum.
        allocation: ``n_h`` per stratum (for Poisson: realised counts).
        expected_allocation: ``Σ π_i`` per stratum (equals ``allocation`` for fixed-size designs).
        design: ``stratified``, ``systematic`` or ``poisson``.
        seed: the seed used (``None``: fresh entropy, not reproducible).
        stratified: True when each stratum was drawn independently with its own ``n_h``
            (always for ``stratified``; for weighted designs when an allocation was given).
    """

    indices: IntArray
    stratum: IntArray
    inclusion_probability: FloatArray
    strata: npt.NDArray[Any]
    population_sizes: IntArray
    allocation: IntArray
    expected_allocation: FloatArray
    design: Design
    seed: int | None = None
    stratified: bool = True

    @property
    def n(self) -> int:
        return int(self.indices.shape[0])

    @property
    def population_size(self) -> int:
        return int(self.population_sizes.sum())

    @property
    def weights(self) -> FloatArray:
        """Design weights ``1/π_i`` (how many population items each reviewed item stands for)."""
        return 1.0 / self.inclusion_probability

    def rows(self) -> list[tuple[int, Any, float]]:
        """``(population index, stratum label, π)`` per selected unit, for freezing a sample."""
        labels = self.strata.tolist()
        return [
            (int(i), labels[s], float(p))
            for i, s, p in zip(
                self.indices.tolist(),
                self.stratum.tolist(),
                self.inclusion_probability.tolist(),
                strict=True,
            )
        ]


@dataclass(frozen=True)
class Estimate:
    """A design-weighted estimate of a population proportion (e.g. an error rate).

    Attributes:
        value: point estimate.
        ci: ``(low, high)`` confidence interval.
        se: estimated standard error.
        n: reviewed units used.
        n_eff: effective sample size ``value(1-value)/se²`` (``n`` when undefined).
        population_size: ``N`` (known) or ``N̂ = Σ 1/π`` (estimated).
        design: sampling design the variance assumes.
        estimator: ``hajek`` or ``horvitz_thompson``.
        confidence: confidence level of ``ci``.
        ci_method: ``wilson`` or ``wald``.
    """

    value: float
    ci: tuple[float, float]
    se: float
    n: int
    n_eff: float
    population_size: float
    design: str
    estimator: str
    confidence: float = 0.95
    ci_method: str = "wilson"
    by_stratum: dict[Any, Estimate] = field(default_factory=dict, compare=False)


# ----------------------------------------------------------------------------- helpers
def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _seed_value(seed: int | np.random.Generator | None) -> int | None:
    return seed if isinstance(seed, int) else None


@lru_cache(maxsize=64)
def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    return float(sps.norm.ppf(0.5 + confidence / 2))


def _encode_strata(
    strata: Sequence[Hashable] | npt.NDArray[Any],
) -> tuple[npt.NDArray[Any], IntArray]:
    arr = np.asarray(strata)
    if arr.ndim != 1:
        raise ValueError(
            f"strata must be 1-D (one label per population item), got shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise ValueError("the population is empty")
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise ValueError("strata contain NaN; give every item a stratum")
    try:
        labels, codes = np.unique(arr, return_inverse=True)
    except TypeError:
        raise ValueError("strata labels must be of one orderable type") from None
    return labels, codes.astype(np.int64).reshape(-1)


def largest_remainder(
    quotas: npt.ArrayLike, total: int, *, caps: npt.ArrayLike | None = None
) -> IntArray:
    """Round non-negative ``quotas`` to integers summing to ``total`` (Hamilton's method).

    Each quota is rounded down, then the remaining units go to the largest fractional parts
    (ties: first stratum), never above ``caps``.
    """
    q = np.asarray(quotas, dtype=np.float64)
    cap = np.full(q.shape, np.inf) if caps is None else np.asarray(caps, dtype=np.float64)
    base = np.minimum(np.floor(q + 1e-9), cap).astype(np.int64)
    left = int(total - base.sum())
    if left < 0:
        raise ValueError("quotas exceed the total")
    frac = q - base
    frac[base >= cap] = -np.inf
    order = np.argsort(-frac, kind="stable")
    eligible = order[np.isfinite(frac[order])]
    if left > eligible.shape[0]:
        raise ValueError("caps leave too little room to reach the total")
    base[eligible[:left]] += 1
    return base


def _water_fill(
    share: FloatArray, floor: FloatArray, cap: FloatArray, n: float
) -> FloatArray | None:
    """``clip(λ·share, floor, cap)`` summing to ``n`` (bisection on ``λ``), or None if impossible."""
    if share.max(initial=0.0) > 0:  # negligible shares would need an astronomically large λ
        share = np.where(share < share.max() * 1e-12, 0.0, share / share.max())
    top = np.where(share > 0, cap, floor)
    if top.sum() < n - 1e-9:
        return None
    if floor.sum() >= n - 1e-9:
        return floor.copy()
    lo, hi = 0.0, 1.0
    while np.clip(hi * share, floor, cap).sum() < n and hi < 1e30:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if np.clip(mid * share, floor, cap).sum() < n:
            lo = mid
        else:
            hi = mid
    return np.asarray(np.clip(hi * share, floor, cap), dtype=np.float64)


def allocate(
    population_sizes: npt.ArrayLike,
    n: int,
    *,
    method: Allocation = "proportional",
    std: npt.ArrayLike | None = None,
    shares: npt.ArrayLike | None = None,
    min_per_stratum: int = 1,
) -> IntArray:
    """Split a sample of ``n`` over strata of sizes ``N_h``.

    ``proportional``: ``n_h ∝ N_h`` (self-weighting); ``equal``: ``n_h = n/H`` (best for
    comparing strata); ``neyman``: ``n_h ∝ N_h S_h`` with ``S_h`` in ``std`` (minimum
    variance of the overall estimate; for an error rate ``S_h = sqrt(p_h(1-p_h))`` from a
    prior guess ``p_h``); ``custom``: ``n_h ∝ shares``. Every stratum gets at least
    ``min(min_per_stratum, N_h)`` and at most ``N_h``; the excess is redistributed among the
    other strata by the same rule, and quotas are rounded by largest remainders.
    """
    sizes = np.asarray(population_sizes)
    if sizes.ndim != 1 or sizes.shape[0] == 0:
        raise ValueError("population_sizes must be a non-empty 1-D array")
    if (
        not np.issubdtype(sizes.dtype, np.number)
        or (sizes < 0).any()
        or (sizes != np.round(sizes)).any()
    ):
        raise ValueError("population_sizes must be non-negative integers")
    sizes = sizes.astype(np.int64)
    h = sizes.shape[0]
    if int(n) != n or n < 0:
        raise ValueError(f"sample size n must be a non-negative integer, got {n}")
    n = int(n)
    total = int(sizes.sum())
    if n > total:
        raise ValueError(f"sample size {n} exceeds the population size {total}")
    if min_per_stratum < 0:
        raise ValueError("min_per_stratum must be >= 0")
    if method == "proportional":
        share = sizes.astype(np.float64)
    elif method == "equal":
        share = (sizes > 0).astype(np.float64)
    elif method == "neyman":
        if std is None:
            raise ValueError("neyman allocation needs std (one standard deviation per stratum)")
        s = np.asarray(std, dtype=np.float64)
        if s.shape != (h,) or not np.isfinite(s).all() or (s < 0).any():
            raise ValueError(f"std must hold {h} finite non-negative values")
        share = sizes * s
    elif method == "custom":
        if shares is None:
            raise ValueError("custom allocation needs shares (one non-negative weight per stratum)")
        s = np.asarray(shares, dtype=np.float64)
        if s.shape != (h,) or not np.isfinite(s).all() or (s < 0).any():
            raise ValueError(f"shares must hold {h} finite non-negative values")
        share = s * (sizes > 0)
    else:
        raise ValueError(f"unknown allocation {method!r}; expected one of {', '.join(ALLOCATIONS)}")
    floor = np.minimum(sizes, min_per_stratum).astype(np.float64)
    if floor.sum() > n:
        raise ValueError(
            f"n={n} is smaller than the minimum of {min_per_stratum} per stratum over {h} strata "
            f"({int(floor.sum())}); raise n or lower min_per_stratum"
        )
    cap = sizes.astype(np.float64)
    # n_h = clip(λ·share_h, floor_h, N_h) with λ chosen so that Σ n_h = n
    share = np.where(share < share.max(initial=0.0) * 1e-12, 0.0, share)
    value = _water_fill(share, floor, cap, float(n))
    if value is None:  # the shares cannot absorb n: fill the zero-share strata evenly
        lower = np.where(share > 0, cap, floor)
        value = _water_fill(((share == 0) & (sizes > 0)).astype(np.float64), lower, cap, float(n))
        if value is None:  # pragma: no cover - n <= Σ N_h guarantees a solution
            raise RuntimeError("allocation failed")
    return largest_remainder(value, n, caps=sizes)


def inclusion_probabilities(weights: npt.ArrayLike, n: float) -> FloatArray:
    """First-order inclusion probabilities proportional to size: ``π_i = min(1, c·w_i)``.

    ``c`` is chosen so that ``Σ π_i = n``; units whose ``c·w_i`` would exceed 1 are taken
    with certainty and ``c`` is recomputed for the rest (the standard πps construction).
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.shape[0] == 0:
        raise ValueError("weights must be a non-empty 1-D array")
    if not np.isfinite(w).all() or (w <= 0).any():
        raise ValueError(
            "weights must be finite and > 0 (a zero weight makes an item unreachable and biases estimates)"
        )
    big_n = w.shape[0]
    if not 0 < n <= big_n:
        raise ValueError(f"n must lie in (0, {big_n}], got {n}")
    pi = np.zeros(big_n, dtype=np.float64)
    certain = np.zeros(big_n, dtype=bool)
    while True:
        rest = ~certain
        m = n - certain.sum()
        pi[rest] = m * w[rest] / w[rest].sum()
        pi[certain] = 1.0
        over = rest & (pi >= 1.0)
        if not over.any():
            return pi
        certain |= over


# ----------------------------------------------------------------------------- sampling
def _allocation_for(
    labels: npt.NDArray[Any],
    sizes: IntArray,
    n: int,
    allocation: Any,
    std: Any,
    shares: Any,
    min_per_stratum: int,
) -> IntArray:
    """``n_h`` from an allocation name (with per-stratum ``std``/``shares``) or explicit counts."""

    def per_stratum(x: Any) -> Any:
        if isinstance(x, dict):
            missing = [lab for lab in labels.tolist() if lab not in x]
            if missing:
                raise ValueError(f"no value given for strata {missing}")
            return np.array([x[lab] for lab in labels.tolist()], dtype=np.float64)
        return x

    if isinstance(allocation, str):
        return allocate(
            sizes,
            n,
            method=cast(Allocation, allocation),
            std=per_stratum(std),
            shares=per_stratum(shares),
            min_per_stratum=min_per_stratum,
        )
    given = np.asarray(per_stratum(allocation))
    if given.shape != sizes.shape or (given < 0).any() or (given != np.round(given)).any():
        raise ValueError(f"explicit allocation must give {sizes.shape[0]} non-negative integers")
    n_h = given.astype(np.int64)
    if (n_h > sizes).any():
        raise ValueError("explicit allocation exceeds a stratum's population")
    if n_h.sum() != n:
        raise ValueError(f"explicit allocation sums to {int(n_h.sum())}, not n={n}")
    return n_h


def stratified_sample(
    strata: Sequence[Hashable] | npt.NDArray[Any],
    n: int,
    *,
    allocation: Allocation | npt.ArrayLike = "proportional",
    std: Any = None,
    shares: Any = None,
    min_per_stratum: int = 1,
    seed: int | np.random.Generator | None = None,
) -> SamplePlan:
    """Stratified simple random sample without replacement.

    Args:
        strata: stratum label of every population item (position = population index).
        n: total sample size.
        allocation: an :data:`Allocation` name, or explicit integer ``n_h`` per stratum
            (in sorted stratum order).
        std, shares: per-stratum inputs for ``neyman`` / ``custom`` (sorted stratum order;
            a mapping from stratum label is accepted too).
        min_per_stratum: floor per stratum (capped at ``N_h``).
        seed: integer seed or ``numpy.random.Generator``; the same seed gives the same sample.

    Every item of stratum ``h`` has ``π = n_h / N_h``.
    """
    labels, codes = _encode_strata(strata)
    sizes = np.bincount(codes, minlength=labels.shape[0]).astype(np.int64)

    n_h = _allocation_for(labels, sizes, n, allocation, std, shares, min_per_stratum)
    rng = _rng(seed)
    keys = rng.random(codes.shape[0])
    order = np.lexsort((keys, codes))  # by stratum, then random key
    offsets = np.zeros(labels.shape[0] + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    rank = np.empty(codes.shape[0], dtype=np.int64)
    rank[order] = np.arange(codes.shape[0]) - offsets[codes[order]]
    chosen = np.flatnonzero(rank < n_h[codes])
    chosen = chosen[np.lexsort((chosen, codes[chosen]))]
    with np.errstate(invalid="ignore", divide="ignore"):
        pi_h = np.where(sizes > 0, n_h / np.maximum(sizes, 1), 0.0)
    return SamplePlan(
        indices=chosen.astype(np.int64),
        stratum=codes[chosen],
        inclusion_probability=pi_h[codes[chosen]],
        strata=labels,
        population_sizes=sizes,
        allocation=n_h,
        expected_allocation=np.asarray(n_h, dtype=np.float64),
        design="stratified",
        seed=_seed_value(seed),
    )


def _draw(pi: FloatArray, m: int, method: str, rng: np.random.Generator) -> IntArray:
    """Positions selected with probabilities ``pi`` (``Σ pi = m``) by one πps draw."""
    if method == "poisson":
        return np.flatnonzero(rng.random(pi.shape[0]) < pi).astype(np.int64)
    certain = np.flatnonzero(pi >= 1.0)
    rest = np.flatnonzero((pi < 1.0) & (pi > 0.0))
    m_rest = round(m - certain.shape[0])
    if m_rest <= 0 or rest.shape[0] == 0:
        return np.sort(certain).astype(np.int64)
    perm = rest[rng.permutation(rest.shape[0])]
    cum = np.cumsum(pi[perm])
    cum *= m_rest / cum[-1]
    points = rng.random() + np.arange(m_rest)
    pos = np.minimum(np.searchsorted(cum, points, side="right"), perm.shape[0] - 1)
    chosen = np.concatenate([certain, perm[pos]])
    if np.unique(chosen).shape[0] != chosen.shape[0]:  # pragma: no cover - π < 1 prevents it
        raise RuntimeError("systematic sampling selected a unit twice")
    return np.sort(chosen).astype(np.int64)


def weighted_sample(
    weights: npt.ArrayLike,
    n: int,
    *,
    method: Literal["systematic", "poisson"] = "systematic",
    strata: Sequence[Hashable] | npt.NDArray[Any] | None = None,
    allocation: Allocation | npt.ArrayLike | None = None,
    std: Any = None,
    shares: Any = None,
    min_per_stratum: int = 1,
    seed: int | np.random.Generator | None = None,
) -> SamplePlan:
    """Risk-weighted sample with known inclusion probabilities ``π_i = min(1, c·w_i)``.

    ``systematic`` (default): randomised systematic πps, exactly ``n`` units, exact
    first-order ``π_i``. ``poisson``: independent draws, expected size ``n``, exact joint
    probabilities.

    Without ``allocation``, ``strata`` only labels the selected units (for per-stratum
    reporting) and the probabilities come from ``weights`` alone. With ``allocation``
    (as in :func:`stratified_sample`: a name, or explicit ``n_h``), ``n`` is first split
    over the strata and each stratum gets its own independent πps draw of ``n_h`` units
    with ``π_i = min(1, c_h·w_i)`` (stratified πps: risk weighting inside segments).
    """
    if method not in ("systematic", "poisson"):
        raise ValueError(f"unknown method {method!r}; expected systematic or poisson")
    w = np.asarray(weights, dtype=np.float64)
    if int(n) != n:
        raise ValueError(f"n must be an integer, got {n}")
    n = int(n)
    labels: npt.NDArray[Any]
    if strata is None:
        if allocation is not None:
            raise ValueError("allocation needs strata")
        labels = np.array(["all"], dtype=object)
        codes = np.zeros(w.shape[0] if w.ndim == 1 else 0, dtype=np.int64)
    else:
        labels, codes = _encode_strata(strata)
        if w.ndim != 1 or codes.shape[0] != w.shape[0]:
            raise ValueError(f"strata has {codes.shape[0]} labels but weights has {w.shape}")
    rng = _rng(seed)
    h = labels.shape[0]
    sizes = np.bincount(codes, minlength=h).astype(np.int64)
    if allocation is None:
        pi = inclusion_probabilities(w, n)
        chosen = _draw(pi, n, method, rng)
    else:
        inclusion_probabilities(w, min(max(n, 1), w.shape[0]))  # validates the weights
        n_h = _allocation_for(labels, sizes, n, allocation, std, shares, min_per_stratum)
        pi = np.zeros(w.shape[0], dtype=np.float64)
        parts = []
        for stratum in range(h):
            members = np.flatnonzero(codes == stratum)
            if n_h[stratum] > 0:
                pi[members] = inclusion_probabilities(w[members], int(n_h[stratum]))
                parts.append(members[_draw(pi[members], int(n_h[stratum]), method, rng)])
        chosen = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    chosen = chosen[np.lexsort((chosen, codes[chosen]))].astype(np.int64)
    return SamplePlan(
        indices=chosen,
        stratum=codes[chosen],
        inclusion_probability=pi[chosen],
        strata=labels,
        population_sizes=sizes,
        allocation=np.bincount(codes[chosen], minlength=h).astype(np.int64),
        expected_allocation=np.asarray(
            np.bincount(codes, weights=pi, minlength=h), dtype=np.float64
        ),
        design=method,
        seed=_seed_value(seed),
        stratified=allocation is not None,
    )


# ----------------------------------------------------------------------------- sample size
def wilson_half_width(p: float, n: float, *, confidence: float = 0.95) -> float:
    """Half the width of Wilson's (1927) score interval at observed proportion ``p``.

    ``z/(1 + z²/n) · sqrt(p(1-p)/n + z²/(4n²))``.
    """
    z = _z(confidence)
    if n <= 0:
        raise ValueError("n must be positive")
    if math.isinf(n):
        return 0.0
    return z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))


def wilson_interval(p: float, n: float, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``p`` observed on (effective) size ``n``."""
    z = _z(confidence)
    if math.isinf(n):
        return (p, p)
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = wilson_half_width(p, n, confidence=confidence)
    return (max(0.0, center - half), min(1.0, center + half))


def sample_size_for_proportion(
    half_width: float,
    *,
    expected_rate: float = 0.5,
    confidence: float = 0.95,
    population_size: int | None = None,
) -> int:
    """Smallest ``n`` whose Wilson interval at ``expected_rate`` has half-width ≤ ``half_width``.

    With a finite population ``N`` the interval is evaluated at the effective size
    ``n·(N-1)/(N-n)`` (the finite-population correction ``(N-n)/(N-1)`` on the variance),
    so the answer never exceeds ``N``. Use ``expected_rate=0.5`` when nothing is known
    (the worst case); a smaller prior error rate needs fewer items.
    """
    if not 0 < half_width < 1:
        raise ValueError(f"half_width must lie in (0, 1), got {half_width}")
    if not 0 <= expected_rate <= 1:
        raise ValueError(f"expected_rate must lie in [0, 1], got {expected_rate}")
    _z(confidence)
    if population_size is not None and (
        int(population_size) != population_size or population_size < 1
    ):
        raise ValueError("population_size must be a positive integer")

    def width(n: int) -> float:
        if population_size is None:
            n_eff = float(n)
        elif n >= population_size:
            n_eff = math.inf
        else:
            n_eff = (
                n * (population_size - 1) / (population_size - n)
                if population_size > 1
                else math.inf
            )
        return wilson_half_width(expected_rate, n_eff, confidence=confidence)

    hi = 1
    limit = population_size if population_size is not None else 10**12
    while width(hi) > half_width:
        if hi >= limit:
            return int(limit)
        hi = min(hi * 2, limit)
    lo = hi // 2  # width(lo) > half_width or lo == 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if width(mid) <= half_width:
            hi = mid
        else:
            lo = mid
    return max(hi, 1)


# ----------------------------------------------------------------------------- estimation
def _finish(
    value: float,
    var: float,
    n: int,
    pop: float,
    design: str,
    estimator: str,
    confidence: float,
    ci_method: CIMethod,
) -> Estimate:
    z = _z(confidence)
    var = max(var, 0.0)
    se = math.sqrt(var)
    if var > 0 and 0 < value < 1:
        n_eff = value * (1 - value) / var
    elif var == 0 and 0 < value < 1:
        n_eff = math.inf  # census: no sampling error
    else:
        n_eff = float(n)
    if ci_method == "wilson":
        p = min(max(value, 0.0), 1.0)
        ci = wilson_interval(p, n_eff, confidence=confidence) if n_eff > 0 else (0.0, 1.0)
    elif ci_method == "wald":
        ci = (value - z * se, value + z * se)
    else:
        raise ValueError(f"unknown ci_method {ci_method!r}; expected wilson or wald")
    return Estimate(
        value=value,
        ci=ci,
        se=se,
        n=n,
        n_eff=n_eff,
        population_size=pop,
        design=design,
        estimator=estimator,
        confidence=confidence,
        ci_method=ci_method,
    )


def _estimate_weighted(
    y: FloatArray,
    pi: FloatArray,
    design: str,
    estimator: Estimator,
    population_size: float | None,
    codes: IntArray | None = None,
) -> tuple[float, float, float]:
    """(value, variance, population size) for a πps (systematic) or Poisson sample."""
    d = 1.0 / pi
    n_hat = float(d.sum())
    if estimator == "horvitz_thompson":
        big_n = float(population_size) if population_size is not None else n_hat
        value = float((y * d).sum()) / big_n
        z = y * d / big_n  # linearised contributions
    else:
        big_n = n_hat
        value = float((y * d).sum()) / n_hat
        z = (y - value) * d / n_hat
    if design == "poisson":
        # exact HT variance estimator under Poisson sampling
        var = float(((1 - pi) * (z * z)).sum())
    else:
        # Hansen–Hurwitz (with-replacement) approximation on the non-certainty units,
        # summed over independently drawn strata
        var = 0.0
        groups = np.zeros(y.shape[0], dtype=np.int64) if codes is None else codes
        for h in np.unique(groups).tolist():
            zz = z[(groups == h) & (pi < 1.0)]
            m = zz.shape[0]
            if m > 1:
                var += float(m / (m - 1) * ((zz - zz.mean()) ** 2).sum())
    return value, var, big_n


def _estimate_stratified(
    y: FloatArray,
    pi: FloatArray,
    codes: IntArray,
    estimator: Estimator,
    population_size: float | None,
) -> tuple[float, float, float, dict[int, tuple[float, float, int, float]]]:
    """Stratified SRSWOR: ``p = Σ W_h p_h``, ``v = Σ W_h² (1 - f_h) s_h² / n_h``."""
    parts: dict[int, tuple[float, float, int, float]] = {}
    big_ns: list[float] = []
    for h in np.unique(codes).tolist():
        sel = codes == h
        yh, pih = y[sel], pi[sel]
        if np.ptp(pih) > 1e-9 * pih.max():
            raise ValueError(
                f"stratified design needs one inclusion probability per stratum (stratum {h} has several)"
            )
        n_h = int(sel.sum())
        big_n_h = float(n_h / pih[0])
        p_h = float(yh.mean())
        s2 = float(yh.var(ddof=1)) if n_h > 1 else 0.0
        f = n_h / big_n_h
        v_h = (1 - f) * s2 / n_h
        parts[h] = (p_h, v_h, n_h, big_n_h)
        big_ns.append(big_n_h)
    n_hat = float(sum(big_ns))
    total = sum(p * bn for (p, _, _, bn) in parts.values())
    denom = (
        float(population_size)
        if (estimator == "horvitz_thompson" and population_size is not None)
        else n_hat
    )
    value = total / denom
    var = sum(bn * bn * v for (_, v, _, bn) in parts.values()) / denom**2
    return value, var, denom, parts


def estimate_error_rate(
    errors: npt.ArrayLike,
    inclusion_probability: npt.ArrayLike,
    *,
    design: Design = "stratified",
    stratum: npt.ArrayLike | None = None,
    estimator: Estimator = "hajek",
    population_size: float | None = None,
    confidence: float = 0.95,
    ci_method: CIMethod = "wilson",
    stratified: bool = False,
) -> Estimate:
    """Design-weighted population error rate with a confidence interval.

    Args:
        errors: 0/1 (or fractional) error indicator per reviewed unit.
        inclusion_probability: ``π_i`` per reviewed unit (from the :class:`SamplePlan`).
        design: ``stratified`` (SRSWOR within strata; ``stratum`` required unless a single
            stratum), ``systematic`` (πps) or ``poisson``.
        stratum: stratum code/label per reviewed unit; also yields ``by_stratum``
            estimates for every design.
        estimator: ``hajek`` (``Σ y/π / Σ 1/π``; default, robust) or
            ``horvitz_thompson`` (``Σ y/π / N``; unbiased, needs ``population_size`` for
            a known ``N``, else uses ``N̂``).
        population_size: known ``N`` for Horvitz–Thompson.
        confidence: confidence level; ``ci_method``: ``wilson`` (default) or ``wald``.
        stratified: for ``systematic`` samples drawn independently per stratum
            (``weighted_sample(..., allocation=...)``): sum the variance within strata.

    Raises:
        ValueError: lengths differ, ``π`` outside ``(0, 1]``, errors outside ``[0, 1]``, an
            empty sample, or a stratified sample whose stratum mixes probabilities.
    """
    y = np.asarray(errors, dtype=np.float64)
    pi = np.asarray(inclusion_probability, dtype=np.float64)
    if y.ndim != 1 or pi.shape != y.shape:
        raise ValueError(
            f"errors and inclusion_probability must be 1-D of equal length, got {y.shape} and {pi.shape}"
        )
    if y.shape[0] == 0:
        raise ValueError("no reviewed units: the sample is empty")
    if not np.isfinite(y).all() or (y < 0).any() or (y > 1).any():
        raise ValueError("errors must be 0/1 indicators (or fractions in [0, 1])")
    if not np.isfinite(pi).all() or (pi <= 0).any() or (pi > 1 + 1e-12).any():
        raise ValueError("inclusion probabilities must lie in (0, 1]")
    if design not in DESIGNS:
        raise ValueError(f"unknown design {design!r}; expected one of {', '.join(DESIGNS)}")
    if estimator not in ("hajek", "horvitz_thompson"):
        raise ValueError(f"unknown estimator {estimator!r}; expected hajek or horvitz_thompson")
    if population_size is not None and population_size <= 0:
        raise ValueError("population_size must be positive")
    pi = np.minimum(pi, 1.0)
    labels: npt.NDArray[Any]
    if stratum is None:
        labels, codes = np.array(["all"], dtype=object), np.zeros(y.shape[0], dtype=np.int64)
    else:
        st = np.asarray(stratum)
        if st.shape != y.shape:
            raise ValueError(
                f"stratum must have one entry per reviewed unit ({y.shape[0]}), got {st.shape}"
            )
        labels, codes = _encode_strata(st)
    n = int(y.shape[0])
    by: dict[Any, Estimate] = {}
    if design == "stratified":
        value, var, pop, parts = _estimate_stratified(y, pi, codes, estimator, population_size)
        for h, (p_h, v_h, n_h, big_n_h) in parts.items():
            by[labels[h]] = _finish(
                p_h, v_h, n_h, big_n_h, design, estimator, confidence, ci_method
            )
    else:
        value, var, pop = _estimate_weighted(
            y, pi, design, estimator, population_size, codes if stratified else None
        )
        if stratum is not None:
            for h in range(labels.shape[0]):
                sel = codes == h
                vh, varh, poph = _estimate_weighted(y[sel], pi[sel], design, "hajek", None)
                by[labels[h]] = _finish(
                    vh, varh, int(sel.sum()), poph, design, "hajek", confidence, ci_method
                )
    est = _finish(value, var, n, pop, design, estimator, confidence, ci_method)
    return replace(est, by_stratum=by)


def estimate_from_plan(
    plan: SamplePlan,
    errors: npt.ArrayLike,
    *,
    estimator: Estimator = "hajek",
    confidence: float = 0.95,
    ci_method: CIMethod = "wilson",
) -> Estimate:
    """:func:`estimate_error_rate` for a :class:`SamplePlan`; ``errors`` aligned with ``plan.indices``.

    Uses the plan's design, strata and known population size (for Horvitz–Thompson).
    """
    y = np.asarray(errors, dtype=np.float64)
    if y.shape != (plan.n,):
        raise ValueError(f"errors must have one entry per sampled unit ({plan.n}), got {y.shape}")
    return estimate_error_rate(
        y,
        plan.inclusion_probability,
        design=plan.design,
        stratum=plan.strata[plan.stratum],
        estimator=estimator,
        population_size=plan.population_size,
        confidence=confidence,
        ci_method=ci_method,
        stratified=plan.stratified,
    )
