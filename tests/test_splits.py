"""Sound splits: units never straddle splits, sizes and label proportions hold, seeds decide."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ecg_transfer.splits import (
    TEST,
    TRAIN,
    VAL,
    SplitSpec,
    assign_split,
    carve_validation,
    fold_split,
    sound_split,
    units,
)


def _multilabel(n: int, seed: int = 0) -> np.ndarray:
    """Imbalanced multi-label data like ECG diagnoses: a few common labels, several rare ones,
    and some records with no label at all (Georgia's unlabelled records)."""
    rng = np.random.default_rng(seed)
    prevalence = np.array([0.45, 0.25, 0.12, 0.06, 0.03, 0.015, 0.008])
    return (rng.random((n, len(prevalence))) < prevalence).astype(np.uint8)


def _share_error(split: np.ndarray, labels: np.ndarray, which: int, size: float) -> float:
    """Mean over labels of |share of the label's records in ``which`` - size|."""
    per_label = labels[split == which].sum(0) / labels.sum(0)
    return float(np.abs(per_label - size).mean())


def _assert_units_whole(split: np.ndarray, unit: np.ndarray) -> None:
    for u in np.unique(unit):
        assert len(set(split[unit == u].tolist())) == 1, f"unit {u} is in two splits"


def test_units_merge_patients_and_duplicates_transitively():
    groups = ["p1", "p1", "p2", "p3", None, "", "p4"]
    dups = ["h1", "h2", "h2", "h3", "h3", "h9", "h8"]
    # 0-1 share p1, 1-2 share h2, 3-4 share h3; 5 and 6 alone; None/"" never merge
    assert units(7, groups, dups).tolist() == [0, 0, 0, 1, 1, 2, 3]
    assert units(3, [None, None, ""]).tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="groups has 2 entries but there are 3 records"):
        units(3, ["a", "b"])


def test_sound_split_keeps_patients_and_duplicates_in_one_split():
    n = 3000
    rng = np.random.default_rng(1)
    labels = _multilabel(n)
    groups = [f"p{i}" for i in rng.integers(0, 900, n)]
    dups = [f"h{i}" if i < 150 else None for i in rng.integers(0, 3000, n)]
    split = sound_split(labels, groups=groups, duplicate_keys=dups, test_size=0.2, val_size=0.1,
                        random_state=3)
    _assert_units_whole(split, units(n, groups, dups))
    assert split.dtype == np.uint8
    assert set(np.unique(split)) == {TRAIN, TEST, VAL}


def test_sound_split_sizes_within_tolerance():
    labels = _multilabel(5000)
    split = sound_split(labels, test_size=0.33, val_size=0.1, random_state=1)
    assert abs((split == TEST).mean() - 0.33) < 0.01
    assert abs((split == VAL).mean() - 0.10) < 0.01
    assert abs((split == TRAIN).mean() - 0.57) < 0.01


def test_iterative_stratification_beats_a_random_split_on_label_proportions():
    labels = _multilabel(4000, seed=2)
    strat = [_share_error(sound_split(labels, test_size=0.2, val_size=0.1, random_state=s),
                         labels, TEST, 0.2) for s in range(5)]
    rand = []
    for s in range(5):
        perm = np.random.default_rng(s).permutation(len(labels))
        split = np.full(len(labels), TRAIN)
        split[perm[: int(0.2 * len(labels))]] = TEST
        rand.append(_share_error(split, labels, TEST, 0.2))
    assert max(strat) < 0.01  # every label, even one of 32 records, within a point of 20 %
    assert np.mean(strat) < np.mean(rand) / 3


def test_stratification_with_patients_still_balances_labels():
    n = 4000
    labels = _multilabel(n, seed=4)
    groups = [f"p{i}" for i in np.random.default_rng(4).integers(0, 2000, n)]
    split = sound_split(labels, groups=groups, test_size=0.25, val_size=0.0, random_state=0)
    assert _share_error(split, labels, TEST, 0.25) < 0.03
    assert not (split == VAL).any()


def test_sound_split_is_deterministic_and_seeded():
    labels = _multilabel(800)
    a = sound_split(labels, test_size=0.3, val_size=0.1, random_state=7)
    b = sound_split(labels.copy(), test_size=0.3, val_size=0.1, random_state=7)
    c = sound_split(labels, test_size=0.3, val_size=0.1, random_state=8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_sound_split_all_zero_labels_and_tiny_inputs():
    zeros = np.zeros((100, 4), dtype=np.uint8)
    split = sound_split(zeros, test_size=0.3, val_size=0.1, random_state=0)
    assert (split == TEST).sum() == 30 and (split == VAL).sum() == 10
    assert sound_split(np.zeros((0, 3)), test_size=0.3, val_size=0.1, random_state=0).shape == (0,)
    one = sound_split(np.ones((1, 2)), test_size=0.3, val_size=0.1, random_state=0)
    assert one.tolist() == [TRAIN]
    three = sound_split(np.eye(3), test_size=0.1, val_size=0.1, random_state=0)
    assert sorted(three.tolist()) == [TRAIN, TEST, VAL]  # small splits still get one record
    none = sound_split(np.eye(3), test_size=0.0, val_size=0.0, random_state=0)
    assert (none == TRAIN).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"test_size": 1.2, "val_size": 0.1}, r"test_size must be in \[0, 1\), got 1.2"),
        ({"test_size": 0.6, "val_size": 0.5}, "test_size \\+ val_size must be below 1"),
        ({"test_size": 0.3, "val_size": -0.1}, r"val_size must be in \[0, 1\)"),
    ],
)
def test_sound_split_rejects_bad_sizes(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sound_split(np.eye(3), random_state=0, **kwargs)


def test_sound_split_rejects_one_dimensional_labels():
    with pytest.raises(ValueError, match=r"\(N, C\) multi-hot matrix, got .* shape \(5,\)"):
        sound_split(np.zeros(5), test_size=0.3, val_size=0.0, random_state=0)


def test_sound_split_is_fast_at_ptbxl_size():
    n = 21_799
    labels = _multilabel(n)
    groups = [f"p{i}" for i in np.random.default_rng(0).integers(0, 18_885, n)]
    start = time.perf_counter()
    split = sound_split(labels, groups=groups, test_size=0.1, val_size=0.1, random_state=0)
    elapsed = time.perf_counter() - start
    assert abs((split == TEST).mean() - 0.1) < 0.01
    assert elapsed < 10, f"sound_split took {elapsed:.1f} s for {n} records"  # ~0.5 s normally


def _paper_split(n: int, seed: int = 0) -> np.ndarray:
    split = np.full(n, TRAIN, dtype=np.uint8)
    split[np.random.default_rng(seed).permutation(n)[: n // 3]] = TEST
    return split


def test_carve_validation_moves_only_train_and_copies():
    labels = _multilabel(900)
    split = _paper_split(900)
    before = split.copy()
    out = carve_validation(split, labels, 0.1, seed=0)
    assert np.array_equal(split, before)  # the input is not modified
    assert np.array_equal(out == TEST, before == TEST)
    n_train = (before == TRAIN).sum()
    assert abs((out == VAL).sum() - 0.1 * n_train) <= 2
    moved = (before == TRAIN) & (out == VAL)
    assert _share_error(out[before == TRAIN], labels[before == TRAIN], VAL, 0.1) < 0.02
    assert moved.sum() == (out == VAL).sum()


def test_carve_validation_keeps_patients_together():
    n = 600
    labels = _multilabel(n)
    groups = [f"p{i}" for i in np.random.default_rng(5).integers(0, 150, n)]
    split = _paper_split(n)
    out = carve_validation(split, labels, 0.2, seed=1, groups=groups)
    train_or_val = out != TEST
    kept = [g for g, m in zip(groups, train_or_val, strict=True) if m]
    unit = units(len(kept), kept)
    _assert_units_whole(out[train_or_val], unit)
    assert (out == VAL).any()


def test_carve_validation_seeds_and_edge_cases():
    labels = _multilabel(300)
    split = _paper_split(300)
    assert np.array_equal(carve_validation(split, labels, 0.2, 3),
                          carve_validation(split, labels, 0.2, 3))
    assert not np.array_equal(carve_validation(split, labels, 0.2, 3),
                              carve_validation(split, labels, 0.2, 4))
    assert np.array_equal(carve_validation(split, labels, 0.0, 3), split)
    # a tiny fraction of a tiny train set still yields one VAL record, and train keeps one
    tiny = np.array([TRAIN, TRAIN, TEST], dtype=np.uint8)
    out = carve_validation(tiny, np.zeros((3, 2)), 0.01, 0)
    assert sorted(out.tolist()) == [TRAIN, TEST, VAL] and out[2] == TEST
    out = carve_validation(tiny, np.zeros((3, 2)), 0.99, 0)
    assert sorted(out.tolist()) == [TRAIN, TEST, VAL]
    single = np.array([TRAIN, TEST], dtype=np.uint8)
    assert carve_validation(single, np.zeros((2, 2)), 0.5, 0).tolist() == [TRAIN, TEST]


def test_carve_validation_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\), got 1.5"):
        carve_validation(np.zeros(4, np.uint8), np.zeros((4, 2)), 1.5, 0)
    with pytest.raises(ValueError, match="split has shape"):
        carve_validation(np.zeros(3, np.uint8), np.zeros((4, 2)), 0.1, 0)
    with pytest.raises(ValueError, match="all 4 train records belong to one group"):
        carve_validation(np.zeros(4, np.uint8), np.zeros((4, 2)), 0.5, 0, groups=["p"] * 4)


def test_fold_split_with_a_validation_fold_is_ptbxls_recommended_split():
    folds = np.repeat(np.arange(1, 11), 5)
    split, method = fold_split(folds, SplitSpec(test_fold=10, val_fold=9))
    assert set(folds[split == TEST]) == {10}
    assert set(folds[split == VAL]) == {9}
    assert set(folds[split == TRAIN]) == set(range(1, 9))
    assert "validation" in method
    labels = np.zeros((50, 2), dtype=np.uint8)
    same, _ = assign_split(SplitSpec(test_fold=10, val_fold=9), labels, protocol="sound",
                           default_val_size=0.1, folds=folds)
    assert np.array_equal(same, split)  # no extra validation carved on top of the fold


def test_a_validation_fold_needs_a_test_fold_and_no_val_size():
    with pytest.raises(ValueError, match=r"val_fold needs split\.test_fold"):
        SplitSpec(val_fold=9)
    with pytest.raises(ValueError, match="both 10"):
        SplitSpec(test_fold=10, val_fold=10)
    with pytest.raises(ValueError, match="not both"):
        SplitSpec(test_fold=10, val_fold=9, val_size=0.1)


def test_carve_validation_keeps_duplicated_signals_together():
    n = 40
    split = np.zeros(n, dtype=np.uint8)
    labels = np.eye(2, dtype=np.uint8)[np.arange(n) % 2]
    keys = [f"h{i // 4}" for i in range(n)]  # ten signals stored four times each
    out = carve_validation(split, labels, 0.3, seed=0, duplicate_keys=keys)
    for key in set(keys):
        members = {int(out[i]) for i in range(n) if keys[i] == key}
        assert len(members) == 1, key
    assert (out == VAL).any()
