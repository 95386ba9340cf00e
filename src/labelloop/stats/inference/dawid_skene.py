"""Dawid–Skene: one full confusion matrix per annotator, fitted by EM.

Model (Dawid & Skene 1979). Item i has a latent true class ``z_i ~ Categorical(π)``;
given ``z_i = c``, each rating of annotator j on i is drawn independently from row c of
j's confusion matrix: ``P(l | z = c, j) = e_j[c, l]``. Repeated ratings of an item by
the same annotator are independent draws and all count. The marginal log-likelihood is

    log p(y | π, e) = Σ_i log Σ_c π_c Π_{r ∈ i} e_{j_r}[c, l_r]^{w_r}

computed with a per-item log-sum-exp (no underflow).

EM: the E-step sets ``q_ic = P(z_i = c | y, π, e)``; the M-step sets

    e_j[c, l] = (Σ_{r: j_r = j, l_r = l} w_r q_{i_r c} + a) / (Σ_{r: j_r = j} w_r q_{i_r c} + K a)
    π_c       = (Σ_i q_ic + b) / (n_items + K b)

with ``a = smoothing`` and ``b = prior_smoothing`` (Dirichlet pseudo-counts, i.e. MAP
with Dirichlet(1 + a) priors; they keep annotators with a single label and classes
nobody used away from zeros). Start: the majority-vote shares (or ``init_probas``
given to ``fit``).

crowd-kit equivalence: ``DawidSkene(smoothing=0, prior_smoothing=0, min_prob=1e-10,
max_iter=n, tol=0)`` reproduces crowd-kit's ``DawidSkene(n_iter=n, tol=0)`` labels and
probabilities (crowd-kit clips the observed confusion cells and the priors at 1e-10
without pseudo-counts); its ``errors_`` are one M-step further than ``confusions_``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

import numpy as np

from .._data import Ratings
from ._base import ConfusionEM, FloatArray, IntArray, Prepared, argmax_codes, normalize_rows


class DawidSkene(ConfusionEM):
    """Dawid–Skene EM with full confusion matrices.

    Args:
        max_iter: maximum number of EM iterations (M-step then E-step).
        tol: stop when the log-likelihood changes by less than ``tol`` per unit of
            rating weight.
        smoothing: Dirichlet pseudo-count added to every confusion-matrix cell.
        prior_smoothing: Dirichlet pseudo-count added to every class-prior count.
        min_prob: floor for the confusion cells an annotator actually used and for the
            priors (crowd-kit's clipping; 0 disables it).

    Fitted attributes (besides the common ones): ``confusions_`` (annotators × true ×
    observed), ``annotator_skills_`` = ``Σ_c π_c e_j[c, c]`` (expected accuracy).
    """

    confusions_: FloatArray

    def __init__(
        self,
        *,
        max_iter: int = 100,
        tol: float = 1e-7,
        smoothing: float = 0.01,
        prior_smoothing: float = 0.01,
        min_prob: float = 0.0,
    ) -> None:
        super().__init__(max_iter=max_iter, tol=tol)
        self.smoothing = smoothing
        self.prior_smoothing = prior_smoothing
        self.min_prob = min_prob

    def _check_params(self) -> None:
        super()._check_params()
        for name in ("smoothing", "prior_smoothing", "min_prob"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be finite and non-negative, got {value!r}")
        if self.min_prob >= 1:
            raise ValueError(f"min_prob must be below 1, got {self.min_prob!r}")

    def fit(
        self,
        data: Ratings,
        gold: Mapping[Any, Any] | None = None,
        *,
        init_probas: FloatArray | None = None,
    ) -> Self:
        """Fit by EM from the majority-vote shares, or from ``init_probas``.

        ``init_probas`` (items × categories, rows summing to one, aligned with
        ``data.items``) replaces the majority-vote start, e.g. posteriors of an earlier
        fit or of another model.
        """
        self._init = init_probas
        try:
            return super().fit(data, gold)
        finally:
            del self._init

    def _fit(self, prep: Prepared) -> IntArray:
        init = self._init_probas(prep)
        probas = self._run_em(prep, init, [])
        self.annotator_skills_ = self._skills()
        return argmax_codes(probas)

    def _init_probas(self, prep: Prepared) -> FloatArray:
        given = getattr(self, "_init", None)
        if given is None:
            return prep.clamp(normalize_rows(prep.vote_counts()))
        probas = np.array(given, dtype=np.float64)
        if probas.shape != (prep.n_items, prep.k):
            raise ValueError(
                f"init_probas must have shape ({prep.n_items}, {prep.k}), got {probas.shape}"
            )
        if not np.all(np.isfinite(probas)) or np.any(probas < 0):
            raise ValueError("init_probas must be finite and non-negative")
        return prep.clamp(normalize_rows(probas))

    def _fit_single_category(self, prep: Prepared) -> None:
        self.confusions_ = np.ones((prep.n_annotators, 1, 1))

    # ------------------------------------------------------------------ EM steps
    def _m_step(self, prep: Prepared, probas: FloatArray) -> None:
        k, n_ann = prep.k, prep.n_annotators
        counts, totals = self._take_stats(prep, probas)
        # counts[j*K + l, c] -> num[j, c, l]
        num = counts.reshape(n_ann, k, k).transpose(0, 2, 1) + self.smoothing
        if self.min_prob > 0:
            used = prep.row_used.reshape(n_ann, 1, k)
            num = np.where(used, np.maximum(num, self.min_prob), num)
        den = num.sum(axis=2, keepdims=True)
        self.confusions_ = np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0 / k)
        self.priors_ = (totals + self.prior_smoothing) / (prep.n_items + k * self.prior_smoothing)

    def _log_tables(self) -> tuple[FloatArray, FloatArray]:
        with np.errstate(divide="ignore"):
            log_conf = np.log(self.confusions_)
            log_prior = np.log(np.maximum(self.priors_, self.min_prob))
        n_ann, k = log_conf.shape[0], log_conf.shape[1]
        # log_e[j*K + l, c] = log e_j[c, l]
        log_e = np.ascontiguousarray(log_conf.transpose(0, 2, 1).reshape(n_ann * k, k))
        return log_e, log_prior

    def _penalty(self, log_e: FloatArray, log_prior: FloatArray) -> float:
        total = 0.0
        if self.smoothing > 0:
            total += self.smoothing * float(log_e.sum())
        if self.prior_smoothing > 0:
            total += self.prior_smoothing * float(log_prior.sum())
        return total

    def _e_step(self, prep: Prepared) -> tuple[FloatArray, float]:
        log_e, log_prior = self._log_tables()
        probas, ll = self._posterior_pass(prep, log_e, log_prior)
        return probas, ll + self._penalty(log_e, log_prior)

    def _skills(self) -> FloatArray:
        diag = np.diagonal(self.confusions_, axis1=1, axis2=2)
        return np.asarray(diag @ self.priors_, dtype=np.float64)
