"""Per-item vote tallies and the Dawid–Skene posterior of the consensus label.

Input: the project's annotations as columns (item id, annotator id, label code; see
:func:`labelloop.analytics.dashboard.read_columns`). Output, per item that has votes:
the number of votes ``n_i``, the plurality label and its share ``s_i = max_l n_il / n_i``,
the consensus label and its posterior ``p_i``, and the share of votes that differ from
the consensus ``d_i``.

The consensus of an item with two or more votes is the Dawid–Skene (1979) maximum a
posteriori class and ``p_i = max_c P(z_i = c | votes)``; the model is fitted on every
item with two or more votes at once, so an annotator's confusions learnt elsewhere
weigh their vote here. With more than :data:`MAX_DS_CATEGORIES` distinct labels (a
multi-label task's label sets, say) the confusion matrices would not fit in memory, and
the consensus is the plurality label with ``p_i = s_i``. A single vote has ``p_i = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from labelloop.stats import DawidSkene, Ratings

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

MAX_DS_CATEGORIES = 50
#: EM iterations at most (the fit stops earlier when the log-likelihood settles).
DS_MAX_ITER = 50


@dataclass(frozen=True)
class Votes:
    items: IntArray  # item ids, sorted
    n: IntArray
    top_share: FloatArray
    consensus: IntArray  # label code
    posterior: FloatArray
    differ: FloatArray
    categories: list[str]

    def index(self, item_ids: IntArray) -> IntArray:
        """Positions of ``item_ids`` (all of which have votes)."""
        return np.searchsorted(self.items, item_ids)


def tally(
    item: IntArray,
    annotator: IntArray,
    label: IntArray,
    categories: list[str],
    *,
    infer: bool = True,
) -> Votes:
    """The per-item figures of the module doc from long-form annotation columns
    (``infer=False``: the plurality label and its share, without the model)."""
    k = max(len(categories), 1)
    items, inverse = np.unique(item, return_inverse=True)
    n = np.bincount(inverse, minlength=items.size).astype(np.int64)
    pairs, counts = np.unique(inverse.astype(np.int64) * k + label, return_counts=True)
    p_item, p_label = pairs // k, pairs % k
    order = np.lexsort((p_label, -counts, p_item))  # per item: most votes first
    first = np.ones(order.size, dtype=bool)
    first[1:] = p_item[order][1:] != p_item[order][:-1]
    top = p_label[order][first]
    top_share = counts[order][first] / n
    consensus, posterior = top.copy(), np.where(n >= 2, top_share, 1.0)
    multi = n[inverse] >= 2
    if infer and multi.any() and len(categories) <= MAX_DS_CATEGORIES:
        ratings = Ratings.from_long(item[multi], annotator[multi], label[multi])
        model = DawidSkene(max_iter=DS_MAX_ITER).fit(ratings)
        at = np.searchsorted(items, np.asarray(ratings.items, dtype=np.int64))
        consensus[at] = np.asarray(model.labels_, dtype=np.int64)
        posterior[at] = model.probas_.max(axis=1)
    agree = np.bincount(inverse, weights=(label == consensus[inverse]), minlength=items.size)
    differ = 1.0 - agree / n
    return Votes(items, n, top_share, consensus, posterior, differ, categories)
