"""Unit tests of the dataset readers (ecg_transfer.datasets), on fixtures written in real formats.

Each fixture is written the way the official archive stores it (WFDB via wfdb.wrsamp or by hand,
MATLAB v4 `.mat` + `.hea` for the Challenge, HDF5 + CSV for Ribeiro, CSVs for PTB-XL) with known
signals and labels. When /work/shared/real-ecg exists, genuine records are read too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
import wfdb

from ecg_transfer.datasets import (
    NAMES,
    PROTOCOLS,
    STANDARD_LEADS,
    BadRecordError,
    RecordSet,
    load,
)
from ecg_transfer.datasets.leads import lead_indices
from ecg_transfer.datasets.signals import fill_nan_neighbours, minmax, minmax_sklearn
from ecg_transfer.datasets.wfdb_io import read_header, read_signals

REAL = Path("/work/shared/real-ecg")

# --- fixture writers ---------------------------------------------------------------------------


def write_challenge(
    folder: Path,
    name: str,
    val: np.ndarray,
    dx: str,
    *,
    leads: tuple[str, ...] = STANDARD_LEADS,
    gain: str = "1000",
    unit: str = "mV",
    fmt: str = "16+24",
    dx_prefix: str = "#Dx:",
) -> Path:
    """A Challenge 2020 record: MATLAB v4 `val` (leads x samples, int16) plus its header."""
    folder.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(folder / f"{name}.mat", {"val": val.astype(np.int16)}, format="4")
    n_sig, n = val.shape
    lines = [f"{name} {n_sig} 500 {n} 05-Feb-2020 11:39:16"]
    for lead, row in zip(leads, val, strict=True):
        lines.append(f"{name}.mat {fmt} {gain}/{unit} 16 0 {int(row[0])} 0 0 {lead}")
    lines += ["#Age: 50", "#Sex: Male", f"{dx_prefix} {dx}", "#Rx: Unknown"]
    (folder / f"{name}.hea").write_text("\n".join(lines) + "\n")
    return folder / f"{name}.hea"


def lead_constants(n: int, scale: int = 100) -> np.ndarray:
    """Lead j is the constant (j + 1) * scale: shows where each lead lands."""
    return np.repeat((np.arange(12)[:, None] + 1) * scale, n, axis=1).astype(np.int16)


def ramp(n: int, leads: int = 12) -> np.ndarray:
    """Sample t of lead j is t + j: shows which samples decimation and cropping kept."""
    return (np.arange(n)[None, :] + np.arange(leads)[:, None]).astype(np.int16)


def write_ptb(
    root: Path,
    record_id: str,
    reason: str | None,
    *,
    n: int = 12000,
    digital: np.ndarray | None = None,
) -> None:
    """A PTB record by hand, as PhysioNet has it: gain 2000 without unit, lower-case leads,
    12 leads in .dat and the Frank leads in .xyz."""
    patient, name = record_id.split("/")
    folder = root / patient
    folder.mkdir(parents=True, exist_ok=True)
    dat = digital if digital is not None else ramp(n)
    n = dat.shape[1]
    xyz = np.full((3, n), 7, np.int16)
    dat.T.astype("<i2").tofile(folder / f"{name}.dat")
    xyz.T.astype("<i2").tofile(folder / f"{name}.xyz")
    names = ["i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6"]
    lines = [f"{name} 15 1000 {n}"]
    lines += [
        f"{name}.dat 16 2000 16 0 {int(r[0])} 0 0 {lead}"
        for lead, r in zip(names, dat, strict=True)
    ]
    lines += [f"{name}.xyz 16 2000 16 0 7 0 0 {lead}" for lead in ("vx", "vy", "vz")]
    lines += ["# age: 81", "# sex: female", "", "# Diagnose:"]
    if reason is not None:
        lines.append(f"# Reason for admission: {reason}")
    lines.append("# Additional diagnoses: none")
    (folder / f"{name}.hea").write_text("\n".join(lines) + "\n")


PTBXL_LEAD_NAMES = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def write_ptbxl(base: Path, rows: list[dict], statements: pd.DataFrame | None = None) -> None:
    """PTB-XL: both rates' WFDB records via wfdb.wrsamp, and the two CSVs.

    The 100 Hz copy holds the 500 Hz copy's every 5th sample plus 10000 digital units, so a test
    can tell which copy was read.
    """
    base.mkdir(parents=True, exist_ok=True)
    table = []
    for row in rows:
        ecg_id = row["ecg_id"]
        folder = f"{(ecg_id // 1000) * 1000:05d}"
        lr, hr = f"records100/{folder}/{ecg_id:05d}_lr", f"records500/{folder}/{ecg_id:05d}_hr"
        hr_signal = ramp(5000).T.astype(np.int64) + ecg_id
        lr_signal = hr_signal[::5] + 10000
        for rel, signal, fs in ((hr, hr_signal, 500), (lr, lr_signal, 100)):
            (base / rel).parent.mkdir(parents=True, exist_ok=True)
            wfdb.wrsamp(
                Path(rel).name,
                fs=fs,
                units=["mV"] * 12,
                sig_name=PTBXL_LEAD_NAMES,
                d_signal=signal,
                fmt=["16"] * 12,
                adc_gain=[1000.0] * 12,
                baseline=[0] * 12,
                write_dir=str((base / rel).parent),
            )
        table.append(
            {
                "ecg_id": ecg_id,
                "patient_id": float(row.get("patient_id", 100 + ecg_id)),
                "scp_codes": row["scp_codes"],
                "strat_fold": row.get("strat_fold", 1 + ecg_id % 10),
                "filename_lr": lr,
                "filename_hr": hr,
            }
        )
    pd.DataFrame(table).to_csv(base / "ptbxl_database.csv", index=False)
    if statements is None:
        statements = pd.DataFrame(
            {
                "description": ["normal", "MI", "T", "LVH", "LAFB", "low volt", "SR"],
                "diagnostic": [1.0, 1.0, 1.0, 1.0, 1.0, np.nan, np.nan],
                "diagnostic_class": ["NORM", "MI", "STTC", "HYP", "CD", np.nan, np.nan],
            },
            index=["NORM", "IMI", "NDT", "LVH", "LAFB", "LVOLT", "SR"],
        )
    statements.to_csv(base / "scp_statements.csv")


def write_ribeiro(root: Path, tracings: np.ndarray, gold: np.ndarray) -> None:
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    with h5py.File(root / "ecg_tracings.hdf5", "w") as f:
        f.create_dataset("tracings", data=tracings.astype(np.float32))
    columns = ["1dAVb", "RBBB", "LBBB", "SB", "AF", "ST"]
    pd.DataFrame(gold, columns=columns).to_csv(
        root / "annotations" / "gold_standard.csv", index=False
    )


def check_recordset(
    rs: RecordSet,
    n: int,
    classes: int,
    length: int = 1000,
    leads: tuple[str, ...] = STANDARD_LEADS,
    protocol: str = "paper",
) -> None:
    assert rs.signals.shape == (n, 12, length)
    assert rs.signals.dtype == np.float32
    assert rs.labels.shape == (n, classes)
    assert rs.labels.dtype == np.uint8
    assert len(rs.record_ids) == n
    assert rs.record_ids == sorted(rs.record_ids)
    assert rs.leads == list(leads)
    assert rs.protocol == protocol
    assert np.isfinite(rs.signals).all()


# --- API and shared preprocessing --------------------------------------------------------------


def test_public_constants() -> None:
    assert NAMES == ("ptbxl", "cpsc2018", "georgia", "ptb", "ribeiro")
    assert STANDARD_LEADS[3:6] == ("aVR", "aVL", "aVF")
    assert "paper" in PROTOCOLS


def test_unknown_dataset(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown dataset 'mitbih'.*ptbxl"):
        load("mitbih", tmp_path)


def test_unknown_protocol_lists_known(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown protocol 'fancy'.*'paper'"):
        load("ptbxl", tmp_path, protocol="fancy")


def test_unknown_scaling_and_bad_rates(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown scaling 'zscore'"):
        load("ptbxl", tmp_path, scaling="zscore")
    with pytest.raises(ValueError, match="fs must be a positive"):
        load("ptbxl", tmp_path, fs=0)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load("ptbxl", tmp_path / "absent")


def test_minmax_range_and_flat_lead() -> None:
    x = np.array([[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]])
    out = minmax(x)  # sound's: a flat lead is zeros
    np.testing.assert_allclose(out[0], [-1.0, -1.0 / 3.0, 1.0])
    np.testing.assert_array_equal(out[1], [0.0, 0.0, 0.0])
    paper = minmax_sklearn(x)  # paper's, sklearn's MinMaxScaler: a flat lead is -1
    np.testing.assert_allclose(paper[0], [-1.0, -1.0 / 3.0, 1.0])
    np.testing.assert_array_equal(paper[1], [-1.0, -1.0, -1.0])
    assert PROTOCOLS["paper"].minmax is minmax_sklearn and PROTOCOLS["sound"].minmax is minmax


def test_fill_nan_neighbours_means_the_nearest_valid_samples() -> None:
    nan = np.nan
    x = np.array([[nan, nan, 1.0, nan, nan, 4.0, nan], [5.0] * 7, [nan] * 7])
    out = fill_nan_neighbours(x)
    np.testing.assert_array_equal(out[0], [1.0, 1.0, 1.0, 2.5, 2.5, 4.0, 4.0])
    np.testing.assert_array_equal(out[1], x[1])
    assert np.isnan(out[2]).all()  # no valid sample: left for the caller to report


def test_lead_indices_accepts_every_spelling_and_names_what_is_missing() -> None:
    names = ["DI", "dii", "DIII", "AVL", "avf", "aVR", "V1", "v2", "V3", "V4", "V5", "V6", "vx"]
    assert lead_indices(names, "f.hea") == [0, 1, 2, 5, 3, 4, 6, 7, 8, 9, 10, 11]
    with pytest.raises(ValueError, match=r"f\.hea: missing standard lead\(s\) \['V6'\].*vx"):
        lead_indices([*names[:11], "vx"], "f.hea")
    with pytest.raises(ValueError, match=r"f\.hea: lead I appears twice"):
        lead_indices(["I", "i", *STANDARD_LEADS[1:]], "f.hea")


def test_wfdb_reader_matches_wfdb_for_both_paths(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    signal = rng.integers(-2000, 2000, size=(300, 3))
    for fmt in ("16", "212"):  # 16: our numpy path; 212: the fallback through wfdb
        wfdb.wrsamp(
            f"r{fmt}",
            fs=500,
            units=["mV", "uV", "mV"],
            sig_name=["I", "II", "V1"],
            d_signal=signal,
            fmt=[fmt] * 3,
            adc_gain=[200.0, 1000.0, 50.0],
            baseline=[5, -3, 0],
            write_dir=str(tmp_path),
        )
        header = read_header(tmp_path / f"r{fmt}.hea")
        ours = read_signals(header, [2, 0, 1])
        theirs = wfdb.rdrecord(str(tmp_path / f"r{fmt}")).p_signal.T[[2, 0, 1]]
        theirs[2] /= 1000.0  # uV -> mV
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


# --- CPSC2018 and Georgia ----------------------------------------------------------------------


def test_cpsc_labels_sorting_shapes_and_minmax(tmp_path: Path) -> None:
    top = tmp_path / "Training_WFDB"  # the archive's top folder: searched below root
    rng = np.random.default_rng(1)
    signals = {
        name: rng.integers(-500, 500, size=(12, 6000)) for name in ("A0001", "A0002", "A0003")
    }
    signals["A0002"][4] = 33  # a flat lead
    write_challenge(top / "b", "A0003", signals["A0003"], "RBBB,PVC")
    write_challenge(top / "a", "A0002", signals["A0002"], "Normal")
    write_challenge(top, "A0001", signals["A0001"], "164889003,429622005")
    rs = load("cpsc2018", tmp_path)
    check_recordset(rs, 3, 9)
    assert rs.classes == ["NORM", "AF", "IAVB", "LBBB", "RBBB", "PAC", "VEB", "STD", "STE"]
    assert rs.record_ids == ["A0001", "A0002", "A0003"]
    assert rs.labels.tolist() == [
        [0, 1, 0, 0, 0, 0, 0, 1, 0],
        [1, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 1, 0, 1, 0, 0],
    ]
    assert rs.patient_ids is None and rs.folds is None and rs.dropped == []
    assert rs.signals.min() == -1.0 and rs.signals.max() == 1.0
    np.testing.assert_array_equal(rs.signals[1, 4], -1.0)  # flat lead -> -1, as sklearn does
    others = np.delete(rs.signals.reshape(36, -1), 12 + 4, axis=0)
    np.testing.assert_array_equal(others.min(axis=1), -1.0)
    np.testing.assert_array_equal(others.max(axis=1), 1.0)
    expected = minmax(signals["A0003"][:, ::5][:, :1000] / 1000.0)
    np.testing.assert_allclose(rs.signals[2], expected, atol=1e-6)
    sound = load("cpsc2018", tmp_path, "sound", scaling="minmax")
    np.testing.assert_array_equal(sound.signals[1, 4], 0.0)  # sound keeps 0 for a flat lead


def test_challenge_decimation_crop_leads_and_units(tmp_path: Path) -> None:
    leads = ("V6", "AVR", "i", "II", "iii", "aVL", "AVF", "v1", "V2", "V3", "V4", "V5")
    write_challenge(tmp_path, "A0001", ramp(7500), "AF", leads=leads, unit="mv")
    write_challenge(tmp_path, "A0002", lead_constants(5000), "AF", leads=leads, unit="uV")
    write_challenge(tmp_path, "A0003", ramp(4990), "AF")  # 998 samples at 100 Hz: dropped
    rs = load("cpsc2018", tmp_path, scaling="none")
    check_recordset(rs, 2, 9)
    assert rs.dropped == [
        ("A0003", "too short: 4990 samples at 500 Hz give 998 at 100 Hz; 1000 needed")
    ]
    order = [
        leads.index(n)
        for n in ("i", "II", "iii", "AVR", "aVL", "AVF", "v1", "V2", "V3", "V4", "V5", "V6")
    ]
    # [::5], first 1000 samples, 1000 adu/mV; lead reordered from the file's order
    expected = (np.arange(0, 5000, 5)[None, :] + np.array(order)[:, None]) / 1000.0
    np.testing.assert_allclose(rs.signals[0], expected, rtol=1e-6)
    # uV header: 1000 adu/uV
    np.testing.assert_allclose(
        rs.signals[1][:, 0], (np.array(order) + 1) * 100 / 1000.0 / 1000.0, rtol=1e-6
    )
    at50 = load("cpsc2018", tmp_path, fs=50, seconds=10, scaling="none")
    assert at50.signals.shape == (2, 12, 500)


def test_challenge_errors_name_the_file(tmp_path: Path) -> None:
    bad = write_challenge(tmp_path / "a", "A0001", ramp(5000), "RBBB,Wobble")
    with pytest.raises(ValueError, match=rf"{bad}: field Dx has unknown label 'Wobble'"):
        load("cpsc2018", tmp_path / "a")
    # A valid code outside the class list is ignored, as the paper does (SB is no CPSC class).
    write_challenge(tmp_path / "b", "A0001", ramp(5000), "426177001")
    assert load("cpsc2018", tmp_path / "b").labels.tolist() == [[0] * 9]
    leads = (*STANDARD_LEADS[:11], "V7")
    bad = write_challenge(tmp_path / "c", "A0001", ramp(5000), "AF", leads=leads)
    with pytest.raises(
        ValueError, match=rf"{bad}: missing standard lead\(s\) \['V6'\]; leads found:.*'V7'"
    ):
        load("cpsc2018", tmp_path / "c")
    bad = write_challenge(tmp_path / "d", "A0001", ramp(5000), "AF")
    (tmp_path / "d" / "A0001.mat").write_bytes(b"not a matlab file at all")
    with pytest.raises(ValueError, match=r"A0001\.mat"):
        load("cpsc2018", tmp_path / "d")
    bad = write_challenge(tmp_path / "e", "A0001", ramp(5000), "AF", dx_prefix="#Rx:")
    with pytest.raises(ValueError, match=rf"{bad}: 0 '#Dx:' comment lines"):
        load("cpsc2018", tmp_path / "e")
    write_challenge(tmp_path / "f", "A0001", ramp(5000), "AF")
    write_challenge(tmp_path / "f", "E00001", ramp(5000), "426783006")
    with pytest.raises(ValueError, match="not cpsc2018 records"):
        load("cpsc2018", tmp_path / "f")
    with pytest.raises(ValueError, match="not georgia records"):
        load("georgia", tmp_path / "a")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no georgia headers"):
        load("georgia", tmp_path / "empty")
    bad = write_challenge(tmp_path / "g", "A0001", ramp(5000), "AF", unit="furlong")
    with pytest.raises(ValueError, match=rf"{bad}: signal 0 \('I'\) has unit 'furlong'"):
        load("cpsc2018", tmp_path / "g")


def test_georgia_ignored_codes_and_nan_filling(tmp_path: Path) -> None:
    style = {"gain": "1000.0(0)", "fmt": "16x1+24", "dx_prefix": "# Dx:"}  # the 2021 release
    val = ramp(5000)
    val[3, 0] = -32768  # WFDB's missing sample at t=0: filled from the next kept sample
    val[5, 10] = -32768  # kept sample 2: the mean of kept samples 1 and 3
    val[5, 11] = -32768  # not kept by [::5]: irrelevant
    write_challenge(tmp_path, "E00002", val, "164889003,10370003,426783006", **style)
    first = write_challenge(tmp_path, "E00001", ramp(5000), "164873001,251146004", **style)
    # Some Challenge 2020 Georgia headers name the record "E00001.mat" on their first line.
    first.write_text(first.read_text().replace("E00001 12", "E00001.mat 12", 1))
    rs = load("georgia", tmp_path, scaling="none")
    check_recordset(rs, 2, 10)
    assert rs.classes == ["NORM", "AF", "IAVB", "SB", "LAD", "STach", "TAb", "TInv", "LQT", "PAC"]
    assert rs.record_ids == ["E00001", "E00002"]
    assert rs.labels.tolist() == [[0] * 10, [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]]
    x = rs.signals[1]
    assert x[3, 0] == pytest.approx(x[3, 1]) and x[3, 1] == pytest.approx((5 + 3) / 1000)
    assert x[5, 2] == pytest.approx((x[5, 1] + x[5, 3]) / 2)
    assert x[5, 1] == pytest.approx((5 + 5) / 1000) and x[5, 3] == pytest.approx((15 + 5) / 1000)
    minmaxed = load("georgia", tmp_path).signals
    assert np.isfinite(minmaxed).all() and minmaxed.min() == -1.0 and minmaxed.max() == 1.0


# --- PTB ---------------------------------------------------------------------------------------


def test_ptb_labels_drops_gain_and_patients(tmp_path: Path) -> None:
    top = tmp_path / "ptb-diagnostic-ecg-database-1.0.0"
    records = {
        "patient002/s0015lre": "Myocardial infarction",
        "patient001/s0010_re": "Healthy control",
        "patient001/s0014lre": "Cardiomyopathy",
        "patient003/s0017lre": "n/a",
        "patient004/s0020are": None,
    }
    for record_id, reason in records.items():
        write_ptb(top, record_id, reason)
    (top / "RECORDS").write_text("\n".join(records) + "\n")
    (top / "CONTROLS").write_text("patient001/s0010_re\n")
    rs = load("ptb", tmp_path)
    check_recordset(rs, 3, 2)
    assert rs.classes == ["NORM", "MI"]
    assert rs.record_ids == ["patient001/s0010_re", "patient001/s0014lre", "patient002/s0015lre"]
    assert rs.labels.tolist() == [[1, 0], [0, 0], [0, 1]]
    assert rs.patient_ids == ["patient001", "patient001", "patient002"]
    assert rs.dropped == [
        ("patient003/s0017lre", "no reason for admission (n/a)"),
        ("patient004/s0020are", "no reason for admission (missing)"),
    ]
    # gain 2000 adu/mV with no unit in the header; [::10] and the first 1000 samples
    expected = (np.arange(0, 10000, 10)[None, :] + np.arange(12)[:, None]) / 2000.0
    np.testing.assert_allclose(rs.signals[0], expected, rtol=1e-6)


def test_ptb_without_records_list_and_short_records(tmp_path: Path) -> None:
    write_ptb(tmp_path, "patient010/s0100_re", "Myocardial infarction", n=9990)
    write_ptb(
        tmp_path,
        "patient009/s0090_re",
        "Myocardial infarction",
        digital=lead_constants(10000, 2000),
    )
    rs = load("ptb", tmp_path)
    assert rs.record_ids == ["patient009/s0090_re"]
    assert rs.dropped[0][0] == "patient010/s0100_re" and rs.dropped[0][1].startswith("too short")
    np.testing.assert_allclose(rs.signals[0][:, 0], np.arange(12) + 1.0)


# --- PTB-XL ------------------------------------------------------------------------------------


PTBXL_ROWS = [
    {"ecg_id": 3, "scp_codes": "{'IMI': 35.0, 'NDT': 0.0, 'LVOLT': 0.0}", "strat_fold": 7},
    {"ecg_id": 1, "scp_codes": "{'NORM': 100.0, 'SR': 0.0}", "strat_fold": 3, "patient_id": 15709},
    {"ecg_id": 2, "scp_codes": "{'LVOLT': 100.0, 'SR': 0.0}", "strat_fold": 10},
    {"ecg_id": 1001, "scp_codes": "{'LVH': 50.0, 'LAFB': 100.0, 'IMI': 15.0}", "strat_fold": 1},
]


def test_ptbxl_superclasses_folds_patients(tmp_path: Path) -> None:
    write_ptbxl(tmp_path / "ptb-xl-1.0.3", PTBXL_ROWS)
    rs = load("ptbxl", tmp_path)
    check_recordset(rs, 4, 5)
    assert rs.classes == ["NORM", "MI", "STTC", "HYP", "CD"]
    assert rs.record_ids == ["00001", "00002", "00003", "01001"]
    assert rs.labels.tolist() == [
        [1, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],  # only non-diagnostic codes
        [0, 1, 1, 0, 0],  # likelihood 0 still counts
        [0, 1, 0, 1, 1],
    ]
    assert rs.folds.tolist() == [3, 10, 7, 1]
    assert rs.patient_ids == ["15709", "102", "103", "1101"]
    # fs=100 reads records100 as is (it holds +10000 adu), upper-case AVR mapped
    expected = (np.arange(0, 5000, 5)[None, :] + np.arange(12)[:, None] + 1 + 10000) / 1000.0
    np.testing.assert_allclose(rs.signals[0], expected, rtol=1e-6)


def test_ptbxl_rates_pick_the_right_copy(tmp_path: Path) -> None:
    write_ptbxl(tmp_path, PTBXL_ROWS[:2])
    base = np.arange(12)[:, None] + 1
    at50 = load("ptbxl", tmp_path, fs=50, scaling="none")  # records100[::2]
    np.testing.assert_allclose(
        at50.signals[0], (np.arange(0, 5000, 10)[None, :] + base + 10000) / 1000, rtol=1e-6
    )
    at250 = load("ptbxl", tmp_path, fs=250, seconds=4)  # records500[::2]
    np.testing.assert_allclose(
        at250.signals[0], (np.arange(0, 2000, 2)[None, :] + base) / 1000, rtol=1e-6
    )
    scaled = load("ptbxl", tmp_path, scaling="minmax").signals
    assert scaled.min() == -1.0 and scaled.max() == 1.0
    with pytest.raises(ValueError, match="fs=30 Hz does not divide any native rate"):
        load("ptbxl", tmp_path, fs=30)
    with pytest.raises(
        ValueError, match=r"ptbxl: all 2 records were dropped \(first: 00001: too short"
    ):
        load("ptbxl", tmp_path, seconds=11)  # 1100 samples: more than the 10 s records hold


def test_ptbxl_errors_name_the_file(tmp_path: Path) -> None:
    write_ptbxl(tmp_path, PTBXL_ROWS[:2])
    (tmp_path / "records100/00000/00003_lr.dat").unlink()
    with pytest.raises(BadRecordError, match=r"00003_lr\.dat does not exist \(record 00003\)"):
        load("ptbxl", tmp_path)
    (tmp_path / "records100/00000/00003_lr.hea").unlink()
    with pytest.raises(BadRecordError, match=r"ptbxl_database\.csv, ecg_id 3: filename_lr"):
        load("ptbxl", tmp_path)
    table = pd.read_csv(tmp_path / "ptbxl_database.csv")
    table.loc[table.ecg_id == 1, "scp_codes"] = "NORM"
    table.to_csv(tmp_path / "ptbxl_database.csv", index=False)
    with pytest.raises(ValueError, match=r"ecg_id 1: scp_codes 'NORM'; expected a dict"):
        load("ptbxl", tmp_path)
    (tmp_path / "scp_statements.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"scp_statements\.csv: missing"):
        load("ptbxl", tmp_path)


# --- Ribeiro -----------------------------------------------------------------------------------


def test_ribeiro_leads_crop_labels(tmp_path: Path) -> None:
    n = 11
    tracings = np.zeros((n, 4096, 12), np.float32)
    tracings[0] = np.arange(4096)[:, None] / 1000.0  # sample index: shows the crop
    file_order = ["I", "II", "III", "aVL", "aVF", "aVR", "V1", "V2", "V3", "V4", "V5", "V6"]
    for j in range(12):
        tracings[1, :, j] = STANDARD_LEADS.index(file_order[j]) + 1  # value = standard position + 1
    tracings[2:] = np.random.default_rng(2).normal(size=(n - 2, 4096, 12))
    gold = np.zeros((n, 6), int)
    gold[1, [0, 5]] = 1
    gold[2, 2] = 1
    write_ribeiro(tmp_path / "data", tracings, gold)
    rs = load("ribeiro", tmp_path, scaling="none")
    check_recordset(rs, n, 7, leads=tuple(file_order))  # the paper fed the columns as stored
    assert rs.classes == ["NORM", "1dAVb", "RBBB", "LBBB", "SB", "AF", "ST"]
    assert rs.record_ids[:3] == ["00", "01", "02"] and rs.record_ids[-1] == "10"
    assert rs.labels[:3].tolist() == [
        [1, 0, 0, 0, 0, 0, 0],
        [0, 1, 0, 0, 0, 0, 1],
        [0, 0, 0, 1, 0, 0, 0],
    ]
    assert rs.labels[3:, 0].tolist() == [1] * (n - 3)
    # [::4] -> 1024 samples, 12 cut from each end: samples 48, 52, ..., 4044 of the file
    np.testing.assert_allclose(rs.signals[0, 0], np.arange(48, 4048, 4) / 1000.0, rtol=1e-6)
    np.testing.assert_array_equal(rs.signals[1][:, 0], tracings[1, 0])  # no reordering
    assert [rs.leads[j] for j in np.argsort(rs.signals[1][:, 0])] == list(STANDARD_LEADS)
    sound = load("ribeiro", tmp_path, "sound")  # reordered to the standard order
    check_recordset(sound, n, 7, protocol="sound")
    np.testing.assert_allclose(sound.signals[1][:, 0], np.arange(12) + 1, rtol=1e-6)
    at50 = load("ribeiro", tmp_path, fs=50)  # [::8] -> 512, 6 cut from each end
    assert at50.signals.shape == (n, 12, 500) and at50.signals.max() == 1.0
    np.testing.assert_array_equal(load("ribeiro", tmp_path).signals[1], -1.0)  # flat leads


def test_ribeiro_mismatched_labels(tmp_path: Path) -> None:
    write_ribeiro(tmp_path, np.zeros((3, 4096, 12)), np.zeros((4, 6), int))
    with pytest.raises(
        BadRecordError,
        match=r"ecg_tracings\.hdf5: gold standard row 3 has no tracing: the file holds 3 exams",
    ):
        load("ribeiro", tmp_path)
    write_ribeiro(tmp_path, np.zeros((3, 4096, 12)), np.full((3, 6), 2))
    with pytest.raises(ValueError, match=r"gold_standard\.csv: columns .* only 0 or 1"):
        load("ribeiro", tmp_path)


def test_all_dropped_is_an_error(tmp_path: Path) -> None:
    write_ribeiro(tmp_path, np.zeros((2, 4096, 12)), np.zeros((2, 6), int))
    with pytest.raises(
        ValueError, match=r"ribeiro: all 2 records were dropped \(first: 0: too short"
    ):
        load("ribeiro", tmp_path, seconds=20)


# --- protocol sound: resampling ----------------------------------------------------------------


@pytest.mark.parametrize("native_fs", [400.0, 500.0, 1000.0])
def test_sound_resampling_keeps_a_dc_offset_flat_at_the_edges(native_fs: float) -> None:
    # resample_poly pads with zeros by default: a record at 1.5 mV would ring down towards 0 at
    # both ends. padtype="line" continues the record instead.
    x = np.full((12, int(10 * native_fs)), 1.5) + np.arange(12)[:, None]
    y = PROTOCOLS["sound"].resample(x, native_fs, 100.0, "f.hea")
    assert y.shape == (12, 1000)
    np.testing.assert_allclose(y[:, :20], x[:, :20], atol=1e-6, rtol=0)
    np.testing.assert_allclose(y[:, -20:], x[:, -20:], atol=1e-6, rtol=0)
    np.testing.assert_allclose(y, x[:, : y.shape[1]], atol=1e-6, rtol=0)


def test_sound_protocol_refuses_to_upsample_every_dataset_alike(tmp_path: Path) -> None:
    write_challenge(tmp_path / "cpsc", "A0001", ramp(5000), "AF")
    write_challenge(tmp_path / "georgia", "E00001", ramp(5000), "426783006")
    write_ptb(tmp_path / "ptb", "patient001/s0010_re", "Healthy control")
    write_ptbxl(tmp_path / "ptbxl", PTBXL_ROWS[:1])
    write_ribeiro(tmp_path / "ribeiro", np.zeros((2, 4096, 12)), np.zeros((2, 6), int))
    cases = [
        ("cpsc2018", "cpsc", r"A0001\.hea", 500, 1000),
        ("georgia", "georgia", r"E00001\.hea", 500, 1000),
        ("ptb", "ptb", r"patient001/s0010_re\.hea", 1000, 2000),
        ("ptbxl", "ptbxl", r"records500/00000/00003_hr\.hea", 500, 1000),  # the highest copy
        ("ribeiro", "ribeiro", r"ecg_tracings\.hdf5", 400, 500),
    ]
    for name, folder, file, native, fs in cases:
        message = (
            rf"{file}: native rate {native} Hz is below the requested fs={fs} Hz; "
            rf"protocol 'sound' does not upsample .*; choose fs <= {native}"
        )
        for on_bad_record in ("error", "skip"):  # not a bad record: the request is wrong
            with pytest.raises(ValueError, match=message):
                load(name, tmp_path / folder, "sound", fs=fs, seconds=1,
                     on_bad_record=on_bad_record)
    # the resampler itself refuses too (an index written before this rule)
    with pytest.raises(ValueError, match=r"f\.hea: native rate 500 Hz is below .*fs=1000 Hz"):
        PROTOCOLS["sound"].resample(np.zeros((12, 50)), 500.0, 1000.0, "f.hea")
    # at or below the native rate nothing changes
    assert load("cpsc2018", tmp_path / "cpsc", "sound", fs=500).signals.shape == (1, 12, 5000)


# --- genuine records ---------------------------------------------------------------------------


@pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} (genuine records) is absent")
def test_genuine_records(tmp_path: Path) -> None:
    # Our reader agrees with wfdb on every genuine header, in mV.
    for header_path in sorted(REAL.rglob("*.hea")):
        header = read_header(header_path)
        ours = read_signals(header, range(len(header.signals)))
        theirs = wfdb.rdrecord(str(header_path.with_suffix(""))).p_signal.T
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, err_msg=str(header_path))

    cpsc = load("cpsc2018", REAL / "cpsc2018_challenge2020")  # early release: text labels
    check_recordset(cpsc, 5, 9)
    named = [[c for c, v in zip(cpsc.classes, row, strict=True) if v] for row in cpsc.labels]
    assert named == [["RBBB"], ["NORM"], ["AF"], ["AF"], ["VEB"]]
    assert cpsc.signals.min() == -1.0 and cpsc.signals.max() == 1.0

    georgia = load("georgia", REAL / "georgia_challenge2021")
    check_recordset(georgia, 10, 10)
    assert georgia.labels[georgia.record_ids.index("E07505")].sum() == 0  # 164873001 only
    e07509 = georgia.labels[georgia.record_ids.index("E07509")]
    assert [georgia.classes[i] for i in np.flatnonzero(e07509)] == ["SB"]  # RBBB is not a class

    ptb_root = tmp_path / "ptb"
    shutil.copytree(REAL / "ptbdb", ptb_root / "patient001")
    (ptb_root / "RECORDS").write_text("patient001/s0010_re\n")
    ptb = load("ptb", ptb_root)
    check_recordset(ptb, 1, 2)
    assert ptb.labels.tolist() == [[0, 1]] and ptb.patient_ids == ["patient001"]
    raw = wfdb.rdrecord(str(REAL / "ptbdb" / "s0010_re")).p_signal
    np.testing.assert_allclose(ptb.signals[0], raw[:10000:10, :12].T, rtol=1e-6)

    # Only records 1-10 exist for the 500 rows of the cut ptbxl_database.csv.
    xl_root = tmp_path / "ptbxl"
    xl_root.mkdir()
    for name in ("records100", "records500", "scp_statements.csv"):
        src = REAL / "ptbxl" / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, xl_root / name)
    table = pd.read_csv(REAL / "ptbxl" / "ptbxl_database.csv")
    table[table.ecg_id <= 10].to_csv(xl_root / "ptbxl_database.csv", index=False)
    ptbxl = load("ptbxl", xl_root)
    check_recordset(ptbxl, 10, 5)
    assert ptbxl.labels[:, 0].tolist() == [1, 1, 1, 1, 1, 1, 1, 0, 1, 1]
    assert ptbxl.labels[7].tolist() == [0, 1, 0, 0, 0]  # IMI
    assert ptbxl.patient_ids[0] == "15709" and ptbxl.folds.tolist()[:3] == [3, 2, 5]
    hr = load("ptbxl", xl_root, fs=500, seconds=2)
    raw = wfdb.rdrecord(str(REAL / "ptbxl/records500/00000/00001_hr")).p_signal
    np.testing.assert_allclose(hr.signals[0], raw[:1000].T, rtol=1e-6)
