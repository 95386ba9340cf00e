"""Label-error, sampling and drift benchmarks: labelloop.stats against the reference libraries.

Functions only (``run_all``); ``benchmarks/bench_stats.py`` assembles the table. Both
sides get the same arrays; every timing is the median of ``repeats`` runs. For label
issues ``max_abs_diff`` is the number of examples whose flag differs (must be 0) plus
the number of positions where the ranked order differs.

Run alone: ``python benchmarks/stats_label_errors.py [--quick]``.
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from labelloop.stats._data import Ratings
from labelloop.stats.distributions import benjamini_hochberg, chi2_homogeneity
from labelloop.stats.label_errors import crowdlab, find_label_issues


def _paired_times(
    ours: Callable[[], Any], ref: Callable[[], Any], repeats: int
) -> tuple[float, Any, float, Any]:
    """Medians of interleaved runs (ours, reference, ours, ...) so load drifts hit both."""
    ours_t, ref_t, ours_out, ref_out = [], [], None, None
    for _ in range(repeats):
        start = time.perf_counter()
        ref_out = ref()
        ref_t.append(time.perf_counter() - start)
        start = time.perf_counter()
        ours_out = ours()
        ours_t.append(time.perf_counter() - start)
    return statistics.median(ours_t), ours_out, statistics.median(ref_t), ref_out


def _median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def noisy_pred_probs(
    n: int, k: int, *, noise: float = 0.1, seed: int = 0
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Softmax probabilities of a decent model and labels with ``noise`` random flips."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), true] += 2.5
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    labels = true.copy()
    flip = rng.random(n) < noise
    labels[flip] = rng.integers(0, k, int(flip.sum()))
    return labels, p


def bench_confident_learning(
    n: int, k: int, filter_by: str, repeats: int, rank_by: str | None = None
) -> dict[str, Any]:
    from cleanlab.filter import find_label_issues as cl_find

    labels, p = noisy_pred_probs(n, k)
    kwargs: dict[str, Any] = {"filter_by": filter_by, "n_jobs": 1}
    if rank_by:
        kwargs["return_indices_ranked_by"] = rank_by
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours_s, ours, ref_s, ref = _paired_times(
            lambda: find_label_issues(
                labels,
                p,
                filter_by=filter_by,  # type: ignore[arg-type]
                rank_by=rank_by or "self_confidence",  # type: ignore[arg-type]
            ),
            lambda: cl_find(labels, p, **kwargs),
            repeats,
        )
    if rank_by:
        diff = int(ours.ranked.shape[0] != ref.shape[0]) or int((ours.ranked != ref).sum())
    else:
        diff = int((ours.is_issue != ref).sum())
    name = f"confident learning {filter_by}{' ranked' if rank_by else ''}, {n:,} x {k}"
    return {
        "name": name,
        "ours_seconds": ours_s,
        "reference_seconds": ref_s,
        "ratio": ref_s / ours_s,
        "max_abs_diff": float(diff),
        "notes": f"vs cleanlab find_label_issues(n_jobs=1); {ours.n_issues:,} flagged, "
        "identical set" + (" and order" if rank_by else ""),
    }


def bench_crowdlab(n_items: int, n_annotators: int, repeats: int) -> dict[str, Any]:
    import pandas as pd
    from cleanlab.multiannotator import get_label_quality_multiannotator

    rng = np.random.default_rng(1)
    k = 5
    true = rng.integers(0, k, n_items)
    per_item = 3
    item = np.repeat(np.arange(n_items), per_item)
    ann = np.concatenate(
        [rng.choice(n_annotators, per_item, replace=False) for _ in range(n_items)]
    )
    acc = rng.uniform(0.5, 0.95, n_annotators)
    correct = rng.random(item.size) < acc[ann]
    label = np.where(correct, true[item], rng.integers(0, k, item.size))
    logits = rng.normal(size=(n_items, k))
    logits[np.arange(n_items), true] += 1.5
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    ratings = Ratings.from_long(item, ann, label, categories=list(range(k)))
    dense = np.full((n_items, n_annotators), np.nan)
    dense[item, ann] = label
    frame = pd.DataFrame(dense)

    def ref_run() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return get_label_quality_multiannotator(frame, p, verbose=False)

    ref_s, ref = _median_time(ref_run, repeats)
    ours_s, ours = _median_time(lambda: crowdlab(ratings, p), repeats)
    quality = ref["label_quality"]
    stats = ref["annotator_stats"].sort_index()
    diff = max(
        float(np.abs(quality["consensus_quality_score"].to_numpy() - ours.consensus_quality).max()),
        float(np.nanmax(np.abs(stats["annotator_quality"].to_numpy() - ours.annotator_quality))),
    )
    same = bool(np.array_equal(quality["consensus_label"].to_numpy(), ours.consensus_label))
    return {
        "name": f"CROWDLAB, {n_items:,} items x {n_annotators} annotators ({item.size:,} ratings)",
        "ours_seconds": ours_s,
        "reference_seconds": ref_s,
        "ratio": ref_s / ours_s,
        "max_abs_diff": diff,
        "notes": "vs cleanlab get_label_quality_multiannotator (dense frame); "
        f"consensus labels {'identical' if same else 'DIFFER'}; ours from long-form Ratings",
    }


def bench_bh(m: int, repeats: int) -> dict[str, Any]:
    from statsmodels.stats.multitest import multipletests

    p = np.random.default_rng(2).random(m) ** 3
    ref_s, ref = _median_time(lambda: multipletests(p, method="fdr_bh"), repeats)
    ours_s, ours = _median_time(lambda: benjamini_hochberg(p), repeats)
    return {
        "name": f"Benjamini-Hochberg, {m:,} p-values",
        "ours_seconds": ours_s,
        "reference_seconds": ref_s,
        "ratio": ref_s / ours_s,
        "max_abs_diff": float(np.abs(ours[1] - ref[1]).max()),
        "notes": "vs statsmodels multipletests(method='fdr_bh'); same rejections"
        if np.array_equal(ours[0], ref[0])
        else "REJECTIONS DIFFER",
    }


def bench_chi2(repeats: int) -> dict[str, Any]:
    from scipy.stats import chi2_contingency

    table = np.random.default_rng(3).integers(1, 1000, size=(200, 50)).astype(float)
    ref_s, ref = _median_time(lambda: chi2_contingency(table), repeats)
    ours_s, ours = _median_time(lambda: chi2_homogeneity(table), repeats)
    return {
        "name": "chi-square homogeneity, 200 segments x 50 labels",
        "ours_seconds": ours_s,
        "reference_seconds": ref_s,
        "ratio": ref_s / ours_s,
        "max_abs_diff": abs(ours.statistic - ref.statistic),
        "notes": "vs scipy.stats.chi2_contingency",
    }


def run_all(quick: bool = False) -> list[dict[str, Any]]:
    """All label-error / sampling / drift benchmarks (``quick``: small sizes, one repeat)."""
    repeats = 1 if quick else 5
    n = 100_000 if quick else 1_000_000
    rows = [
        bench_confident_learning(n, 10, "prune_by_noise_rate", repeats),
        bench_confident_learning(n, 10, "both", repeats),
        bench_confident_learning(n, 10, "prune_by_noise_rate", repeats, rank_by="self_confidence"),
        bench_crowdlab(2_000 if quick else 20_000, 50, repeats),
        bench_bh(100_000 if quick else 1_000_000, repeats),
        bench_chi2(repeats),
    ]
    return rows


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    for row in run_all(quick):
        print(
            f"{row['name']:<70} ours {row['ours_seconds']:8.3f}s  ref {row['reference_seconds']:8.3f}s"
            f"  ratio {row['ratio']:6.1f}x  diff {row['max_abs_diff']:.2g}  {row['notes']}"
        )
