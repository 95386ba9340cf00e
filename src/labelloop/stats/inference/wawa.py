"""Wawa (worker agreement with aggregate): majority vote weighted by agreement.

1. majority vote (ties to the first category);
2. skill of annotator j: ``s_j`` = weighted share of j's ratings equal to that vote;
3. ``probas_[i, c] ∝ Σ_{r ∈ i, l_r = c} w_r s_{j_r}``; ties to the first category.

An item whose annotators all have skill zero keeps its plain majority-vote
probabilities. This is crowd-kit's ``Wawa``, except that crowd-kit counts a repeated
identical rating of one item by one annotator once when computing skills, while here
every rating counts (as everywhere in :mod:`labelloop.stats`).
"""

from __future__ import annotations

import numpy as np

from ._base import IntArray, Prepared, TruthInference, argmax_codes, normalize_rows
from .majority import agreement_with


class Wawa(TruthInference):
    """Weighted majority vote with annotator weights from agreement with the majority."""

    def _fit(self, prep: Prepared) -> IntArray:
        votes = prep.vote_counts()
        mv = prep.clamp(normalize_rows(votes))
        skills = agreement_with(prep, argmax_codes(mv))
        item = np.repeat(np.arange(prep.n_items, dtype=np.int64), np.diff(prep.indptr))
        flat = np.bincount(
            item * prep.k + prep.label,
            weights=prep.weight * skills[prep.annotator],
            minlength=prep.n_items * prep.k,
        )
        scores = np.asarray(flat, dtype=np.float64).reshape(prep.n_items, prep.k)
        empty = scores.sum(axis=1) <= 0
        scores[empty] = mv[empty]
        probas = prep.clamp(normalize_rows(scores))
        self.probas_ = probas
        self.priors_ = probas.mean(axis=0)
        self.annotator_skills_ = skills
        return argmax_codes(probas)
