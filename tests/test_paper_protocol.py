"""Protocol `paper` against the seed paper's notebooks (cuongvng/transfer-learning-ecg-diagnosis).

Each test runs a transcription of the notebook's code (cell numbers of the notebook given) next to
the project's reader on the same fixture files and compares the arrays: the min-max scaling with
sklearn's MinMaxScaler itself, the Georgia notebook's filling of missing samples, Ribeiro's lead
order, and the record counts the notebooks printed. The transcriptions keep the notebooks'
variable names (X, X_down, l), so they read side by side with the notebooks.
"""
# ruff: noqa: N806, E741

from __future__ import annotations

import glob
from pathlib import Path

import h5py
import numpy as np
import pytest
import wfdb
from sklearn.preprocessing import MinMaxScaler
from test_datasets import write_challenge, write_ribeiro

from ecg_transfer import datasets
from ecg_transfer.datasets import (
    PAPER_COUNTS,
    PROTOCOLS,
    STANDARD_LEADS,
    DatasetIndex,
    expected_count_warnings,
    load,
)
from ecg_transfer.datasets.signals import minmax_sklearn
from ecg_transfer.splits import TEST, TRAIN, SplitSpec, paper_split

# --- the notebooks' code, transcribed -----------------------------------------------------------

LENGTH = 1000


def downsample(signal, ratio=5):
    # Signal of size (L, 12) to (L/ratio, 12)
    return signal[::ratio, :]


def crop(signal):
    return signal[0:LENGTH, :]


def notebook_load_raw_data(path: str) -> np.ndarray:
    """pretrain/cpsc (and georgia) preprocess_data.ipynb, `load_raw_data`, signals only. The
    notebook globbed in file-system order; sorted here to line up with the project's order."""
    headers = sorted(glob.glob(path + "*.hea"))
    headers = [h[:-4] for h in headers]  # remove extensions
    data = []
    scaler = MinMaxScaler((-1, 1))
    for f in headers:
        signal, _meta = wfdb.rdsamp(f)  # meta: the labels, not compared here
        downsampled = downsample(signal)
        l = downsampled.shape[0]
        if l < LENGTH:  # drop 6 signals of length < 1000
            continue
        elif l > LENGTH:
            downsampled = crop(downsampled)
        scaled = scaler.fit_transform(downsampled)
        data.append(scaled)
    return np.array(data)


def fill_nan(a, nan_idx):  # Won't work with adjacent nan   (georgia notebook, cell 30)
    i, j, k = nan_idx
    if j == 0:
        a[i, j, k] = a[i, j + 1, k]
    elif j == LENGTH - 1:
        a[i, j, k] = a[i, j - 1, k]
    else:
        a[i, j, k] = (a[i, j + 1, k] + a[i, j - 1, k]) / 2.0


# --- min-max scaling ----------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning")  # sklearn's, on lead 7
def test_paper_minmax_is_sklearns_minmaxscaler_per_record_and_lead() -> None:
    rng = np.random.default_rng(0)
    record = rng.normal(size=(1000, 12))  # (samples, leads): the notebooks' layout
    record[:, 4] = 0.33  # flat
    record[:, 5] = 1e-16 * np.arange(1000) / 1000  # range below 10 eps: sklearn calls it flat
    record[[3, 500], 6] = np.nan  # ignored by fit, kept NaN by transform
    record[:, 7] = np.nan  # nothing to fit: NaN
    theirs = MinMaxScaler((-1, 1)).fit_transform(record)  # the notebooks' exact call
    ours = minmax_sklearn(record.T)  # the project's (leads, samples) layout
    np.testing.assert_array_equal(ours, theirs.T)  # bit for bit, NaN where sklearn has NaN
    np.testing.assert_array_equal(ours[4], -1.0)  # a flat lead is -1 (sound's minmax: 0)


def test_cpsc_paper_matches_the_notebook_load_raw_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for name, n in (("A0001", 6000), ("A0002", 5000), ("A0003", 4990)):  # A0003: < 10 s
        val = rng.integers(-900, 900, size=(12, n))
        val[2] = 41  # a flat lead
        write_challenge(tmp_path, name, val, "426783006")
    notebook = notebook_load_raw_data(f"{tmp_path}/")
    rs = load("cpsc2018", tmp_path)
    assert rs.record_ids == ["A0001", "A0002"] and notebook.shape == (2, 1000, 12)
    assert rs.dropped[0][0] == "A0003"
    np.testing.assert_allclose(rs.signals, notebook.transpose(0, 2, 1), atol=1e-6, rtol=0)
    np.testing.assert_array_equal(rs.signals[:, 2], -1.0)


# --- Georgia's missing samples ------------------------------------------------------------------

# (sample, lead) of the NaNs the Georgia notebook found after [::5] and cropping (cells 27/28):
# isolated ones, a run of two at the start of lead 8, a run of two inside lead 8.
NOTEBOOK_NANS = [(250, 0), (250, 1), (403, 0), (403, 1), (648, 0), (648, 1), (828, 0), (828, 1),
                 (0, 8), (1, 8), (908, 11), (42, 7), (746, 7), (746, 8), (747, 8), (358, 11)]
LAST_SAMPLE = [(999, 3)]  # the notebook's `j == LENGTH-1` branch


def test_georgia_missing_samples_filled_as_the_notebook_did(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    val = rng.integers(-2000, 2000, size=(12, 5000))
    for sample, lead in NOTEBOOK_NANS + LAST_SAMPLE:
        val[lead, 5 * sample] = -32768  # WFDB's missing value, at a sample [::5] keeps
    val[0, 5 * 10] = 1999  # lead 0's maximum next to lead 0's NaNs: NaN is not the max
    write_challenge(tmp_path, "E00001", val, "426783006", gain="1000.0(0)", dx_prefix="# Dx:")

    X = notebook_load_raw_data(f"{tmp_path}/")  # cell 14: NaN ignored by the scaler
    assert sorted(map(tuple, np.argwhere(np.isnan(X))[:, 1:])) == sorted(
        NOTEBOOK_NANS + LAST_SAMPLE
    )
    for idx in np.argwhere(np.isnan(X)):  # cell 31
        fill_nan(X, idx)
    assert sorted(map(tuple, np.argwhere(np.isnan(X))[:, 1:])) == [(0, 8), (1, 8), (746, 8),
                                                                   (747, 8)]  # cell 33
    # cell 34: "For the 4 indices above, fill manually" (records 488 and 4430 there, 0 here)
    X[0, 0, 8] = X[0, 2, 8]
    X[0, 1, 8] = X[0, 2, 8]
    X[0, 746, 8] = (X[0, 745, 8] + X[0, 748, 8]) / 2.0
    X[0, 747, 8] = (X[0, 745, 8] + X[0, 748, 8]) / 2.0
    assert not np.isnan(X).any()

    rs = load("georgia", tmp_path)
    np.testing.assert_allclose(rs.signals[0], X[0].T, atol=1e-6, rtol=0)
    idx = datasets.index("georgia", tmp_path)
    (_, _, result), = datasets.read(idx)
    assert result.n_missing == len(NOTEBOOK_NANS + LAST_SAMPLE)


# --- Ribeiro's lead order -----------------------------------------------------------------------

FILE_ORDER = ["I", "II", "III", "aVL", "aVF", "aVR", "V1", "V2", "V3", "V4", "V5", "V6"]


def test_ribeiro_paper_feeds_the_columns_as_stored_and_says_so(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    tracings = rng.normal(size=(5, 4096, 12)).astype(np.float32)
    tracings[:, :648] = tracings[:, -648:] = 0  # a 7 s exam's zero padding
    write_ribeiro(tmp_path, tracings, np.zeros((5, 6), int))
    # downstream/ribero/preprocess_data.ipynb, cells 1, 3 and 6
    with h5py.File(tmp_path / "ecg_tracings.hdf5", "r") as f:
        X = np.array(f["tracings"])
    X_down = X[:, ::4, :]
    X_down = X_down[:, 12:-12, :]
    scaler = MinMaxScaler((-1, 1))
    for i in range(X_down.shape[0]):
        X_down[i, :, :] = scaler.fit_transform(X_down[i, :, :])

    rs = load("ribeiro", tmp_path)
    assert rs.leads == FILE_ORDER
    # the notebook scaled in float32 (the file's type), the project in float64: 1 ulp apart
    np.testing.assert_allclose(rs.signals, X_down.transpose(0, 2, 1), atol=1e-6, rtol=0)

    # the index says the true order, and keeps saying it after a round trip through its files
    idx = datasets.index("ribeiro", tmp_path)
    assert idx.leads == FILE_ORDER and idx.meta()["leads"] == FILE_ORDER
    assert idx.meta()["settings"]["leads"] == FILE_ORDER
    idx.to_csv(tmp_path / "index.csv")
    again = DatasetIndex.read_csv(tmp_path / "index.csv", idx.meta(), tmp_path)
    assert again.leads == FILE_ORDER
    first = next(datasets.read(again))[2].signal
    np.testing.assert_array_equal(first, rs.signals[0])

    # sound: the standard order, named as such
    sound = datasets.index("ribeiro", tmp_path, "sound")
    assert sound.leads == list(STANDARD_LEADS)
    signal = next(datasets.read(sound))[2].signal
    raw = load("ribeiro", tmp_path, "sound").signals[0]
    np.testing.assert_array_equal(signal, raw)
    for lead in STANDARD_LEADS:  # same exam, leads found by name in both orders
        np.testing.assert_allclose(
            load("ribeiro", tmp_path, scaling="none").signals[0, FILE_ORDER.index(lead), 100],
            tracings[0, 48 + 4 * 100, FILE_ORDER.index(lead)],
            rtol=1e-6,
        )
    # an index meta written before `leads` was recorded: the standard order it then had
    old = idx.meta()
    del old["settings"]["leads"], old["leads"]
    assert DatasetIndex.read_csv(tmp_path / "index.csv", old, tmp_path).leads == list(
        STANDARD_LEADS
    )


# --- record counts ------------------------------------------------------------------------------


def test_paper_drop_rule_is_the_notebooks_length_rule() -> None:
    # CPSC2018 and Georgia: `if downsampled.shape[0] < LENGTH: continue` after signal[::5]
    for n in range(4980, 5011):
        notebook_drops = len(np.zeros(n)[::5]) < LENGTH
        assert (PROTOCOLS["paper"].resampled_length(n, 500.0, 100.0) < 1000) == notebook_drops, n


@pytest.mark.parametrize(
    "name,n_classes,stratify",
    [("cpsc2018", 9, True), ("georgia", 10, False), ("ptb", 2, False), ("ribeiro", 7, False)],
)
def test_paper_split_of_the_kept_records_gives_the_notebooks_counts(
    name: str, n_classes: int, stratify: bool
) -> None:
    paper = PAPER_COUNTS[name]
    labels = (np.random.default_rng(4).random((paper.kept, n_classes)) < 0.2).astype(np.uint8)
    split, _ = paper_split(labels, None, SplitSpec(test_size=0.33, random_state=1,
                                                   stratify=stratify))
    n_train, n_test = int((split == TRAIN).sum()), int((split == TEST).sum())
    assert (n_train, n_test) == (paper.train, paper.test)
    assert expected_count_warnings(name, paper.records, paper.kept, n_train, n_test) == []


def test_count_mismatches_are_warnings_naming_both_numbers() -> None:
    assert PAPER_COUNTS["cpsc2018"].records == 6877 and PAPER_COUNTS["cpsc2018"].kept == 6871
    warnings = expected_count_warnings("georgia", 10344, 10290, 6894, 3396)
    assert len(warnings) == 3
    assert "10290 records kept after preprocessing" in warnings[0] and "had 10292" in warnings[0]
    assert "6894 train records" in warnings[1] and "had 6895" in warnings[1]
    assert "3396 test records" in warnings[2] and "had 3397" in warnings[2]
    assert expected_count_warnings("ribeiro", 826, 826, 553, 273)[0].startswith(
        "ribeiro: 826 records found; "
    )
    assert expected_count_warnings("ptbxl", 21799, 21799, 19601, 2198) == []  # unknown counts
