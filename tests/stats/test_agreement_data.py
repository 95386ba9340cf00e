"""The Ratings data contract: vectorised builders agree with the generic path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from labelloop.stats._data import Ratings


def _same(a: Ratings, b: Ratings) -> None:
    assert a.categories.tolist() == b.categories.tolist()
    assert a.items.tolist() == b.items.tolist()
    assert a.annotators.tolist() == b.annotators.tolist()
    np.testing.assert_array_equal(a.item, b.item)
    np.testing.assert_array_equal(a.annotator, b.annotator)
    np.testing.assert_array_equal(a.label, b.label)
    if a.values is None:
        assert b.values is None
    else:
        assert b.values is not None
        np.testing.assert_array_equal(a.values, b.values)
    assert a.level == b.level


@pytest.mark.parametrize(
    ("labels", "kw"),
    [
        (np.array([3, 1, 2, 3, 7, 1]), {}),
        (np.array([0.5, 1.5, 0.5, 2.0, 2.0, 9.25]), {"level": "interval"}),
        (np.array(["b", "a", "c", "a", "b", "b"]), {}),
        (np.array([3, 1, 2, 3, 1, 1]), {"categories": [1, 2, 3, 4]}),
        (np.array(["b", "a", "c", "a", "b", "b"]), {"categories": ["c", "b", "a"]}),
        (np.array([-5, 10**9, 3, 3, -5, 10**9]), {"level": "ordinal"}),
    ],
)
def test_vectorised_path_equals_generic_path(labels: np.ndarray, kw: dict[str, object]) -> None:
    items = np.array([10, 10, 11, 11, 12, 12])
    anns = np.array([1, 2, 1, 2, 1, 2])
    fast = Ratings.from_long(items, anns, labels, **kw)  # type: ignore[arg-type]
    slow = Ratings.from_long(items.tolist(), anns.tolist(), labels.tolist(), **kw)  # type: ignore[arg-type]
    _same(fast, slow)


def test_vectorised_path_errors() -> None:
    with pytest.raises(ValueError, match="row 1: label is missing"):
        Ratings.from_long(np.array([0, 1]), np.array([0, 1]), np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="row 0: item is missing"):
        Ratings.from_long(np.array([np.nan, 1.0]), np.array([0, 1]), np.array([1, 2]))
    with pytest.raises(ValueError, match="not among the declared categories"):
        Ratings.from_long(np.array([0, 1]), np.array([0, 1]), np.array([1, 5]), categories=[1, 2])
    with pytest.raises(ValueError, match="equal lengths"):
        Ratings.from_long(np.array([0, 1]), np.array([0]), np.array([1, 5]))
    with pytest.raises(ValueError, match="numeric labels"):
        Ratings.from_long(
            np.array([0, 1]), np.array([0, 1]), np.array(["a", "b"]), level="interval"
        )
    with pytest.raises(ValueError, match="duplicates"):
        Ratings.from_long(
            np.array([0, 1]), np.array([0, 1]), np.array([1, 2]), categories=[1, 1, 2]
        )
    with pytest.raises(ValueError, match="unknown level"):
        Ratings.from_long(np.array([0]), np.array([0]), np.array([1]), level="cardinal")  # type: ignore[arg-type]


def test_from_matrix_layouts_and_counts() -> None:
    m = np.array([[1.0, np.nan, 2.0], [1.0, 3.0, np.nan]])  # 2 annotators × 3 items
    a = Ratings.from_matrix(m, rows="annotators")
    b = Ratings.from_matrix(m.T, rows="items")
    for r in (a, b):
        assert r.n_items == 3 and r.n_annotators == 2 and r.n_ratings == 4
        assert r.categories.tolist() == [1, 2, 3]
        assert r.item_counts.tolist() == [2, 1, 1]
        assert r.annotator_counts.tolist() == [2, 2]
        np.testing.assert_array_equal(r.item_counts, np.bincount(r.item, minlength=3))
    pairs_a = sorted(zip(a.item.tolist(), a.annotator.tolist(), a.label.tolist(), strict=True))
    pairs_b = sorted(zip(b.item.tolist(), b.annotator.tolist(), b.label.tolist(), strict=True))
    assert pairs_a == pairs_b
    # an all-missing column stays an item; many rows take the divmod path
    wide = np.full((2000, 3), np.nan)
    wide[:, :2] = 1.0
    r = Ratings.from_matrix(wide, rows="annotators")
    assert r.n_items == 3 and r.item_counts.tolist() == [2000, 2000, 0]
    with pytest.raises(ValueError, match="two-dimensional"):
        Ratings.from_matrix(np.zeros(3))
    with pytest.raises(ValueError, match="rows must be"):
        Ratings.from_matrix(m, rows="columns")  # type: ignore[arg-type]


def test_from_matrix_object_and_string_cells() -> None:
    obj = np.array([["a", None], ["b", "a"]], dtype=object)
    r = Ratings.from_matrix(obj)
    assert r.categories.tolist() == ["a", "b"] and r.n_ratings == 3
    num = np.array([[1.5, None], [2.5, 1.5]], dtype=object)
    assert Ratings.from_matrix(num, level="interval").values is not None
    with pytest.raises(ValueError, match="mixed types"):
        Ratings.from_matrix(np.array([["a", 1]], dtype=object))


def test_frames_take_the_same_path() -> None:
    data = {"item": [1, 1, 2, 2], "annotator": ["x", "y", "x", "y"], "label": ["a", "b", "a", "a"]}
    a = Ratings.from_frame(pd.DataFrame(data))
    b = Ratings.from_frame(pl.DataFrame(data))
    _same(a, b)
    with pytest.raises(ValueError, match="column 'lbl' not found"):
        Ratings.from_frame(pd.DataFrame(data), label="lbl")


def test_subset_keeps_codes_and_weights_are_read_only_ones() -> None:
    r = Ratings.from_matrix(np.array([[1.0, 2.0], [1.0, 1.0]]))
    assert (r.weight == 1).all() and r.counts().shape == (2, 2)
    s = r.subset(r.annotator == 0)
    assert s.n_items == 2 and s.n_ratings == 2 and s.categories.tolist() == [1, 2]
    assert s.item_counts.tolist() == [1, 1]
