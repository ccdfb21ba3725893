"""Splits and the shard file: what every training job reads."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest

from ecg_transfer.datasets import STANDARD_LEADS, RecordSet
from ecg_transfer.shards import read_shard, write_shard
from ecg_transfer.splits import TEST, TRAIN, VAL, SplitSpec, split_records


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


# --- the index + parts stages ------------------------------------------------------------------


def _stages(dataset, root, out, protocol="paper", split=None, parts=1, **pre):
    from ecg_transfer.prepare import make_part, write_index

    meta = write_index(dataset, root, out / "i.csv", out / "i.json",
                       preprocess={"protocol": protocol, "fs": 100, "seconds": 10, **pre},
                       split=split or {"test_size": 0.33, "random_state": 1},
                       parts=parts)
    paths = []
    for i in range(meta["n_parts"]):
        make_part(out / "i.csv", out / "i.json", root, i, out / f"part{i}.h5",
                  out / f"part{i}.quarantine.csv")
        paths.append(out / f"part{i}.h5")
    return meta, paths


def test_ribeiro_827_records_split_554_273_over_parts(tmp_path):
    from test_datasets import write_ribeiro

    rng = np.random.default_rng(0)
    tracings = rng.normal(size=(827, 4096, 12)).astype(np.float32)
    gold = (rng.random((827, 6)) < 0.05).astype(int)
    write_ribeiro(tmp_path / "data", tracings, gold)
    meta, paths = _stages("ribeiro", tmp_path / "data", tmp_path, parts=3)
    assert meta["n_parts"] == 3 and (meta["n_train"], meta["n_test"]) == (554, 273)
    assert meta["count_warnings"] == []  # the paper's own counts: nothing to warn about
    shard = read_shard(paths)
    assert shard.signals.shape == (827, 12, 1000)
    assert ((shard.split == TRAIN).sum(), (shard.split == TEST).sum()) == (554, 273)
    assert shard.record_ids[:2] == ["000", "001"] and shard.record_ids[-1] == "826"
    norm = (gold.sum(axis=1) == 0).astype(np.uint8)[:, None]
    np.testing.assert_array_equal(shard.labels, np.hstack([norm, gold]))
    # the same split as the paper's rule on the same sorted records
    from sklearn.model_selection import train_test_split

    _, test_idx = train_test_split(np.arange(827), test_size=0.33, random_state=1)
    assert sorted(np.flatnonzero(shard.split == TEST)) == sorted(test_idx)
    # minmax per record and lead; the leads in the file's order, as the paper fed them
    assert shard.signals.min() == -1.0 and shard.signals.max() == 1.0
    expected = tracings[5, 48:4048:4].T
    assert shard.leads[3:6] == ["aVL", "aVF", "aVR"]
    lo, hi = expected.min(axis=1, keepdims=True), expected.max(axis=1, keepdims=True)
    np.testing.assert_allclose(shard.signals[5], 2 * (expected - lo) / (hi - lo) - 1, atol=1e-5)
    with h5py.File(paths[1]) as f:
        # by position after sorting: 276 / 276 / 275 records
        assert f.attrs["part"] == 1 and f.attrs["n_parts"] == 3 and len(f["record_ids"]) == 276
        assert f["signals"].chunks == (1, 12, 1000)


def test_sound_split_keeps_patients_and_duplicates_together(tmp_path):
    import shutil

    from test_datasets import write_challenge, write_ptbxl

    # PTB-XL: 40 records of 12 patients, sound protocol, resample_poly 100 Hz copy kept as is
    rows = [{"ecg_id": i, "scp_codes": "{'NORM': 100.0}" if i % 3 else "{'IMI': 100.0}",
             "patient_id": 500 + i % 12} for i in range(1, 41)]
    write_ptbxl(tmp_path / "ptbxl", rows)
    meta, paths = _stages("ptbxl", tmp_path / "ptbxl", tmp_path, protocol="sound",
                          split={"test_size": 0.3, "val_size": 0.2, "random_state": 0},
                          parts=3)
    shard = read_shard(paths)
    assert shard.protocol == "sound" and set(shard.split) == {TRAIN, TEST, VAL}
    assert shard.patient_ids is not None and len(shard.patient_ids) == 40
    patients = np.array(shard.patient_ids)
    for patient in set(shard.patient_ids):
        assert len(set(shard.split[patients == patient])) == 1, patient
    assert "sound_split" in meta["split_method"]
    # Georgia: byte-identical signals under two names stay in one split (content hash)
    georgia = tmp_path / "georgia"
    rng = np.random.default_rng(3)
    for i in range(30):
        write_challenge(georgia, f"E{i:05d}", rng.integers(-500, 500, (12, 5000)),
                        "426783006" if i % 2 else "164889003")
    for i in range(0, 30, 3):  # E00030.. duplicates of E00000, E00003, ...
        for suffix in (".mat", ".hea"):
            shutil.copy(georgia / f"E{i:05d}{suffix}", georgia / f"E{30 + i:05d}{suffix}")
        hea = georgia / f"E{30 + i:05d}.hea"
        hea.write_text(hea.read_text().replace(f"E{i:05d}", f"E{30 + i:05d}"))
    out = tmp_path / "g"
    out.mkdir()
    _, paths = _stages("georgia", georgia, out, protocol="sound", parts=6)
    shard = read_shard(paths)
    assert len(shard.record_ids) == 40
    index = pd.read_csv(out / "i.csv", dtype={"record_id": str})
    for i in range(0, 30, 3):
        a, b = f"E{i:05d}", f"E{30 + i:05d}"
        ha, hb = (index.loc[index.record_id == r, "hash"].item() for r in (a, b))
        assert ha == hb
        assert shard.split[shard.record_ids.index(a)] == shard.split[shard.record_ids.index(b)]
    # sound: millivolts, anti-aliased resample_poly (500 -> 100 Hz), not x[::5]
    import scipy.signal

    from ecg_transfer.datasets import load

    rs = load("georgia", georgia, "sound")
    from ecg_transfer.datasets.wfdb_io import read_record

    x, _ = read_record(georgia / "E00001.hea")
    expected = scipy.signal.resample_poly(x, 1, 5, axis=-1, padtype="line")[:, :1000]
    np.testing.assert_allclose(rs.signals[1], expected, rtol=1e-5, atol=1e-6)


def test_sound_merges_equivalent_codes_paper_does_not(tmp_path):
    from test_datasets import ramp, write_challenge

    from ecg_transfer.datasets import load

    write_challenge(tmp_path, "E00001", ramp(5000), "63593006,164889003")  # SVPB = PAC, AF
    write_challenge(tmp_path, "E00002", ramp(5000), "284470004")  # PAC
    paper = load("georgia", tmp_path, "paper")
    sound = load("georgia", tmp_path, "sound")
    pac, af = paper.classes.index("PAC"), paper.classes.index("AF")
    assert paper.labels[0, pac] == 0 and paper.labels[0, af] == 1
    assert sound.labels[0, pac] == 1 and sound.labels[0, af] == 1 and sound.labels[1, pac] == 1
    cpsc = tmp_path / "cpsc"
    write_challenge(cpsc, "A0001", ramp(5000), "713427006")  # CRBBB = RBBB
    rbbb = load("cpsc2018", cpsc, "sound").classes.index("RBBB")
    assert load("cpsc2018", cpsc, "sound").labels[0, rbbb] == 1
    assert load("cpsc2018", cpsc, "paper").labels[0].sum() == 0


def test_read_shard_of_parts_must_agree(tmp_path):
    a = write_shard(tmp_path / "a.h5", "toy", _rs(np.eye(2, dtype=np.uint8)[[0, 1, 0]]),
                    np.zeros(3, np.uint8), "m")
    b = write_shard(tmp_path / "b.h5", "other", _rs(np.eye(2, dtype=np.uint8)[[1, 1]]),
                    np.ones(2, np.uint8), "m")
    with pytest.raises(ValueError, match=r"b\.h5: dataset 'other' differs from .*a\.h5"):
        read_shard([a, b])
    c = write_shard(tmp_path / "c.h5", "toy", _rs(np.eye(2, dtype=np.uint8)[[1, 1]]),
                    np.ones(2, np.uint8), "m")
    both = read_shard([a, c])
    assert both.split.tolist() == [0, 0, 0, 1, 1] and len(both.record_ids) == 5
    assert both.labels.tolist() == [[1, 0], [0, 1], [1, 0], [0, 1], [0, 1]]


def test_a_paper_run_whose_counts_differ_from_the_papers_says_so(tmp_path, caplog):
    from test_datasets import write_ribeiro

    rng = np.random.default_rng(0)
    write_ribeiro(tmp_path / "data", rng.normal(size=(30, 4096, 12)).astype(np.float32),
                  (rng.random((30, 6)) < 0.2).astype(int))
    with caplog.at_level("WARNING", logger="ecg_transfer.prepare"):
        meta, paths = _stages("ribeiro", tmp_path / "data", tmp_path)
    assert any("30 records found" in w and "827" in w for w in meta["count_warnings"])
    assert "827" in caplog.text
    with h5py.File(paths[0]) as f:
        assert json.loads(f.attrs["count_warnings"]) == meta["count_warnings"]
    # another rate than the paper's is not the paper's setting: no comparison
    meta, _ = _stages("ribeiro", tmp_path / "data", tmp_path / "fs50", fs=50)
    assert meta["count_warnings"] == []
