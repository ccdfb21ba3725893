"""Splits and the shard file: what every training job reads."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from ecg_transfer.datasets import STANDARD_LEADS, RecordSet
from ecg_transfer.shards import (
    TEST,
    TRAIN,
    SplitSpec,
    read_shard,
    split_records,
    write_shard,
)


def _rs(labels, folds=None, t=8):
    labels = np.asarray(labels, dtype=np.uint8)
    n = len(labels)
    return RecordSet(
        signals=np.arange(n * 12 * t, dtype=np.float32).reshape(n, 12, t),
        labels=labels, classes=[f"c{k}" for k in range(labels.shape[1])],
        record_ids=[f"r{i:03d}" for i in range(n)], fs=100.0, leads=list(STANDARD_LEADS),
        patient_ids=None, folds=None if folds is None else np.asarray(folds), dropped=[],
        protocol="paper",
    )


def test_paper_split_is_sklearn_train_test_split_of_sorted_records():
    from sklearn.model_selection import train_test_split

    rs = _rs(np.eye(3, dtype=np.uint8)[np.arange(60) % 3])
    split, method = split_records(rs, SplitSpec(test_size=0.33, random_state=1))
    _, expected_test = train_test_split(np.arange(60), test_size=0.33, random_state=1)
    assert sorted(np.flatnonzero(split == TEST)) == sorted(expected_test)
    assert (split == TEST).sum() == 20  # ceil(0.33 * 60)
    assert "random_state=1" in method


def test_ribeiro_sized_split_matches_the_paper_counts():
    rs = _rs(np.zeros((827, 7)))
    split, _ = split_records(rs, SplitSpec(test_size=0.33, random_state=1))
    assert ((split == TRAIN).sum(), (split == TEST).sum()) == (554, 273)


def test_stratified_split_keeps_class_shares_and_pools_singletons():
    labels = [[1, 0]] * 40 + [[0, 1]] * 20 + [[1, 1]]  # one combination seen once
    rs = _rs(labels)
    split, method = split_records(rs, SplitSpec(test_size=0.25, random_state=0, stratify=True))
    test = np.asarray(labels)[split == TEST]
    # 16 test records; the singleton joins the largest group (41 records): 41 * 16 / 61 = 10.75
    assert (test == [1, 0]).all(axis=1).sum() + (test == [1, 1]).all(axis=1).sum() == 11
    assert (test == [0, 1]).all(axis=1).sum() == 5
    assert "stratify" in method


def test_test_fold_split_and_its_errors():
    rs = _rs(np.zeros((20, 2)), folds=np.arange(20) % 10 + 1)
    split, method = split_records(rs, SplitSpec(test_fold=10))
    assert list(np.flatnonzero(split == TEST)) == [9, 19]
    assert "strat_fold == 10" in method
    with pytest.raises(ValueError, match="only PTB-XL has strat_fold"):
        split_records(_rs(np.zeros((20, 2))), SplitSpec(test_fold=10))


def test_write_and_read_shard(tmp_path):
    rs = _rs(np.eye(2, dtype=np.uint8)[np.arange(10) % 2])
    split = np.array([0, 1] * 5, dtype=np.uint8)
    path = write_shard(tmp_path / "s.h5", "toy", rs, split, "manual")
    with h5py.File(path) as f:
        assert f["signals"].dtype == np.float32 and f["signals"].shape == (10, 12, 8)
        assert f["labels"].dtype == np.uint8
        assert list(f.attrs["classes"]) == ["c0", "c1"]
        assert list(f.attrs["leads"]) == list(STANDARD_LEADS)
        assert f.attrs["n_train"] == 5 and f.attrs["n_test"] == 5
    shard = read_shard(path)
    x, y = shard.part(TEST)
    np.testing.assert_array_equal(x, rs.signals[1::2])
    np.testing.assert_array_equal(y, rs.labels[1::2])
    assert shard.record_ids[3] == "r003"
    assert not list(tmp_path.glob("*.tmp"))


def test_read_shard_names_the_bad_file(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match=r"bad\.h5: cannot read shard"):
        read_shard(bad)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = [1]
    with pytest.raises(ValueError, match=r"other\.h5: not a shard"):
        read_shard(tmp_path / "other.h5")
