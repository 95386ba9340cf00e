"""Base classes of the truth-inference estimators and the data contract they share.

Data contract (documented once, here). Every estimator takes a
:class:`labelloop.stats._data.Ratings`: long-form rows ``(item, annotator, label,
weight)`` already coded as dense integers. Missing ratings are absent rows. Repeated
ratings of one item by one annotator are kept and counted (as in Dawid and Skene's
original data). A row's ``weight`` multiplies its vote (majority, Wawa) or its
log-likelihood term and expected counts (the EM models); the default is one.

Estimator API (crowd-kit style): parameters in the constructor, ``fit(data, gold=None)``
returns ``self``; fitted attributes end in ``_`` and are aligned with the codes of
``data``:

- ``labels_``: inferred category *value* per item, aligned with ``data.items``;
- ``probas_``: ``n_items × n_categories`` posterior probabilities (columns follow
  ``data.categories``);
- ``priors_``: class prior probabilities;
- ``annotator_skills_``: one number per annotator (its meaning is per model);
- ``log_likelihood_``, ``log_likelihood_history_``, ``n_iter_``: the objective the
  model maximises (``None``/empty/0 for the non-probabilistic votes).

``gold`` maps item ids to known labels. The EM models clamp those items' posteriors to
the known label during every E-step (their likelihood term becomes the complete-data
term); the votes use them as the answer for those items. Gold items that do not occur
in ``data`` are ignored; a gold label outside ``data.categories`` is a ``ValueError``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from .._data import Ratings
from . import _kernels

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Prepared:
    """Ratings regrouped by item for the kernels (rows sorted by item code)."""

    n_items: int
    n_annotators: int
    k: int
    indptr: IntArray
    annotator: IntArray
    label: IntArray
    row: IntArray  # annotator * k + label: index into per-(annotator, label) tables
    weight: FloatArray
    gold: IntArray  # gold category code per item, -1 where unknown
    total_weight: float
    unit_weight: bool  # every weight is exactly one (kernels skip the multiplications)

    @classmethod
    def build(cls, data: Ratings, gold: IntArray) -> Prepared:
        n_items, k = data.n_items, data.n_categories
        indptr, order = _kernels.group_by_item(
            np.ascontiguousarray(data.item, dtype=np.int64), n_items
        )
        annotator = np.ascontiguousarray(data.annotator[order], dtype=np.int64)
        label = np.ascontiguousarray(data.label[order], dtype=np.int64)
        if data.weight.shape == data.item.shape:
            weight = np.ascontiguousarray(data.weight[order], dtype=np.float64)
        else:  # a Ratings built by hand without weights
            weight = np.ones(order.size)
        return cls(
            n_items=n_items,
            n_annotators=data.n_annotators,
            k=k,
            indptr=indptr,
            annotator=annotator,
            label=label,
            row=annotator * k + label,
            weight=weight,
            gold=gold,
            total_weight=float(weight.sum()),
            unit_weight=bool(np.all(weight == 1.0)),
        )

    @cached_property
    def row_weight(self) -> FloatArray:
        """Total rating weight per (annotator, label) row."""
        counts = np.bincount(self.row, weights=self.weight, minlength=self.n_annotators * self.k)
        return np.asarray(counts, dtype=np.float64)

    @cached_property
    def row_used(self) -> npt.NDArray[np.bool_]:
        """Whether each (annotator, label) row occurs at all."""
        return np.bincount(self.row, minlength=self.n_annotators * self.k) > 0

    def vote_counts(self) -> FloatArray:
        """Items × categories matrix of weighted votes."""
        item = np.repeat(np.arange(self.n_items, dtype=np.int64), np.diff(self.indptr))
        flat = np.bincount(
            item * self.k + self.label, weights=self.weight, minlength=self.n_items * self.k
        )
        return np.asarray(flat, dtype=np.float64).reshape(self.n_items, self.k)

    def clamp(self, probas: FloatArray) -> FloatArray:
        """Set the rows of gold items to one-hot vectors (in place) and return them."""
        known = np.flatnonzero(self.gold >= 0)
        if known.size:
            probas[known] = 0.0
            probas[known, self.gold[known]] = 1.0
        return probas


def normalize_rows(counts: FloatArray) -> FloatArray:
    """Rows scaled to sum to one; all-zero rows become uniform."""
    total = counts.sum(axis=1, keepdims=True)
    k = counts.shape[1]
    safe = np.where(total > 0, total, 1.0)
    return np.where(total > 0, counts / safe, 1.0 / k)


def argmax_codes(probas: FloatArray) -> IntArray:
    """Row-wise argmax (ties to the first category) as int64 codes."""
    return np.asarray(probas.argmax(axis=1), dtype=np.int64)


def gold_codes(data: Ratings, gold: Mapping[Any, Any] | None) -> IntArray:
    """Gold category code per item code (-1 where no gold label is known)."""
    out = np.full(data.n_items, -1, dtype=np.int64)
    if not gold:
        return out
    item_index = {v: i for i, v in enumerate(data.items.tolist())}
    cat_index = {v: c for c, v in enumerate(data.categories.tolist())}
    for item, value in gold.items():
        i = item_index.get(item)
        if i is None:
            continue
        c = cat_index.get(value)
        if c is None:
            raise ValueError(f"gold label {value!r} for item {item!r} is not among the categories")
        out[i] = c
    return out


class TruthInference(ABC):
    """Base of every truth-inference estimator (see the module docstring for the contract)."""

    labels_: npt.NDArray[Any]
    probas_: FloatArray
    priors_: FloatArray
    annotator_skills_: FloatArray
    log_likelihood_: float | None
    log_likelihood_history_: list[float]
    n_iter_: int

    def fit(self, data: Ratings, gold: Mapping[Any, Any] | None = None) -> Self:
        """Infer the true label of every item in ``data``; returns ``self``."""
        self._check_params()
        if data.n_ratings == 0:
            raise ValueError("no ratings to aggregate")
        prep = Prepared.build(data, gold_codes(data, gold))
        self.log_likelihood_ = None
        self.log_likelihood_history_ = []
        self.n_iter_ = 0
        if prep.k < 2:  # one category: nothing to infer
            self.probas_ = np.ones((prep.n_items, 1))
            self.priors_ = np.ones(1)
            self.annotator_skills_ = np.ones(prep.n_annotators)
            self._fit_single_category(prep)
            codes = np.zeros(prep.n_items, dtype=np.int64)
        else:
            codes = self._fit(prep)
        self.labels_ = data.categories[codes]
        return self

    def fit_predict(self, data: Ratings, gold: Mapping[Any, Any] | None = None) -> npt.NDArray[Any]:
        """Fit and return ``labels_``."""
        return self.fit(data, gold).labels_

    def fit_predict_proba(self, data: Ratings, gold: Mapping[Any, Any] | None = None) -> FloatArray:
        """Fit and return ``probas_``."""
        return self.fit(data, gold).probas_

    def _check_params(self) -> None:
        """Raise ``ValueError`` for invalid constructor parameters."""
        return

    @abstractmethod
    def _fit(self, prep: Prepared) -> IntArray:
        """Set the fitted attributes and return the label code of every item."""

    def _fit_single_category(self, prep: Prepared) -> None:
        """Set model-specific attributes when there is only one category."""
        return


class EMEstimator(TruthInference):
    """An estimator fitted by (generalised) expectation–maximisation.

    One iteration is an M-step from the current posteriors followed by an E-step under
    the new parameters, so after ``n_iter_`` iterations ``probas_`` is the posterior
    under the reported parameters and ``log_likelihood_`` is their log-likelihood.
    ``log_likelihood_history_`` holds it after every iteration (plus, for models that
    start from parameters rather than posteriors, the starting value first). With
    smoothing the objective is the penalised log-likelihood ``log p(y | θ) + log p(θ)``
    up to a constant (Dirichlet pseudo-counts act as extra observations), which EM
    cannot decrease. Iteration stops when the objective changes by less than
    ``tol`` per unit of rating weight, or after ``max_iter`` iterations.
    """

    def __init__(self, *, max_iter: int, tol: float) -> None:
        self.max_iter = max_iter
        self.tol = tol

    def _check_params(self) -> None:
        if not isinstance(self.max_iter, int | np.integer) or self.max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter!r}")
        if not np.isfinite(self.tol) or self.tol < 0:
            raise ValueError(f"tol must be finite and non-negative, got {self.tol!r}")

    @abstractmethod
    def _m_step(self, prep: Prepared, probas: FloatArray) -> None:
        """Update the parameters from the posteriors."""

    @abstractmethod
    def _e_step(self, prep: Prepared) -> tuple[FloatArray, float]:
        """Posteriors under the current parameters and the objective value."""

    def _run_em(self, prep: Prepared, probas: FloatArray, history: list[float]) -> FloatArray:
        """Iterate (M-step, E-step) from ``probas``; fills the EM attributes."""
        scale = max(prep.total_weight, 1.0)
        previous = history[-1] if history else None
        n_iter = 0
        for n_iter in range(1, self.max_iter + 1):  # noqa: B007 - n_iter is reported
            self._m_step(prep, probas)
            probas, objective = self._e_step(prep)
            history.append(objective)
            if previous is not None and abs(objective - previous) < self.tol * scale:
                break
            previous = objective
        self.n_iter_ = n_iter
        self.log_likelihood_history_ = history
        self.log_likelihood_ = history[-1]
        self.probas_ = probas
        return probas


class ConfusionEM(EMEstimator):
    """EM for models of the form ``P(label | truth, annotator) = e_j[truth, label]``.

    The E-step is the fused compiled pass :func:`_kernels.em_pass`, which also returns
    the next M-step's sufficient statistics (``counts[j*K + l, c] = Σ w q[i, c]`` and
    the class totals ``Σ_i q[i]``), so each iteration reads the ratings once.
    """

    _stats: tuple[FloatArray, FloatArray] | None = None

    #: Largest annotators × K × K parameter table accepted (8 bytes per cell: ~400 MB).
    max_table_cells = 50_000_000

    def _posterior_pass(
        self, prep: Prepared, log_e: FloatArray, log_prior: FloatArray
    ) -> tuple[FloatArray, float]:
        """Posteriors and log-likelihood; keeps the statistics for the next M-step."""
        probas = np.empty((prep.n_items, prep.k))
        ll, counts, totals = _kernels.em_pass(
            prep.indptr,
            prep.row,
            prep.weight,
            log_e,
            log_prior,
            prep.gold,
            probas,
            prep.n_annotators * prep.k,
            prep.unit_weight,
        )
        self._stats = (counts, totals)
        return probas, ll

    def _run_em(self, prep: Prepared, probas: FloatArray, history: list[float]) -> FloatArray:
        self._check_table_size(prep)
        self._stats = None  # never reuse statistics of another fit or start
        try:
            return super()._run_em(prep, probas, history)
        finally:
            self._stats = None

    def _check_table_size(self, prep: Prepared) -> None:
        cells = prep.n_annotators * prep.k * prep.k
        if cells > self.max_table_cells:
            raise ValueError(
                f"{type(self).__name__} needs an annotators × categories² table of {cells:,} "
                f"cells ({prep.n_annotators:,} annotators, {prep.k:,} categories), more than "
                f"{self.max_table_cells:,}; use MajorityVote, Wawa or GLAD for so many categories"
            )

    def _take_stats(self, prep: Prepared, probas: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Sufficient statistics of ``probas`` (from the last pass when it made them)."""
        stats = self._stats
        self._stats = None
        if stats is not None:
            return stats
        counts = _kernels.confusion_counts(
            prep.indptr, prep.row, prep.weight, probas, prep.n_annotators * prep.k
        )
        return counts, probas.sum(axis=0)
