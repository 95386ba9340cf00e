"""GLAD: generative model of labels, abilities and difficulties.

Model (Whitehill, Ruvolo, Wu, Bergsma & Movellan 2009, in crowd-kit's multi-class
form). Annotator j has an ability ``α_j ∈ ℝ`` and item i an inverse difficulty
``e^{β_i} > 0``. A rating is correct with probability ``σ(α_j e^{β_i})`` and otherwise
uniform over the ``K - 1`` wrong classes:

    P(l | z = c) = σ(α_j e^{β_i})                 if l = c
                   (1 - σ(α_j e^{β_i})) / (K - 1)  otherwise,

with Gaussian priors ``α_j ~ N(alpha_prior_mean, 1)``, ``β_i ~ N(beta_prior_mean, 1)``
and class priors ``π`` (uniform and fixed by default, as in the paper). A negative
``α_j`` is an adversarial annotator; ``β_i → -∞`` is an item nobody can label.

Generalised EM: the E-step computes the posteriors ``q`` in log space; the M-step
raises ``Q(α, β) = Σ_r w_r [q_{i,l} log σ(x_r) + (1 - q_{i,l})(log(1 - σ(x_r)) -
log(K - 1))] + log N(α) + log N(β)`` (``x_r = α_j e^{β_i}``) with at most
``m_step_max_iter`` conjugate-gradient steps (scipy, analytic gradient
``∂Q/∂x_r = w_r (q_{i,l} - σ(x_r))``). The objective reported is the log posterior
``Σ_i log Σ_c π_c Π_r P(l_r | c) + log N(α) + log N(β)``, which a GEM step cannot
decrease.

crowd-kit equivalence: ``GLAD(max_iter=n, tol=0)`` reproduces crowd-kit's
``GLAD(n_iter=n, tol=-inf)`` ``alphas_``/``betas_`` (their E-step lags one step: their
``probas_`` are ours after ``n - 1`` iterations).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.optimize import minimize

from . import _kernels
from ._base import EMEstimator, FloatArray, IntArray, Prepared, argmax_codes

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class GLAD(EMEstimator):
    """GLAD with Gaussian priors on abilities and log inverse difficulties.

    Args:
        max_iter, tol: EM iterations and tolerance (see :class:`EMEstimator`).
        alpha_prior_mean: prior mean (and starting value) of the abilities.
        beta_prior_mean: prior mean (and starting value) of the log inverse difficulties.
        learn_priors: re-estimate the class priors in the M-step (fixed uniform if False).
        prior_smoothing: Dirichlet pseudo-count for learned class priors.
        m_step_max_iter, m_step_tol: conjugate-gradient budget per M-step.

    Fitted attributes: ``alphas_`` (= ``annotator_skills_``), ``betas_`` (log inverse
    difficulty per item, aligned with ``data.items``).
    """

    alphas_: FloatArray
    betas_: FloatArray

    def __init__(
        self,
        *,
        max_iter: int = 100,
        tol: float = 1e-7,
        alpha_prior_mean: float = 1.0,
        beta_prior_mean: float = 1.0,
        learn_priors: bool = False,
        prior_smoothing: float = 0.01,
        m_step_max_iter: int = 25,
        m_step_tol: float = 1e-2,
    ) -> None:
        super().__init__(max_iter=max_iter, tol=tol)
        self.alpha_prior_mean = alpha_prior_mean
        self.beta_prior_mean = beta_prior_mean
        self.learn_priors = learn_priors
        self.prior_smoothing = prior_smoothing
        self.m_step_max_iter = m_step_max_iter
        self.m_step_tol = m_step_tol

    def _check_params(self) -> None:
        super()._check_params()
        if not (np.isfinite(self.alpha_prior_mean) and np.isfinite(self.beta_prior_mean)):
            raise ValueError("alpha_prior_mean and beta_prior_mean must be finite")
        if self.m_step_max_iter < 1 or self.m_step_tol <= 0:
            raise ValueError("m_step_max_iter must be >= 1 and m_step_tol > 0")
        if not np.isfinite(self.prior_smoothing) or self.prior_smoothing < 0:
            raise ValueError(f"prior_smoothing must be non-negative, got {self.prior_smoothing!r}")

    def _fit(self, prep: Prepared) -> IntArray:
        self.priors_ = np.full(prep.k, 1.0 / prep.k)
        self.alphas_ = np.full(prep.n_annotators, float(self.alpha_prior_mean))
        self.betas_ = np.full(prep.n_items, float(self.beta_prior_mean))
        probas, objective = self._e_step(prep)
        probas = self._run_em(prep, probas, [objective])
        self.annotator_skills_ = self.alphas_
        return argmax_codes(probas)

    def _fit_single_category(self, prep: Prepared) -> None:
        self.alphas_ = np.full(prep.n_annotators, float(self.alpha_prior_mean))
        self.betas_ = np.full(prep.n_items, float(self.beta_prior_mean))
        self.annotator_skills_ = self.alphas_

    def _log_param_prior(self, alphas: FloatArray, betas: FloatArray) -> float:
        da = alphas - self.alpha_prior_mean
        db = betas - self.beta_prior_mean
        return float(-0.5 * (da @ da + db @ db) - _LOG_SQRT_2PI * (da.size + db.size))

    def _e_step(self, prep: Prepared) -> tuple[FloatArray, float]:
        probas = np.empty((prep.n_items, prep.k))
        log_prior = np.log(self.priors_)
        ll = _kernels.glad_posterior(
            prep.indptr,
            prep.annotator,
            prep.label,
            prep.weight,
            self.alphas_,
            self.betas_,
            log_prior,
            prep.gold,
            probas,
        )
        ll += self._log_param_prior(self.alphas_, self.betas_)
        if self.learn_priors and self.prior_smoothing > 0:
            ll += self.prior_smoothing * float(log_prior.sum())
        return probas, ll

    def _m_step(self, prep: Prepared, probas: FloatArray) -> None:
        if self.learn_priors:
            self.priors_ = (probas.sum(axis=0) + self.prior_smoothing) / (
                prep.n_items + prep.k * self.prior_smoothing
            )
        n_ann = prep.n_annotators
        grad_a = np.empty(n_ann)
        grad_b = np.empty(prep.n_items)
        mean_a, mean_b = float(self.alpha_prior_mean), float(self.beta_prior_mean)

        def negative_q(x: FloatArray) -> tuple[float, FloatArray]:
            alphas = np.ascontiguousarray(x[:n_ann])
            betas = np.ascontiguousarray(x[n_ann:])
            q = _kernels.glad_objective(
                prep.indptr,
                prep.annotator,
                prep.label,
                prep.weight,
                probas,
                alphas,
                betas,
                grad_a,
                grad_b,
            )
            da = alphas - mean_a
            db = betas - mean_b
            value = q - 0.5 * float(da @ da + db @ db)
            grad = np.concatenate([grad_a - da, grad_b - db])
            return -value, -grad

        x0 = np.concatenate([self.alphas_, self.betas_])
        result: Any = minimize(
            negative_q,
            x0,
            jac=True,
            method="CG",
            tol=self.m_step_tol,
            options={"maxiter": self.m_step_max_iter},
        )
        x = np.asarray(result.x, dtype=np.float64)
        self.alphas_ = np.ascontiguousarray(x[:n_ann])
        self.betas_ = np.ascontiguousarray(x[n_ann:])
