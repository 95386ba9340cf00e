"""One-coin Dawid–Skene: one accuracy per annotator instead of a full matrix.

Model (the "one-coin" special case of Dawid & Skene 1979, as analysed by Li, Yu & Zhou
2013 and Zhang et al. 2016). Annotator j gives the true class with probability
``s_j`` and each wrong class with probability ``(1 - s_j) / (K - 1)``:

    e_j[c, l] = s_j  if l = c,   (1 - s_j) / (K - 1)  otherwise.

EM is Dawid–Skene's with the M-step

    s_j = (Σ_{r: j_r = j} w_r q_{i_r, l_r} + a) / (Σ_{r: j_r = j} w_r + 2a)

(the expected share of j's ratings that are correct; ``a = smoothing`` is a
Beta(1 + a, 1 + a) prior). Far fewer parameters than the full model, so it is steadier
when annotators rate few items, but it cannot represent class-specific confusions.

crowd-kit equivalence: ``OneCoinDawidSkene(smoothing=0, prior_smoothing=0,
min_prob=1e-10, max_iter=n, tol=0)`` matches crowd-kit's
``OneCoinDawidSkene(n_iter=n, tol=0)`` labels and probabilities.
"""

from __future__ import annotations

import numpy as np

from ._base import FloatArray, Prepared
from .dawid_skene import DawidSkene


class OneCoinDawidSkene(DawidSkene):
    """One-coin Dawid–Skene EM (``annotator_skills_`` are the accuracies ``s_j``).

    Parameters are those of :class:`DawidSkene`; ``smoothing`` is the Beta pseudo-count
    on each accuracy and ``min_prob`` clips every confusion cell to
    ``[min_prob, 1 - min_prob]``. ``confusions_`` is the implied K × K matrix.
    """

    def _m_step(self, prep: Prepared, probas: FloatArray) -> None:
        k, n_ann = prep.k, prep.n_annotators
        counts, totals = self._take_stats(prep, probas)
        counts = counts.reshape(n_ann, k, k)
        correct = np.einsum("jll->j", counts)  # Σ w q[i, l_r]: mass on the given label
        total = prep.row_weight.reshape(n_ann, k).sum(axis=1)
        a = self.smoothing
        den = total + 2 * a
        skills = np.divide(correct + a, den, out=np.full(n_ann, 0.5), where=den > 0)
        right = skills
        wrong = (1.0 - skills) / (k - 1)
        if self.min_prob > 0:
            right = np.clip(right, self.min_prob, 1 - self.min_prob)
            wrong = np.clip(wrong, self.min_prob, 1 - self.min_prob)
        conf = np.broadcast_to(wrong[:, None, None], (n_ann, k, k)).copy()
        idx = np.arange(k)
        conf[:, idx, idx] = right[:, None]
        self.confusions_ = conf
        self.annotator_skills_ = skills
        self.priors_ = (totals + self.prior_smoothing) / (prep.n_items + k * self.prior_smoothing)

    def _penalty(self, log_e: FloatArray, log_prior: FloatArray) -> float:
        total = 0.0
        if self.smoothing > 0:
            s = self.annotator_skills_
            with np.errstate(divide="ignore"):
                total += self.smoothing * float(np.log(s).sum() + np.log1p(-s).sum())
        if self.prior_smoothing > 0:
            total += self.prior_smoothing * float(log_prior.sum())
        return total

    def _skills(self) -> FloatArray:
        return self.annotator_skills_
