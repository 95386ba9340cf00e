"""Label-error detection with a model: confident learning and CROWDLAB-style consensus.

Two families live here.

**Confident learning** (Northcutt, Jiang & Chuang 2021, "Confident Learning: Estimating
Uncertainty in Dataset Labels", JAIR 70). Given one noisy label ``y_i`` per example and
out-of-sample predicted probabilities ``p_ik``, it estimates which labels are wrong:

* per-class threshold ``t_k = mean{p_ik : y_i = k}`` (the model's average
  self-confidence on examples labelled ``k``);
* confident joint ``C[j, k]`` = number of examples labelled ``j`` whose confidently
  predicted class is ``k`` (``p_ik >= t_k``; the argmax among several confident classes),
  then calibrated so row ``j`` sums to the count of label ``j`` and the whole matrix to ``n``;
* a filter turns ``C`` into a flagged set: ``prune_by_class`` flags, in class ``j``, the
  ``n_j - C[j, j]`` examples with the lowest ``p_ij``; ``prune_by_noise_rate`` flags, for
  every off-diagonal ``C[j, k]``, the ``C[j, k]`` examples labelled ``j`` with the largest
  margin ``p_ik - p_ij``; ``both`` is their intersection; ``confident_learning`` flags the
  off-diagonal examples of ``C`` itself; ``predicted_neq_given`` flags ``argmax p_i != y_i``.
  Examples whose given label is (within ``1e-6``) the argmax are never flagged.
  ``low_self_confidence`` / ``low_normalized_margin`` flag as many examples as
  ``confident_learning`` does, but the lowest-scoring ones (no argmax exemption).

The flagged sets are equal to ``cleanlab.filter.find_label_issues`` (cleanlab 2.x) on the
same inputs; ties are broken exactly as cleanlab's ``numpy.argsort`` does. The speed comes
from selecting the ``m`` extreme examples with ``numpy.partition`` (linear time) instead of
sorting, falling back to the same ``argsort`` only when ties straddle the cut.

**CROWDLAB** (Goh, Tkachenko & Mueller 2022, "CROWDLAB: Supervised learning to infer
consensus labels and quality scores for data with multiple annotators", arXiv:2210.06812).
Model probabilities and annotator votes are combined into a posterior per item, weighted
by how much better than "always predict the most common class" the model and each
annotator are; it yields a consensus label, a consensus quality score, a quality score for
every individual rating and an overall quality per annotator. Here it works on the
long-form sparse :class:`~labelloop.stats._data.Ratings` (never an items × annotators
array), and matches ``cleanlab.multiannotator.get_label_quality_multiannotator`` to
floating-point rounding (see ``docs/stats/label_errors.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from labelloop.stats._data import Ratings

FilterBy = Literal[
    "prune_by_noise_rate",
    "prune_by_class",
    "both",
    "confident_learning",
    "predicted_neq_given",
    "low_self_confidence",
    "low_normalized_margin",
]
RankBy = Literal["self_confidence", "normalized_margin"]
FILTERS: tuple[FilterBy, ...] = (
    "prune_by_noise_rate",
    "prune_by_class",
    "both",
    "confident_learning",
    "predicted_neq_given",
    "low_self_confidence",
    "low_normalized_margin",
)
RANKINGS: tuple[RankBy, ...] = ("self_confidence", "normalized_margin")

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
AnyFloatArray = npt.NDArray[np.floating[Any]]

_FLOAT_EQ = 1e-6  # cleanlab's FLOATING_POINT_COMPARISON
_THRESHOLD_FLOOR = 2e-6  # cleanlab's CONFIDENT_THRESHOLDS_LOWER_BOUND
_TINY = 1e-100
_CLIP_LOW = 1e-6  # cleanlab's CLIPPING_LOWER_BOUND


# ----------------------------------------------------------------------------- validation
def _check_inputs(labels: Any, pred_probs: Any) -> tuple[IntArray, AnyFloatArray]:
    """Validate and normalise ``labels`` (ints in ``0..K-1``) and ``pred_probs`` (n × K)."""
    probs = np.asarray(pred_probs)
    if probs.ndim != 2:
        raise ValueError(
            f"pred_probs must be a 2-D array (n examples × K classes), got shape {probs.shape}"
        )
    if probs.dtype not in (np.float32, np.float64):
        if not np.issubdtype(probs.dtype, np.number):
            raise ValueError(f"pred_probs must be numeric, got dtype {probs.dtype}")
        probs = probs.astype(np.float64)
    n, k = probs.shape
    if k < 2:
        raise ValueError(f"pred_probs needs at least 2 classes (columns), got {k}")
    lab = np.asarray(labels)
    if lab.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {lab.shape}")
    if lab.shape[0] != n:
        raise ValueError(f"labels has {lab.shape[0]} entries but pred_probs has {n} rows")
    if n == 0:
        raise ValueError("no examples: labels and pred_probs are empty")
    if lab.dtype == bool or not np.issubdtype(lab.dtype, np.integer):
        if (
            np.issubdtype(lab.dtype, np.floating)
            and np.all(np.isfinite(lab))
            and np.all(lab == np.round(lab))
        ):
            lab = lab.astype(np.int64)
        else:
            raise ValueError("labels must be integer class codes 0..K-1 (encode categories first)")
    lab = lab.astype(np.int64, copy=False)
    lo, hi = int(lab.min()), int(lab.max())
    if lo < 0 or hi >= k:
        raise ValueError(
            f"labels must lie in 0..{k - 1} (pred_probs has {k} columns); found {lo if lo < 0 else hi}"
        )
    lo_p, hi_p = float(probs.min()), float(probs.max())  # NaN propagates through min/max
    if np.isnan(lo_p) or np.isnan(hi_p):
        raise ValueError("pred_probs contains NaN values")
    if lo_p < 0.0 or hi_p > 1.0:
        raise ValueError(
            "pred_probs must be finite and lie in [0, 1] (pass probabilities, not logits)"
        )
    return lab, probs


# ----------------------------------------------------------------------------- building blocks
def _class_groups(labels: IntArray, k: int) -> tuple[IntArray, IntArray]:
    """Row indices grouped by label (ascending within a class) and the class offsets."""
    counts = np.bincount(labels, minlength=k)
    if k <= np.iinfo(np.uint16).max:
        order = np.argsort(labels.astype(np.uint16), kind="stable").astype(np.int64)  # radix sort
    else:
        order = np.argsort(labels, kind="stable").astype(np.int64)
    offsets = np.zeros(k + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return order, offsets


def _thresholds_from_groups(
    self_conf: AnyFloatArray, order: IntArray, offsets: IntArray, k: int
) -> FloatArray:
    sc_sorted = self_conf[order]
    out = np.empty(k, dtype=np.float64)
    for c in range(k):
        lo, hi = offsets[c], offsets[c + 1]
        # np.mean of a contiguous copy: same pairwise summation as cleanlab's
        out[c] = np.mean(sc_sorted[lo:hi]) if hi > lo else 2.0
    return np.clip(out, _THRESHOLD_FLOOR, None)


def confident_thresholds(labels: Any, pred_probs: Any) -> FloatArray:
    """Per-class confidence thresholds ``t_k = mean{p_ik : y_i = k}``.

    Classes that never occur as a label get ``2`` (no probability can reach it), and all
    thresholds are floored at ``2e-6``, as in Northcutt et al. (2021) and cleanlab.
    """
    lab, probs = _check_inputs(labels, pred_probs)
    k = probs.shape[1]
    order, offsets = _class_groups(lab, k)
    return _thresholds_from_groups(_self_confidence(lab, probs), order, offsets, k)


def _round_preserving_sum(values: FloatArray) -> IntArray:
    """Round to integers keeping the (rounded) total: cleanlab's largest-remainder rule."""
    floats = np.asarray(values, dtype=np.float64)
    ints = floats.round()
    orig_sum = np.sum(floats).round()
    int_sum = np.sum(ints).round()
    while abs(int_sum - orig_sum) > _FLOAT_EQ:
        diff = np.round(orig_sum - int_sum)
        increment = -1 if diff < 0.0 else 1
        changes = min(int(abs(diff)), len(floats))
        indices = np.argsort(floats - ints)[::-increment][:changes]
        ints[indices] += increment
        int_sum = np.sum(ints).round()
    return ints.astype(np.int64)


def _round_rows(matrix: FloatArray) -> IntArray:
    return np.vstack([_round_preserving_sum(row) for row in np.asarray(matrix, dtype=np.float64)])


def _calibrate(joint: IntArray, label_counts: IntArray) -> IntArray:
    """Scale rows to the label counts and the total to ``n``, then round (row totals kept)."""
    cal = (joint.T / np.clip(joint.sum(axis=1), _TINY, None) * label_counts).T
    cal = cal / np.clip(np.sum(cal), _TINY, None) * label_counts.sum()
    return _round_rows(cal)


def _confident_joint_parts(
    lab: IntArray, probs: AnyFloatArray, thresholds: FloatArray, calibrate: bool
) -> tuple[IntArray, IntArray]:
    """Confident joint (rows: given label, columns: confident true label) and off-diagonals."""
    k = probs.shape[1]
    confident = probs >= thresholds - _FLOAT_EQ
    if k < 256:  # summing the uint8 view is ~2x faster than a bool sum
        n_confident = confident.view(np.uint8).sum(axis=1, dtype=np.uint8)
    else:
        n_confident = np.count_nonzero(confident, axis=1)
    guess = confident.argmax(axis=1)
    multi = np.flatnonzero(n_confident > 1)  # usually few: take the argmax only there
    if multi.size:
        guess[multi] = probs[multi].argmax(axis=1)
    has = n_confident > 0
    given_c = lab[has]
    guess_c = guess[has]
    joint = np.bincount(given_c * k + guess_c, minlength=k * k).reshape(k, k).astype(np.int64)
    np.fill_diagonal(joint, joint.diagonal().clip(min=1))
    if calibrate:
        joint = _calibrate(joint, np.bincount(lab, minlength=k).astype(np.int64))
    off_diag = np.flatnonzero(has)[guess_c != given_c].astype(np.int64)
    return joint, off_diag


def confident_joint(labels: Any, pred_probs: Any, *, calibrate: bool = True) -> IntArray:
    """The (calibrated) confident joint ``C[given, true]`` of Northcutt et al. (2021).

    ``C[j, k]`` counts examples labelled ``j`` whose probability for ``k`` reaches ``t_k``
    (argmax among several confident classes); diagonal entries are at least 1. With
    ``calibrate`` every row is rescaled to the number of examples labelled ``j`` and the
    matrix to ``n``, then rounded keeping row totals.
    """
    lab, probs = _check_inputs(labels, pred_probs)
    k = probs.shape[1]
    order, offsets = _class_groups(lab, k)
    thresholds = _thresholds_from_groups(_self_confidence(lab, probs), order, offsets, k)
    return _confident_joint_parts(lab, probs, thresholds, calibrate)[0]


def _keep_at_least_n_per_class(pcm: IntArray, n: int, frac_noise: float) -> IntArray:
    """cleanlab's ``_keep_at_least_n_per_class`` on the prune-count matrix ``C.T``."""
    diag = np.diagonal(pcm)
    new_diag = np.maximum(diag, n)
    diff_per_col = new_diag - diag
    per_col = np.maximum(np.count_nonzero(pcm, axis=0) - 1.0, 1.0)
    new_mat = pcm - diff_per_col / per_col
    new_mat[new_mat < 0] = 0
    np.fill_diagonal(new_mat, new_diag)
    reduced = new_mat * frac_noise
    np.fill_diagonal(reduced, new_mat.diagonal())
    np.fill_diagonal(reduced, new_mat.diagonal() + np.sum(new_mat - reduced, axis=0))
    return _round_rows(reduced.astype(np.int64).astype(np.float64)).astype(np.int64)


def _smallest_mask(values: AnyFloatArray, m: int) -> BoolArray:
    """Mask of ``np.argsort(values)[:m]`` without sorting unless ties straddle the cut."""
    n = values.shape[0]
    if m <= 0:
        return np.zeros(n, dtype=bool)
    if m >= n:
        return np.ones(n, dtype=bool)
    cut = np.partition(values, m - 1)[m - 1]
    below = values < cut
    at = values == cut
    if int(below.sum()) + int(at.sum()) == m:
        return np.asarray(below | at, dtype=np.bool_)
    mask = np.zeros(n, dtype=bool)
    mask[np.argsort(values)[:m]] = True
    return mask


def _given_is_argmax(probs: AnyFloatArray, lab: IntArray, rows: IntArray) -> BoolArray:
    """For ``rows``: is the given label the argmax once it gets a ``1e-6`` bonus?"""
    sub = probs[rows].copy()
    sub[np.arange(rows.shape[0]), lab[rows]] += _FLOAT_EQ
    return np.asarray(sub.argmax(axis=1) == lab[rows])


def label_quality_scores(
    labels: Any, pred_probs: Any, *, method: RankBy = "self_confidence"
) -> FloatArray:
    """Per-example label quality in ``[0, 1]``; low means likely mislabelled.

    ``self_confidence``: ``p_{i, y_i}``. ``normalized_margin``:
    ``(p_{i, y_i} - max_{k != y_i} p_ik + 1) / 2`` (Northcutt et al. 2021; Kuan & Mueller
    2022, "Model-agnostic label quality scoring").
    """
    lab, probs = _check_inputs(labels, pred_probs)
    return np.asarray(_quality(lab, probs, method), dtype=np.float64)


def _self_confidence(lab: IntArray, probs: AnyFloatArray) -> AnyFloatArray:
    """``p[i, y_i]`` (flat take: faster than 2-D fancy indexing on a C-ordered array)."""
    k = probs.shape[1]
    flat = np.ascontiguousarray(probs).reshape(-1)
    return np.asarray(flat[np.arange(lab.shape[0], dtype=np.int64) * k + lab])


def _quality(
    lab: IntArray, probs: AnyFloatArray, method: str, self_conf: AnyFloatArray | None = None
) -> AnyFloatArray:
    """Scores in the dtype of ``probs`` (float32 stays float32: sorting ties as cleanlab)."""
    rows = np.arange(lab.shape[0])
    if self_conf is None:
        self_conf = _self_confidence(lab, probs)
    if method == "self_confidence":
        return self_conf
    if method == "normalized_margin":
        others = probs.copy()
        others[rows, lab] = -np.inf
        return np.asarray((self_conf - others.max(axis=1) + 1) / 2)
    raise ValueError(f"unknown ranking {method!r}; expected one of {', '.join(RANKINGS)}")


@dataclass(frozen=True, eq=False)
class LabelIssues:
    """Result of :func:`find_label_issues`.

    Attributes:
        is_issue: boolean mask, one per example (True: label likely wrong).
        ranked: indices of flagged examples, most likely error first (lowest quality).
        quality: per-example label quality score (``rank_by``), low = suspicious.
        thresholds: per-class confidence thresholds ``t_k``.
        confident_joint: calibrated confident joint ``C[given, true]`` (K × K ints).
        filter_by: the filter used.
        rank_by: the score used for ``quality`` and ``ranked``.
    """

    is_issue: BoolArray
    ranked: IntArray
    quality: FloatArray
    thresholds: FloatArray
    confident_joint: IntArray
    filter_by: str
    rank_by: str

    @property
    def n_issues(self) -> int:
        return int(self.is_issue.sum())

    @property
    def noise_rate(self) -> float:
        """Fraction of examples flagged."""
        return float(self.is_issue.mean())


def find_label_issues(
    labels: Any,
    pred_probs: Any,
    *,
    filter_by: FilterBy = "prune_by_noise_rate",
    rank_by: RankBy = "self_confidence",
    min_examples_per_class: int = 1,
    frac_noise: float = 1.0,
) -> LabelIssues:
    """Flag likely label errors by confident learning (Northcutt et al. 2021).

    Args:
        labels: given class code per example, ``0..K-1``.
        pred_probs: out-of-sample predicted probabilities, n × K (e.g. cross-validated);
            in-sample probabilities overfit the noisy labels and hide errors.
        filter_by: ``prune_by_noise_rate`` (default, as cleanlab), ``prune_by_class``,
            ``both``, ``confident_learning``, ``predicted_neq_given``,
            ``low_self_confidence`` or ``low_normalized_margin`` (module docstring).
        rank_by: ``self_confidence`` or ``normalized_margin`` for ordering the flagged set.
        min_examples_per_class: never prune a class below this many examples.
        frac_noise: flag only this fraction of the estimated errors per class (``(0, 1]``;
            prune filters only).

    The flagged set equals ``cleanlab.filter.find_label_issues(labels, pred_probs,
    filter_by=..., min_examples_per_class=..., frac_noise=...)`` and ``ranked`` equals its
    ``return_indices_ranked_by=rank_by`` output.
    """
    if filter_by not in FILTERS:
        raise ValueError(f"unknown filter_by {filter_by!r}; expected one of {', '.join(FILTERS)}")
    if rank_by not in RANKINGS:
        raise ValueError(f"unknown rank_by {rank_by!r}; expected one of {', '.join(RANKINGS)}")
    if not 0.0 < frac_noise <= 1.0:
        raise ValueError(f"frac_noise must lie in (0, 1], got {frac_noise}")
    if min_examples_per_class < 0:
        raise ValueError(f"min_examples_per_class must be >= 0, got {min_examples_per_class}")
    lab, probs = _check_inputs(labels, pred_probs)
    n, k = probs.shape
    order, offsets = _class_groups(lab, k)
    self_conf = _self_confidence(lab, probs)
    thresholds = _thresholds_from_groups(self_conf, order, offsets, k)
    joint, off_diag = _confident_joint_parts(lab, probs, thresholds, calibrate=True)

    mask = np.zeros(n, dtype=bool)
    if filter_by in ("prune_by_noise_rate", "prune_by_class", "both"):
        pcm = _keep_at_least_n_per_class(joint.T, min_examples_per_class, frac_noise)
        by_class = np.zeros(n, dtype=bool)
        by_rate = np.zeros(n, dtype=bool)
        do_class = filter_by in ("prune_by_class", "both")
        do_rate = filter_by in ("prune_by_noise_rate", "both")
        for c in range(k):
            rows = order[offsets[c] : offsets[c + 1]]
            n_c = rows.shape[0]
            if n_c <= min_examples_per_class or n_c <= 1:
                continue  # cleanlab: too few examples to prune (or a length-1 mask is ignored)
            sub = probs[rows]
            if do_class:
                num = int(n_c - pcm[c, c])
                if num >= 1:
                    by_class[rows[_smallest_mask(np.ascontiguousarray(sub[:, c]), num)]] = True
            if do_rate:
                hit = np.zeros(n_c, dtype=bool)
                for j in np.flatnonzero(pcm[:, c] > 0).tolist():
                    if j != c:
                        hit |= _smallest_mask(-(sub[:, j] - sub[:, c]), int(pcm[j, c]))
                by_rate[rows[hit]] = True
        mask = by_class & by_rate if filter_by == "both" else (by_class if do_class else by_rate)
    elif filter_by == "predicted_neq_given":
        mask = np.asarray(probs.argmax(axis=1) != lab)
    else:  # confident_learning, and the count for low_self_confidence / low_normalized_margin
        mask[off_diag] = True

    flagged = np.flatnonzero(mask)
    if flagged.size:
        mask[flagged[_given_is_argmax(probs, lab, flagged)]] = False
    if filter_by in ("low_self_confidence", "low_normalized_margin"):
        # the |confident_learning| lowest-scoring items, with no argmax exemption (cleanlab)
        score = _quality(lab, probs, filter_by[4:], self_conf)
        mask = _smallest_mask(score, int(mask.sum()))
    quality = _quality(lab, probs, rank_by, self_conf)
    idx = np.flatnonzero(mask).astype(np.int64)
    ranked = idx[np.argsort(quality[mask])]
    quality = np.asarray(quality, dtype=np.float64)
    return LabelIssues(
        is_issue=mask,
        ranked=ranked,
        quality=quality,
        thresholds=thresholds,
        confident_joint=joint,
        filter_by=filter_by,
        rank_by=rank_by,
    )


# ----------------------------------------------------------------------------- CROWDLAB
@dataclass(frozen=True, eq=False)
class MultiAnnotatorQuality:
    """Result of :func:`crowdlab` (codes index ``ratings.items`` / ``.annotators`` / ``.categories``).

    Attributes:
        consensus_label: consensus category code per item.
        consensus_quality: per item, posterior probability of the consensus label
            (CROWDLAB's consensus quality score; low = the consensus is doubtful).
        agreement: per item, fraction of its ratings equal to the consensus.
        num_annotations: ratings per item.
        posterior: items × K posterior class probabilities combining model and votes.
        rating_quality: per rating (row of ``ratings``), posterior probability of the label
            that annotator gave (CROWDLAB's per-annotation label quality).
        annotator_quality: per annotator, CROWDLAB annotator quality in ``[0, 1]`` (NaN for
            an annotator without ratings, or without multiply-rated items).
        annotator_agreement: per annotator, fraction of their ratings equal to the consensus.
        annotator_num_labeled: ratings per annotator.
        annotator_weight: per annotator, the CROWDLAB weight ``max(1 - err/err_mlc, 1e-6)``.
        annotator_worst_class: per annotator, the category code (among those they used)
            where their labels agree least with the consensus (ties: the one they used
            most, then the highest mean consensus quality, then the smallest code; -1 for
            an annotator without ratings).
        model_weight: the model's weight ``max(1 - err/err_mlc, 1e-6) * sqrt(mean ratings)``.
    """

    consensus_label: IntArray
    consensus_quality: FloatArray
    agreement: FloatArray
    num_annotations: IntArray
    posterior: FloatArray
    rating_quality: FloatArray
    annotator_quality: FloatArray
    annotator_agreement: FloatArray
    annotator_num_labeled: IntArray
    annotator_weight: FloatArray
    annotator_worst_class: IntArray
    model_weight: float


def _majority_vote(counts: FloatArray, probs: FloatArray, ratings: Ratings) -> IntArray:
    """Majority vote with cleanlab's tie-breaking chain.

    Ties go to (1) the highest model probability, (2) the rarest class overall, (3) the
    class whose voters agree most with the untied majority, (4) the smallest class code
    (cleanlab picks at random here; we stay deterministic).
    """
    k = counts.shape[1]
    modes = counts == counts.max(axis=1, keepdims=True)
    tied = modes.sum(axis=1) > 1
    if not tied.any():
        return np.asarray(modes.argmax(axis=1), dtype=np.int64)
    # (1) highest model probability among the modes
    pm = np.where(modes, probs, -np.inf)
    cand = modes & (pm == pm.max(axis=1, keepdims=True))
    # (2) rarest class overall
    fm = np.where(cand, counts.sum(axis=0)[None, :], np.inf)
    cand &= fm == fm.min(axis=1, keepdims=True)
    still = cand.sum(axis=1) > 1
    if still.any():
        # (3) mean agreement (with the untied majority vote) of the annotators behind each class
        untied = ~tied
        first = modes.argmax(axis=1)
        in_untied = untied[ratings.item]
        hits = (ratings.label == first[ratings.item]) & in_untied
        m = ratings.n_annotators
        num = np.bincount(ratings.annotator, weights=hits.astype(np.float64), minlength=m)
        den = np.bincount(ratings.annotator, weights=in_untied.astype(np.float64), minlength=m)
        with np.errstate(invalid="ignore", divide="ignore"):
            agree_ann = num / den
        nan = np.isnan(agree_ann)
        agree_ann[nan] = np.mean(agree_ann[~nan]) if (~nan).any() else np.nan
        cell = ratings.item * k + ratings.label
        total = np.bincount(cell, weights=agree_ann[ratings.annotator], minlength=counts.size)
        with np.errstate(invalid="ignore", divide="ignore"):
            score = total.reshape(counts.shape) / counts
        sm = np.where(cand, score, -np.inf)
        cand = np.where(still[:, None], cand & (sm == sm.max(axis=1, keepdims=True)), cand)
    # (4) smallest class code
    return np.asarray(cand.argmax(axis=1), dtype=np.int64)


def _crowdlab_stats(
    ratings: Ratings,
    probs: FloatArray,
    n_ann: IntArray,
    consensus: IntArray,
    agree_with_annotators: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray, float]:
    """Posterior, per-item agreement, annotator weights and model weight for one consensus."""
    k = probs.shape[1]
    item, ann, lab = ratings.item, ratings.annotator, ratings.label
    hits = (lab == consensus[item]).astype(np.float64)
    agreement = np.bincount(item, weights=hits, minlength=ratings.n_items) / n_ann
    multi = n_ann != 1
    consensus_likelihood = float(np.mean(agreement[multi]))
    non_consensus_likelihood = (1 - consensus_likelihood) / (k - 1)
    cons_multi = consensus[multi]
    mlc = np.argmax(np.bincount(cons_multi, minlength=k))
    mlc_error = max(float(np.mean(cons_multi != mlc)), _CLIP_LOW)
    ann_weight = np.clip(1 - (1 - agree_with_annotators) / mlc_error, _CLIP_LOW, None)
    model_error = float(np.mean(np.argmax(probs[multi], axis=1) != cons_multi))
    model_weight = max(1 - model_error / mlc_error, _CLIP_LOW) * float(np.sqrt(np.mean(n_ann)))
    w = ann_weight[ann]
    total = np.bincount(item, weights=w, minlength=ratings.n_items) + model_weight
    base = (
        probs * model_weight
        + (np.bincount(item, weights=w * non_consensus_likelihood, minlength=ratings.n_items))[
            :, None
        ]
    )
    bonus = np.bincount(
        item * k + lab,
        weights=w * (consensus_likelihood - non_consensus_likelihood),
        minlength=ratings.n_items * k,
    ).reshape(ratings.n_items, k)
    posterior = (base + bonus) / total[:, None]
    return posterior, agreement, ann_weight, model_weight


def _worst_class(ratings: Ratings, hits: FloatArray, consensus_quality: FloatArray) -> IntArray:
    """Per annotator: the used class with the lowest agreement with the consensus."""
    k, m = ratings.n_categories, ratings.n_annotators
    cell = ratings.annotator * k + ratings.label
    count = np.bincount(cell, minlength=m * k).reshape(m, k).astype(np.float64)
    agree = np.bincount(cell, weights=hits, minlength=m * k).reshape(m, k)
    quality = np.bincount(cell, weights=consensus_quality[ratings.item], minlength=m * k).reshape(
        m, k
    )
    used = count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(used, agree / count, np.inf)
        mean_quality = np.where(used, quality / count, -np.inf)
    cand = used & (accuracy == accuracy.min(axis=1, keepdims=True))
    most = np.where(cand, count, -np.inf)
    cand &= most == most.max(axis=1, keepdims=True)
    best = np.where(cand, mean_quality, -np.inf)
    cand &= best == best.max(axis=1, keepdims=True)
    return np.where(used.any(axis=1), cand.argmax(axis=1), -1).astype(np.int64)


def crowdlab(
    ratings: Ratings,
    pred_probs: Any,
    *,
    consensus_method: Literal["best_quality", "majority_vote"] = "best_quality",
) -> MultiAnnotatorQuality:
    """CROWDLAB consensus labels, consensus quality and annotator quality (Goh et al. 2022).

    Model weight ``w_M = max(1 - e_M / e_mlc, 1e-6) * sqrt(mean ratings per item)`` and
    annotator weight ``w_a = max(1 - (1 - A_a) / e_mlc, 1e-6)``, where ``e_mlc`` is the error
    of always answering the most common consensus class, ``e_M`` the model's disagreement
    with the consensus and ``A_a`` the leave-one-out agreement of annotator ``a`` with the
    other annotators of the same items. The posterior of item ``i`` is
    ``(w_M p_i + sum_a w_a L_a) / (w_M + sum_a w_a)`` with ``L_a[k] = P`` if ``a`` said
    ``k`` else ``(1 - P) / (K - 1)``, ``P`` the mean fraction of annotators agreeing with the
    consensus. ``best_quality`` re-takes the consensus as the posterior argmax (majority
    vote on exact ties) and recomputes everything; annotator quality blends the mean
    posterior probability of the annotator's labels with their agreement with the
    consensus on multiply-rated items, in proportion ``w_M : sum w_a * mean ratings / m``.

    Args:
        ratings: long-form nominal ratings; one rating per (item, annotator) pair.
        pred_probs: n_items × n_categories model probabilities, rows in ``ratings.items``
            order, columns in ``ratings.categories`` order (out-of-sample).
        consensus_method: ``best_quality`` (default) or ``majority_vote``.

    Raises:
        ValueError: shape mismatch, repeated (item, annotator) pairs, no item with two or
            more ratings, fewer than two categories.
    """
    if consensus_method not in ("best_quality", "majority_vote"):
        raise ValueError(
            f"unknown consensus_method {consensus_method!r}; expected best_quality or majority_vote"
        )
    probs = np.asarray(pred_probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape != (ratings.n_items, ratings.n_categories):
        raise ValueError(
            f"pred_probs must have shape (n_items, n_categories) = ({ratings.n_items}, "
            f"{ratings.n_categories}), got {probs.shape}"
        )
    if ratings.n_categories < 2:
        raise ValueError("CROWDLAB needs at least 2 categories")
    if not np.isfinite(probs).all() or probs.min() < 0 or probs.max() > 1:
        raise ValueError("pred_probs must be finite probabilities in [0, 1]")
    if ratings.n_ratings == 0:
        raise ValueError("no ratings")
    pair = ratings.item * ratings.n_annotators + ratings.annotator
    if np.unique(pair).shape[0] != pair.shape[0]:
        raise ValueError("CROWDLAB needs one rating per (item, annotator); found repeated pairs")
    k = ratings.n_categories
    item, ann, lab = ratings.item, ratings.annotator, ratings.label
    n_ann = np.bincount(item, minlength=ratings.n_items).astype(np.int64)
    if (n_ann == 0).any():
        first = int(np.flatnonzero(n_ann == 0)[0])
        raise ValueError(
            f"item {ratings.items[first]!r} has no ratings; drop unrated items (pred_probs rows too)"
        )
    if not (n_ann > 1).any():
        raise ValueError("CROWDLAB needs at least one item rated by two or more annotators")
    counts = (
        np.bincount(item * k + lab, minlength=ratings.n_items * k)
        .reshape(ratings.n_items, k)
        .astype(np.float64)
    )

    # leave-one-out agreement of each annotator with the other annotators of the same items
    agree_others = counts[item, lab] - 1
    num = np.bincount(ann, weights=agree_others, minlength=ratings.n_annotators)
    den = np.bincount(
        ann, weights=(n_ann[item] - 1).astype(np.float64), minlength=ratings.n_annotators
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        agree_ann = num / den
    active = (
        np.bincount(ann, minlength=ratings.n_annotators) > 0
    )  # Ratings.subset may leave some out
    no_overlap = (den == 0) & active
    if no_overlap.any():
        agree_ann[no_overlap] = np.mean(agree_ann[den > 0])
    agree_ann[~active] = np.nan

    consensus = _majority_vote(counts, probs, ratings)
    posterior, agreement, ann_weight, model_weight = _crowdlab_stats(
        ratings, probs, n_ann, consensus, agree_ann
    )
    if consensus_method == "best_quality":
        top = posterior.max(axis=1, keepdims=True)
        unique_top = (posterior == top).sum(axis=1) == 1
        consensus = np.where(unique_top, posterior.argmax(axis=1), consensus).astype(np.int64)
        posterior, agreement, ann_weight, model_weight = _crowdlab_stats(
            ratings, probs, n_ann, consensus, agree_ann
        )

    consensus_quality = posterior[np.arange(ratings.n_items), consensus]
    rating_quality = posterior[item, lab]
    m = ratings.n_annotators
    n_labeled = np.bincount(ann, minlength=m).astype(np.int64)
    hits = (lab == consensus[item]).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_lq = np.bincount(ann, weights=rating_quality, minlength=m) / n_labeled
        annotator_agreement = np.bincount(ann, weights=hits, minlength=m) / n_labeled
    on_multi = (n_ann[item] != 1).astype(np.float64)
    num_c = np.bincount(ann, weights=hits * on_multi, minlength=m)
    den_c = np.bincount(ann, weights=on_multi, minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        agree_multi = np.where(den_c > 0, num_c / np.where(den_c > 0, den_c, 1.0), np.nan)
    adjusted = float(np.nansum(ann_weight)) * (float(np.mean(n_ann)) / int(active.sum()))
    wq = model_weight / (model_weight + adjusted)
    annotator_quality = wq * mean_lq + (1 - wq) * agree_multi
    worst = _worst_class(ratings, hits, consensus_quality)
    return MultiAnnotatorQuality(
        consensus_label=consensus,
        consensus_quality=np.asarray(consensus_quality, dtype=np.float64),
        agreement=agreement,
        num_annotations=n_ann,
        posterior=posterior,
        rating_quality=np.asarray(rating_quality, dtype=np.float64),
        annotator_quality=np.asarray(annotator_quality, dtype=np.float64),
        annotator_agreement=annotator_agreement,
        annotator_num_labeled=n_labeled,
        annotator_weight=ann_weight,
        annotator_worst_class=worst,
        model_weight=float(model_weight),
    )
