"""Majority vote: the most frequent (weighted) label of each item.

``probas_[i, c] = Σ_{r ∈ i, l_r = c} w_r / Σ_{r ∈ i} w_r`` (uniform for an item whose
ratings all have weight zero). Ties between categories with the same vote total are
broken deterministically: ``tie_break="first"`` takes the category that comes first
in ``data.categories`` (the same choice as crowd-kit's ``MajorityVote``);
``tie_break="random"`` draws uniformly among the tied categories with a generator
seeded by ``random_state``, so repeated fits give the same labels.

``annotator_skills_`` is each annotator's (weighted) share of ratings that equal the
majority label of their item; every rating counts (crowd-kit counts a repeated
identical rating of one item by one annotator once).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ._base import FloatArray, IntArray, Prepared, TruthInference, argmax_codes, normalize_rows


def agreement_with(prep: Prepared, codes: IntArray) -> FloatArray:
    """Weighted share of each annotator's ratings equal to ``codes`` of their item."""
    item = np.repeat(np.arange(prep.n_items, dtype=np.int64), np.diff(prep.indptr))
    hit = (prep.label == codes[item]).astype(np.float64) * prep.weight
    num = np.bincount(prep.annotator, weights=hit, minlength=prep.n_annotators)
    den = np.bincount(prep.annotator, weights=prep.weight, minlength=prep.n_annotators)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def pick(probas: FloatArray, tie_break: str, random_state: int | None) -> IntArray:
    """Row-wise argmax with the documented tie-breaking."""
    if tie_break == "first":
        return argmax_codes(probas)
    top = probas == probas.max(axis=1, keepdims=True)
    keys = np.random.default_rng(random_state).random(probas.shape)
    return argmax_codes(np.where(top, keys, -1.0))


class MajorityVote(TruthInference):
    """Majority vote with deterministic tie-breaking.

    Args:
        tie_break: ``"first"`` (lowest category index) or ``"random"`` (seeded).
        random_state: seed for ``tie_break="random"``.
    """

    def __init__(
        self, *, tie_break: Literal["first", "random"] = "first", random_state: int | None = 0
    ) -> None:
        self.tie_break = tie_break
        self.random_state = random_state

    def _check_params(self) -> None:
        if self.tie_break not in ("first", "random"):
            raise ValueError(f"tie_break must be 'first' or 'random', got {self.tie_break!r}")

    def _fit(self, prep: Prepared) -> IntArray:
        probas = prep.clamp(normalize_rows(prep.vote_counts()))
        codes = pick(probas, self.tie_break, self.random_state)
        self.probas_ = probas
        self.priors_ = probas.mean(axis=0)
        self.annotator_skills_ = agreement_with(prep, codes)
        return codes
