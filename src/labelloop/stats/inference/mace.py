"""MACE: multi-annotator competence estimation (spammer-aware truth inference).

Model (Hovy, Berg-Kirkpatrick, Vaswani & Hovy 2013). The true class is uniform,
``z_i ~ Uniform(K)``. For each rating, annotator j either knows the answer (with
probability ``θ_j``, the *competence*) and gives ``z_i``, or spams and draws a label
from its own strategy ``ξ_j``:

    P(l | z = c, j) = (1 - θ_j) ξ_j[l] + θ_j [l = c].

So MACE is a Dawid–Skene model whose confusion matrix is "identity with weight θ_j,
plus a label-independent spam row". The marginal log-likelihood
``Σ_i log Σ_c (1/K) Π_r P(l_r | c, j_r)^{w_r}`` is computed in log space (crowd-kit
multiplies the probabilities of an item's ratings, which underflows to 0 and NaN
posteriors once an item has a few hundred ratings; this implementation does not).

EM: with ``q`` the posterior of the truth, rating r was made knowing with probability
``P(know_r) = q_{i, l_r} θ_j / ((1 - θ_j) ξ_j[l_r] + θ_j)``. The M-step normalises
the expected counts: competence from ``[Σ_r (1 - P(know_r)), Σ_r P(know_r)]`` and the
strategy from ``Σ_{r: l_r = l} (1 - P(know_r))``, either with add-``smoothing``
(``method="em"``, a MAP estimate; the penalised log-likelihood never decreases) or with
variational Bayes (``method="vb"``, the default of Hovy et al. and crowd-kit):
``exp(ψ(n + a)) / exp(ψ(Σ n + a))`` with a Beta(``competence_prior``) prior on
(spamming, knowing) and a symmetric Dirichlet(``strategy_prior``) on ``ξ_j``. VB
maximises a bound, not the likelihood, so its ``log_likelihood_history_`` may wiggle.

EM is started from ``n_restarts`` random parameter draws (seeded) and the run with the
highest final objective is kept. crowd-kit equivalence: crowd-kit's ``MACE(n_iter=n,
n_restarts=1)`` equals ``MACE(max_iter=n, tol=0, n_restarts=1)`` fitted with
crowd-kit's starting values passed as ``init_competence``/``init_strategies``, on data
whose annotator ids and labels first appear in sorted order (crowd-kit's M-step mixes
sorted and first-appearance orders otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Self

import numpy as np
from scipy.special import digamma

from .._data import Ratings
from ._base import ConfusionEM, FloatArray, IntArray, Prepared, argmax_codes


class MACE(ConfusionEM):
    """MACE with EM or variational-Bayes M-steps.

    Args:
        method: ``"vb"`` (variational Bayes, default) or ``"em"`` (smoothed MAP).
        max_iter, tol: EM iterations and tolerance (see :class:`EMEstimator`).
        n_restarts: random starts; the best final objective wins.
        smoothing: add-``smoothing`` pseudo-count for ``method="em"``; ``None`` means
            ``0.01 / K`` (Hovy et al.'s and crowd-kit's choice).
        competence_prior: Beta pseudo-counts (spamming, knowing) for ``method="vb"``.
        strategy_prior: symmetric Dirichlet pseudo-count of the strategies (``"vb"``).
        default_noise: random starts draw parameters from ``U(1, 2 + default_noise)``
            before normalising.
        random_state: seed of the random starts.

    Fitted attributes: ``competence_`` (= ``annotator_skills_``, probability of knowing),
    ``strategies_`` (annotators × categories), ``confusions_`` (annotators × true ×
    observed), ``priors_`` (uniform).
    """

    competence_: FloatArray
    strategies_: FloatArray
    confusions_: FloatArray
    _spam: FloatArray
    _strat: FloatArray

    def __init__(
        self,
        *,
        method: Literal["vb", "em"] = "vb",
        max_iter: int = 50,
        tol: float = 1e-7,
        n_restarts: int = 10,
        smoothing: float | None = None,
        competence_prior: tuple[float, float] = (0.5, 0.5),
        strategy_prior: float = 10.0,
        default_noise: float = 0.5,
        random_state: int | None = 0,
    ) -> None:
        super().__init__(max_iter=max_iter, tol=tol)
        self.method = method
        self.n_restarts = n_restarts
        self.smoothing = smoothing
        self.competence_prior = competence_prior
        self.strategy_prior = strategy_prior
        self.default_noise = default_noise
        self.random_state = random_state

    def fit(
        self,
        data: Ratings,
        gold: Mapping[Any, Any] | None = None,
        *,
        init_competence: FloatArray | None = None,
        init_strategies: FloatArray | None = None,
    ) -> Self:
        """Fit; optional starting values (annotators, and annotators × categories)
        replace the random restarts."""
        if (init_competence is None) != (init_strategies is None):
            raise ValueError("give both init_competence and init_strategies, or neither")
        self._init = (init_competence, init_strategies)
        try:
            return super().fit(data, gold)
        finally:
            del self._init

    def _check_params(self) -> None:
        super()._check_params()
        if self.method not in ("vb", "em"):
            raise ValueError(f"method must be 'vb' or 'em', got {self.method!r}")
        if not isinstance(self.n_restarts, int | np.integer) or self.n_restarts < 1:
            raise ValueError(f"n_restarts must be a positive integer, got {self.n_restarts!r}")
        if self.smoothing is not None and not (np.isfinite(self.smoothing) and self.smoothing >= 0):
            raise ValueError(f"smoothing must be finite and non-negative, got {self.smoothing!r}")
        a, b = self.competence_prior
        if not (a > 0 and b > 0 and self.strategy_prior > 0):
            raise ValueError("competence_prior and strategy_prior must be positive")

    # ------------------------------------------------------------------ fitting
    def _starts(self, prep: Prepared) -> list[tuple[FloatArray, FloatArray]]:
        comp, strat = self._init
        n_ann, k = prep.n_annotators, prep.k
        if comp is not None and strat is not None:
            comp = np.asarray(comp, dtype=np.float64)
            strat = np.asarray(strat, dtype=np.float64)
            if comp.shape != (n_ann,) or strat.shape != (n_ann, k):
                raise ValueError(
                    f"init_competence must have shape ({n_ann},) and init_strategies "
                    f"({n_ann}, {k}); got {comp.shape} and {strat.shape}"
                )
            spam = np.column_stack([1.0 - comp, comp])
            return [(spam, strat / strat.sum(axis=1, keepdims=True))]
        rng = np.random.default_rng(self.random_state)
        starts = []
        for _ in range(self.n_restarts):
            spam = rng.uniform(1.0, 2.0 + self.default_noise, size=(n_ann, 2))
            strat = rng.uniform(1.0, 2.0 + self.default_noise, size=(n_ann, k))
            starts.append(
                (spam / spam.sum(axis=1, keepdims=True), strat / strat.sum(axis=1, keepdims=True))
            )
        return starts

    def _fit(self, prep: Prepared) -> IntArray:
        self._check_table_size(prep)
        self.priors_ = np.full(prep.k, 1.0 / prep.k)
        best: tuple[float, dict[str, Any]] | None = None
        for spam, strat in self._starts(prep):
            self._spam, self._strat = spam, strat
            probas, objective = self._e_step(prep)
            self._run_em(prep, probas, [objective])
            state = {
                "_spam": self._spam,
                "_strat": self._strat,
                "probas_": self.probas_,
                "log_likelihood_": self.log_likelihood_,
                "log_likelihood_history_": self.log_likelihood_history_,
                "n_iter_": self.n_iter_,
            }
            final = self.log_likelihood_history_[-1]
            if best is None or final > best[0]:
                best = (final, state)
        assert best is not None  # n_restarts >= 1
        for name, value in best[1].items():
            setattr(self, name, value)
        spam, strat = self._spam, self._strat
        self.competence_ = spam[:, 1] / spam.sum(axis=1)
        self.strategies_ = strat / strat.sum(axis=1, keepdims=True)
        self.annotator_skills_ = self.competence_
        self.confusions_ = self._confusions(normalised=True)
        return argmax_codes(self.probas_)

    def _fit_single_category(self, prep: Prepared) -> None:
        self.competence_ = np.ones(prep.n_annotators)
        self.strategies_ = np.ones((prep.n_annotators, 1))
        self.confusions_ = np.ones((prep.n_annotators, 1, 1))

    def _confusions(self, normalised: bool) -> FloatArray:
        spam, strat = self._spam, self._strat
        if normalised:
            spam = spam / spam.sum(axis=1, keepdims=True)
            strat = strat / strat.sum(axis=1, keepdims=True)
        k = strat.shape[1]
        conf = np.repeat((spam[:, :1] * strat)[:, None, :], k, axis=1)
        idx = np.arange(k)
        conf[:, idx, idx] += spam[:, 1:2]
        return conf

    # ------------------------------------------------------------------ EM steps
    def _e_step(self, prep: Prepared) -> tuple[FloatArray, float]:
        conf = self._confusions(normalised=False)  # [j, c, l]
        n_ann, k = prep.n_annotators, prep.k
        with np.errstate(divide="ignore"):
            log_e = np.ascontiguousarray(np.log(conf).transpose(0, 2, 1).reshape(n_ann * k, k))
            log_prior = np.log(self.priors_)
        probas, ll = self._posterior_pass(prep, log_e, log_prior)
        if self.method == "em":
            s = self._smoothing(k)
            with np.errstate(divide="ignore"):
                ll += s * float(np.log(self._spam).sum() + np.log(self._strat).sum())
        return probas, ll

    def _smoothing(self, k: int) -> float:
        return 0.01 / k if self.smoothing is None else float(self.smoothing)

    def _m_step(self, prep: Prepared, probas: FloatArray) -> None:
        n_ann, k = prep.n_annotators, prep.k
        counts, _ = self._take_stats(prep, probas)
        spam, strat = self._spam, self._strat
        # mass on the given label per (j, l): Σ w q[i, l_r]
        on_label = np.einsum("jll->jl", counts.reshape(n_ann, k, k))
        share = spam[:, 1:2] / (spam[:, :1] * strat + spam[:, 1:2])  # P(know | truth = l)
        knowing = on_label * share
        spamming = prep.row_weight.reshape(n_ann, k) - knowing
        comp_counts = np.column_stack([spamming.sum(axis=1), knowing.sum(axis=1)])
        if self.method == "em":
            s = self._smoothing(k)
            self._spam = _normalize(comp_counts + s)
            self._strat = _normalize(spamming + s)
        else:
            prior = np.asarray(self.competence_prior, dtype=np.float64)
            self._spam = _variational(comp_counts + prior)
            self._strat = _variational(spamming + self.strategy_prior)


def _normalize(x: FloatArray) -> FloatArray:
    total = x.sum(axis=1, keepdims=True)
    return np.divide(x, total, out=np.zeros_like(x), where=total > 0)


def _variational(x: FloatArray) -> FloatArray:
    """``exp(ψ(x)) / exp(ψ(Σ x))`` row-wise (the VB point estimate; rows sum below 1)."""
    return np.asarray(np.exp(digamma(x) - digamma(x.sum(axis=1, keepdims=True))), dtype=np.float64)
