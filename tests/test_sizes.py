"""The dataset-size axis: nested, seeded, label-stratified training subsets (splits.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ecg_transfer.splits import (
    TEST,
    TRAIN,
    UNUSED,
    VAL,
    nested_subset,
    stratified_order,
    subset_size,
)


def _single_label(n: int, shares=(0.6, 0.25, 0.1, 0.05), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cls = rng.choice(len(shares), size=n, p=shares)
    return np.eye(len(shares), dtype=np.uint8)[cls]


def test_smaller_subsets_are_contained_in_larger_ones():
    labels = _single_label(600)
    split = np.where(np.arange(600) % 3 == 0, TEST, TRAIN).astype(np.uint8)
    kept = [set(np.flatnonzero(nested_subset(split, labels, n, seed=3) == TRAIN))
            for n in (20, 50, 100, 200, 400)]
    for small, large in itertools.pairwise(kept):
        assert small < large
    assert [len(k) for k in kept] == [20, 50, 100, 200, 400]


def test_every_prefix_keeps_each_class_share_within_one_record():
    labels = _single_label(1000)
    order = stratified_order(labels, seed=1)
    assert sorted(order) == list(range(1000))  # a permutation
    share = labels.mean(axis=0)
    for n in range(1, 1001):
        counts = labels[order[:n]].sum(axis=0)
        assert np.all(np.abs(counts - n * share) <= 1.0 + 1e-9), n


def test_multilabel_prefixes_keep_the_rarest_labels_within_one_record():
    rng = np.random.default_rng(2)
    labels = (rng.random((800, 5)) < [0.5, 0.3, 0.1, 0.05, 0.02]).astype(np.uint8)
    order = stratified_order(labels, seed=0)
    rarest = int(labels.sum(axis=0).argmin())
    share = labels[:, rarest].mean()
    for n in (50, 100, 200, 400, 800):
        assert abs(labels[order[:n], rarest].sum() - n * share) <= 1.0 + 1e-9
        # every label within one record per rarest-label group (5 labels + unlabelled)
        assert np.all(np.abs(labels[order[:n]].sum(axis=0) - n * labels.mean(axis=0)) <= 6)


def test_test_and_validation_never_change_and_the_rest_of_train_is_unused():
    labels = _single_label(300)
    split = np.array([TRAIN, TEST, VAL] * 100, dtype=np.uint8)
    out = nested_subset(split, labels, 0.25, seed=0)
    assert np.array_equal(out == TEST, split == TEST)
    assert np.array_equal(out == VAL, split == VAL)
    assert (out == TRAIN).sum() == 25 and (out == UNUSED).sum() == 75


def test_the_subset_depends_on_the_seed_and_only_on_it():
    labels = _single_label(200)
    split = np.zeros(200, dtype=np.uint8)
    a, b = nested_subset(split, labels, 50, seed=0), nested_subset(split, labels, 50, seed=0)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, nested_subset(split, labels, 50, seed=1))


@pytest.mark.parametrize(("size", "message"), [
    (0, "count >= 1 or a fraction"), (-3, "count >= 1"), (12.5, "neither a whole count"),
    (5000, "exceeds the 100 training records"), (True, "count >= 1"),
])
def test_a_bad_size_names_the_problem(size, message):
    with pytest.raises(ValueError, match=message):
        subset_size(size, 100, "train_sizes.ptbxl")


def test_fractions_and_counts():
    assert subset_size(0.1, 1000, "x") == 100
    assert subset_size(1000, 1000, "x") == 1000
    assert subset_size(0.0001, 100, "x") == 1  # never an empty training set
