"""Truth-inference benchmarks: labelloop.stats.inference against crowd-kit.

Functions only (``run_all``); ``benchmarks/bench_stats.py`` assembles the table. Each
side is timed on its own native input (a prepared ``Ratings`` for us, a pandas frame
for crowd-kit) from the same generated labels; every result is the median of
``repeats`` runs, and ``max_abs_diff`` compares the posterior probabilities.

Run alone: ``python benchmarks/stats_inference.py [--quick]``.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from labelloop.stats._data import Ratings
from labelloop.stats.inference import DawidSkene, OneCoinDawidSkene


def simulate(
    n_ratings: int, n_classes: int, n_annotators: int, per_item: int = 5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ratings of a Dawid–Skene population: per-annotator accuracy in [0.5, 0.95]."""
    rng = np.random.default_rng(seed)
    n_items = n_ratings // per_item
    truth = rng.integers(n_classes, size=n_items)
    item = np.repeat(np.arange(n_items), per_item)
    annotator = rng.integers(n_annotators, size=item.size)
    accuracy = rng.uniform(0.5, 0.95, size=n_annotators)
    correct = rng.random(item.size) < accuracy[annotator]
    noise = (truth[item] + rng.integers(1, n_classes, size=item.size)) % n_classes
    label = np.where(correct, truth[item], noise)
    return item, annotator, label


def _ratings(item: np.ndarray, annotator: np.ndarray, label: np.ndarray) -> Ratings:
    """Build ``Ratings`` directly from integer codes (ids are 0..n-1 already)."""
    n_cat = int(label.max()) + 1
    cats = np.empty(n_cat, dtype=object)
    cats[:] = list(range(n_cat))
    items = np.empty(int(item.max()) + 1, dtype=object)
    items[:] = list(range(items.size))
    anns = np.empty(int(annotator.max()) + 1, dtype=object)
    anns[:] = list(range(anns.size))
    return Ratings(
        item=item.astype(np.int64),
        annotator=annotator.astype(np.int64),
        label=label.astype(np.int64),
        items=items,
        annotators=anns,
        categories=cats,
        weight=np.ones(item.size),
    )


def _median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """Median wall-clock and median CPU seconds of ``repeats`` calls, and the last result.

    Both sides are single-threaded, so CPU time is the steadier figure on a shared
    machine; both are reported.
    """
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), out


def bench_em(
    name: str,
    ours_cls: type[DawidSkene],
    ck_name: str,
    n_ratings: int,
    n_iter: int,
    repeats: int,
    ck_tol: float = 0.0,
) -> dict[str, Any]:
    """Time ``n_iter`` EM iterations of ours and of crowd-kit (``tol=ck_tol``)."""
    import crowdkit.aggregation as ck

    item, annotator, label = simulate(n_ratings, 5, 500)
    data = _ratings(item, annotator, label)
    frame = pd.DataFrame({"task": item, "worker": annotator, "label": label})
    model = ours_cls(smoothing=0.0, prior_smoothing=0.0, min_prob=1e-10, max_iter=n_iter, tol=0.0)
    model.fit(data)  # compile / warm caches
    ours_s, ours_cpu, ours = _median_time(lambda: model.fit(data), repeats)
    ref = getattr(ck, ck_name)(n_iter=n_iter, tol=ck_tol)
    ref_s, ref_cpu, ref = _median_time(lambda: ref.fit(frame), max(1, repeats // 2 + 1))
    probas = ref.probas_.reindex(index=range(data.n_items), columns=range(5)).to_numpy()
    diff = float(np.abs(ours.probas_ - probas).max())
    same = bool((ours.probas_.argmax(1) == probas.argmax(1)).all())
    return {
        "name": name,
        "ours_seconds": ours_s,
        "reference_seconds": ref_s,
        "ratio": ref_s / ours_s,
        "max_abs_diff": diff,
        "notes": (
            f"{n_ratings:,} ratings, 5 classes, 500 annotators, {n_iter} iterations, "
            f"crowd-kit tol={ck_tol} "
            f"(CPU: ours {ours_cpu:.3f}s, crowd-kit {ref_cpu:.3f}s, ratio {ref_cpu / ours_cpu:.1f}x) "
            f"(crowd-kit ran {len(ref.loss_history_)}); labels equal: {same}; "
            f"crowd-kit {ck_name} vs ours with smoothing=0, min_prob=1e-10"
            + (
                " (max|Δ| 1e-10: crowd-kit clips its returned probabilities at 1e-10 in place)"
                if diff <= 2e-10
                else ""
            )
        ),
    }


def run_all(quick: bool = False) -> list[dict[str, Any]]:
    """All truth-inference benchmarks; ``quick`` uses 100,000 ratings instead of 1,000,000."""
    n = 100_000 if quick else 1_000_000
    repeats = 3 if quick else 5
    return [
        bench_em("Dawid–Skene EM", DawidSkene, "DawidSkene", n, 20, repeats),
        # crowd-kit's one-coin M-step applies a Python function per row (~3 min at 1M);
        # tol=-inf keeps it from stopping early when its bound dips
        bench_em(
            "one-coin Dawid–Skene EM",
            OneCoinDawidSkene,
            "OneCoinDawidSkene",
            n // 10,
            20,
            repeats,
            ck_tol=-np.inf,
        ),
    ]


if __name__ == "__main__":
    for row in run_all(quick="--quick" in sys.argv):
        print(
            f"{row['name']:<28} ours {row['ours_seconds']:.3f}s  ref {row['reference_seconds']:.3f}s  "
            f"ratio {row['ratio']:.1f}x  max|Δ| {row['max_abs_diff']:.2e}  {row['notes']}"
        )
