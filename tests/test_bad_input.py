"""Bad input: each kind of broken record stops the shard stage with a message naming the file and
the reason (on_bad_record: error, nothing left behind), or is left out and listed in the part's
quarantine CSV (skip). Problems of a whole file (an HDF5 that does not open) are always errors.
"""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from test_datasets import (
    PTBXL_ROWS,
    STANDARD_LEADS,
    ramp,
    write_challenge,
    write_ptb,
    write_ptbxl,
    write_ribeiro,
)

from ecg_transfer import datasets
from ecg_transfer.datasets import BadRecordError
from ecg_transfer.prepare import make_part, write_index
from ecg_transfer.shards import read_shard


def run_stages(dataset: str, root: Path, out: Path, on_bad: str, protocol: str = "paper"):
    """The workflow's two data stages (index, then every part), as the Snakemake jobs call them."""
    meta = write_index(
        dataset, root, out / "index.csv", out / "index.json",
        preprocess={"protocol": protocol, "fs": 100, "seconds": 10},
        split={"test_size": 0.33, "random_state": 1}, parts=3, on_bad_record=on_bad,
    )
    parts, quarantine = [], []
    for i in range(meta["n_parts"]):
        (out / "attempted").write_text(str(i))  # which part a failure came from
        make_part(out / "index.csv", out / "index.json", root, i, out / f"part{i}.h5",
                  out / f"part{i}.quarantine.csv", on_bad_record=on_bad)
        parts.append(out / f"part{i}.h5")
        quarantine.append(pd.read_csv(out / f"part{i}.quarantine.csv", dtype=str))
    return read_shard(parts), pd.concat(quarantine, ignore_index=True)


def check(dataset: str, root: Path, tmp: Path, match: str, record_id: str, reason: str,
          n_good: int = 3, protocol: str = "paper") -> None:
    """error: the message; no shard (and no temporary file) left. skip: one quarantine row."""
    out = tmp / "error"
    out.mkdir(parents=True)
    with pytest.raises(BadRecordError, match=match):
        run_stages(dataset, root, out, "error", protocol)
    # The failed job leaves nothing (Snakemake would also delete its declared outputs); parts
    # before it are separate jobs that succeeded. A failure while indexing leaves no index.
    failed = (out / "attempted").read_text() if (out / "attempted").exists() else None
    if failed is None:
        assert not (out / "index.csv").exists() and not list(out.glob("*.h5"))
    else:
        assert not (out / f"part{failed}.h5").exists()
        assert not (out / f"part{failed}.quarantine.csv").exists()
    assert not list(out.glob(".*.tmp"))
    shard, quarantine = run_stages(dataset, root, tmp / "skip", "skip", protocol)
    assert len(shard.record_ids) == n_good and record_id not in shard.record_ids
    assert quarantine.record_id.tolist() == [record_id]
    assert reason in quarantine.reason[0], quarantine.reason[0]
    assert not list((tmp / "skip").glob(".*.tmp"))


@pytest.fixture
def cpsc(tmp_path: Path) -> Path:
    root = tmp_path / "cpsc"
    for i in (1, 2, 3):
        write_challenge(root, f"A000{i}", ramp(5000), "AF")
    return root


def test_truncated_mat(cpsc: Path, tmp_path: Path) -> None:
    write_challenge(cpsc, "A0004", ramp(5000), "AF")
    mat = cpsc / "A0004.mat"
    mat.write_bytes(mat.read_bytes()[:5000])
    check("cpsc2018", cpsc, tmp_path, r"A0004\.hea: .*A0004\.mat.*\(record A0004\)",
          "A0004", "A0004.mat")


def test_missing_header(cpsc: Path, tmp_path: Path) -> None:
    write_challenge(cpsc, "A0004", ramp(5000), "AF").unlink()
    check("cpsc2018", cpsc, tmp_path, r"A0004\.mat: no header A0004\.hea beside it",
          "A0004", "no header A0004.hea")


def test_missing_signal_file(cpsc: Path, tmp_path: Path) -> None:
    write_challenge(cpsc, "A0004", ramp(5000), "AF")
    (cpsc / "A0004.mat").unlink()
    check("cpsc2018", cpsc, tmp_path, r"A0004\.hea: signal file .*A0004\.mat does not exist",
          "A0004", "does not exist")


def test_header_length_does_not_match_data(cpsc: Path, tmp_path: Path) -> None:
    hea = write_challenge(cpsc, "A0004", ramp(5000), "AF")
    hea.write_text(hea.read_text().replace("A0004 12 500 5000", "A0004 12 500 6000", 1))
    check("cpsc2018", cpsc, tmp_path, r"holds 5000 samples per signal but .* sig_len 6000",
          "A0004", "sig_len 6000")


def test_header_signal_count_does_not_match_data(cpsc: Path, tmp_path: Path) -> None:
    # 13 rows in the .mat, 12 declared: leads would be misassigned if read.
    write_challenge(cpsc, "A0004", ramp(5000, leads=13), "AF",
                    leads=(*STANDARD_LEADS, "V7"))
    hea = cpsc / "A0004.hea"
    lines = hea.read_text().splitlines()
    lines[0] = lines[0].replace("A0004 13", "A0004 12")
    hea.write_text("\n".join(line for line in lines if not line.endswith(" V7")) + "\n")
    check("cpsc2018", cpsc, tmp_path, r"'val' is int16 \(13, 5000\); expected .*\(12, samples\)",
          "A0004", "(13, 5000)")


def test_uninterpretable_label(cpsc: Path, tmp_path: Path) -> None:
    write_challenge(cpsc, "A0004", ramp(5000), "AF,Wobble")
    check("cpsc2018", cpsc, tmp_path, r"A0004\.hea: field Dx has unknown label 'Wobble'",
          "A0004", "unknown label 'Wobble'")


def test_wrong_number_of_leads(cpsc: Path, tmp_path: Path) -> None:
    write_challenge(cpsc, "A0004", ramp(5000, leads=11), "AF", leads=STANDARD_LEADS[:11])
    check("cpsc2018", cpsc, tmp_path, r"A0004\.hea: missing standard lead\(s\) \['V6'\]",
          "A0004", "missing standard lead(s) ['V6']")


def ribeiro(root: Path, n: int = 4, n_gold: int | None = None) -> np.ndarray:
    tracings = np.random.default_rng(0).normal(size=(n, 4096, 12)).astype(np.float32)
    write_ribeiro(root, tracings, np.zeros((n if n_gold is None else n_gold, 6), int))
    return tracings


def test_infinite_samples_are_always_bad(tmp_path: Path) -> None:
    root = tmp_path / "data"
    tracings = ribeiro(root)
    tracings[2, 100, 7] = np.inf  # file lead 7 is V2
    with h5py.File(root / "ecg_tracings.hdf5", "r+") as f:
        f["tracings"][...] = tracings
    for protocol in ("paper", "sound"):
        out = tmp_path / protocol
        check("ribeiro", root, out, r"ecg_tracings\.hdf5: infinite samples in lead\(s\) \['V2'\]"
              r" \(record 2\)", "2", "infinite samples", protocol=protocol)


def test_nan_samples(tmp_path: Path) -> None:
    root = tmp_path / "data"
    tracings = ribeiro(root)
    tracings[1, 2000:2003, 0] = np.nan
    with h5py.File(root / "ecg_tracings.hdf5", "r+") as f:
        f["tracings"][...] = tracings
    # paper: only the Challenge datasets had their NaN filled by the paper; elsewhere it is bad
    check("ribeiro", root, tmp_path / "paper", r"missing \(NaN\) samples in lead\(s\) \['I'\]",
          "1", "NaN")
    # sound: interpolated linearly, counted in the shard and the log
    shard, quarantine = run_stages("ribeiro", root, tmp_path / "sound", "error", "sound")
    assert quarantine.empty and np.isfinite(shard.signals).all()
    with h5py.File(tmp_path / "sound" / "part0.h5") as f:
        assert f.attrs["n_missing_filled"] == 3


def test_short_record_is_dropped_not_bad(cpsc: Path, tmp_path: Path) -> None:
    write_challenge(cpsc, "A0004", ramp(4990), "AF")  # 998 samples at 100 Hz: the paper drops it
    shard, quarantine = run_stages("cpsc2018", cpsc, tmp_path, "error")
    assert quarantine.empty and shard.record_ids == ["A0001", "A0002", "A0003"]
    assert shard.dropped == [
        ("A0004", "too short: 4990 samples at 500 Hz give 998 at 100 Hz; 1000 needed")
    ]


def test_truncated_dat(tmp_path: Path) -> None:
    rows = [{"ecg_id": i, "scp_codes": "{'NORM': 100.0}"} for i in (1, 2, 3, 4)]
    write_ptbxl(tmp_path / "ptbxl", rows)
    dat = tmp_path / "ptbxl" / "records100" / "00000" / "00004_lr.dat"
    dat.write_bytes(dat.read_bytes()[:-24 * 10])  # 10 of 1000 frames lost
    check("ptbxl", tmp_path / "ptbxl", tmp_path / "out",
          r"00004_lr\.dat: holds 990 samples per signal but .*sig_len 1000", "00004",
          "holds 990 samples")


def test_label_csv_row_without_record(tmp_path: Path) -> None:
    write_ptbxl(tmp_path / "ptbxl", PTBXL_ROWS)
    for suffix in (".hea", ".dat"):
        (tmp_path / "ptbxl" / "records100" / "00000" / f"00002_lr{suffix}").unlink()
    check("ptbxl", tmp_path / "ptbxl", tmp_path / "out",
          r"ptbxl_database\.csv, ecg_id 2: filename_lr points to .*00002_lr\.hea, which is "
          r"missing", "00002", "which is missing")


def test_ribeiro_label_rows_without_tracings(tmp_path: Path) -> None:
    ribeiro(tmp_path / "data", n=4, n_gold=5)
    check("ribeiro", tmp_path / "data", tmp_path / "out",
          r"ecg_tracings\.hdf5: gold standard row 4 has no tracing: the file holds 4 exams",
          "4", "has no tracing", n_good=4)


def test_ptb_records_list_names_a_missing_record(tmp_path: Path) -> None:
    root = tmp_path / "ptb"
    ids = [f"patient00{i}/s000{i}_re" for i in (1, 2, 3)]
    for record_id in ids:
        write_ptb(root, record_id, "Healthy control")
    (root / "RECORDS").write_text("\n".join([*ids, "patient009/s0009_re"]) + "\n")
    check("ptb", root, tmp_path / "out", r"RECORDS lists patient009/s0009_re, but the file is "
          r"missing", "patient009/s0009_re", "missing")


@pytest.mark.parametrize("on_bad", ["error", "skip"])
def test_corrupt_or_truncated_hdf5_is_always_an_error(tmp_path: Path, on_bad: str) -> None:
    root = tmp_path / "data"
    ribeiro(root)
    path = root / "ecg_tracings.hdf5"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ValueError, match=r"ecg_tracings\.hdf5: not a readable HDF5 file"):
        run_stages("ribeiro", root, out, on_bad)
    assert not list(out.glob("*.csv")) and not list(out.glob("*.h5"))


# --- bad records that used to stop a whole dataset, or name no file -----------------------------


@pytest.mark.parametrize("rate", ["0", "1e999", "-500"])
def test_header_rate_that_is_not_a_positive_number(cpsc: Path, tmp_path: Path, rate: str) -> None:
    # 0 used to stop the index as "below the requested fs"; 1e999 (read as inf) crashed the
    # protocol's arithmetic with an OverflowError naming nothing.
    hea = write_challenge(cpsc, "A0004", ramp(5000), "AF")
    hea.write_text(hea.read_text().replace("A0004 12 500 ", f"A0004 12 {rate} ", 1))
    check("cpsc2018", cpsc, tmp_path, rf"A0004\.hea, line 1: sampling rate {rate!r}; expected a "
          r"finite number of Hz > 0 \(record A0004\)", "A0004", "sampling rate")


def test_header_rate_the_paper_protocol_cannot_decimate(cpsc: Path, tmp_path: Path) -> None:
    hea = write_challenge(cpsc, "A0004", ramp(5000), "AF")
    hea.write_text(hea.read_text().replace("A0004 12 500 ", "A0004 12 333 ", 1))
    check("cpsc2018", cpsc, tmp_path, r"A0004\.hea: native rate 333 Hz is not an integer multiple "
          r"of fs=100 Hz; .* \(record A0004\)", "A0004", "not an integer multiple")


@pytest.mark.parametrize("protocol", ["paper", "sound"])
def test_gain_so_small_that_millivolts_exceed_float32(
    cpsc: Path, tmp_path: Path, protocol: str
) -> None:
    # 5000 / 1e-300 mV is a finite float64 but inf as float32: the shard would hold inf (scaling
    # none) or a min-max of nonsense, and training would fail later naming no record.
    hea = write_challenge(cpsc, "A0004", ramp(5000), "AF")
    hea.write_text("".join(
        line.replace(" 1000/mV ", " 1e-300/mV ") if line.endswith(" V2\n") else line
        for line in hea.read_text().splitlines(keepends=True)
    ))
    check("cpsc2018", cpsc, tmp_path / protocol, r"A0004\.hea: values in lead\(s\) \['V2'\] "
          r"exceed float32's range .*check the header's gain", "A0004", "float32",
          protocol=protocol)


def test_window_beyond_float32_after_resampling_is_bad(cpsc: Path, tmp_path: Path) -> None:
    # Within float32's range as read, but the anti-aliasing filter overshoots a square wave by
    # ~9%: the float32 window would hold inf.
    val = ramp(5000)
    val[7] = np.where(np.arange(5000) // 50 % 2, 32767, 0)
    hea = write_challenge(cpsc, "A0004", val, "AF")
    hea.write_text("".join(
        line.replace(" 1000/mV ", " 9.6374e-35/mV ") if line.endswith(" V2\n") else line
        for line in hea.read_text().splitlines(keepends=True)
    ))
    check("cpsc2018", cpsc, tmp_path, r"A0004\.hea: non-finite values in lead\(s\) \['V2'\] "
          r"after preprocessing", "A0004", "non-finite", protocol="sound")


def empty_exams(root: Path, n: int, n_gold: int) -> None:
    """Ribeiro's files with `n` exams declared (chunked, only the first 3 written: a file of 10**12
    exams takes kilobytes) and `n_gold` gold standard rows."""
    write_ribeiro(root, np.zeros((1, 4096, 12)), np.zeros((n_gold, 6), int))
    with h5py.File(root / "ecg_tracings.hdf5", "w") as f:
        tracings = f.create_dataset("tracings", shape=(n, 4096, 12), dtype=np.float32,
                                    chunks=(1, 4096, 12), maxshape=(None, 4096, 12))
        tracings[:3] = np.random.default_rng(0).normal(size=(3, 4096, 12))


@pytest.mark.parametrize(("surplus", "n_rows"), [(1000, 1000), (1001, 1)])
def test_ribeiro_exams_without_labels_beyond_a_thousand_are_one_row(
    tmp_path: Path, surplus: int, n_rows: int
) -> None:
    empty_exams(tmp_path, 3 + surplus, 3)
    idx = datasets.index("ribeiro", tmp_path, on_bad_record="skip")
    bad = idx.table[idx.table.status == "bad"]
    assert len(bad) == n_rows and (idx.table.status == "ok").sum() == 3
    assert idx.table.record_id.is_unique
    if n_rows == 1:
        assert idx.record_ids == ["0", "1", "2", "3-1003"]
        assert bad.reason.iat[0] == ("exams 3 to 1003 (1001 exams) have no gold standard row: "
                                     "the CSV has 3 rows")


@pytest.mark.parametrize("protocol", ["paper", "sound"])
def test_ribeiro_file_claiming_a_trillion_exams(tmp_path: Path, protocol: str) -> None:
    # One BAD row, not 10**12 of them; only the 3 labelled exams are hashed (sound).
    root = tmp_path / "data"
    empty_exams(root, 10**12, 3)
    check("ribeiro", root, tmp_path / protocol,
          r"ecg_tracings\.hdf5: exam 3 has no gold standard row: the CSV has 3 rows",
          "3-999999999999", "999999999997 exams) have no gold standard row: the CSV has 3 rows",
          protocol=protocol)


@pytest.mark.parametrize("where", ["absolute", "parent", "dotdot"])
def test_signal_file_outside_the_header_folder(cpsc: Path, tmp_path: Path, where: str) -> None:
    folder = cpsc / "sub"
    write_challenge(folder, "A0004", ramp(5000), "AF")
    outside = cpsc / "elsewhere.mat"  # a readable record, but not this header's folder
    (folder / "A0004.mat").rename(outside)
    (folder / "x").mkdir()
    name = {"absolute": str(outside), "parent": "../elsewhere.mat",
            "dotdot": "x/../../elsewhere.mat"}[where]
    hea = folder / "A0004.hea"
    hea.write_text(hea.read_text().replace("A0004.mat ", f"{name} "))
    check("cpsc2018", cpsc, tmp_path, r"A0004\.hea, line 2: signal file "
          rf"{re.escape(repr(name))} is not a plain relative name; .*\(record A0004\)",
          "A0004", "not a plain relative name")


@pytest.mark.parametrize("where", ["absolute", "parent"])
def test_ptbxl_filename_outside_the_dataset(tmp_path: Path, where: str) -> None:
    base = tmp_path / "ptbxl"
    write_ptbxl(base, [{"ecg_id": i, "scp_codes": "{'NORM': 100.0}"} for i in (1, 2, 3, 4)])
    outside = tmp_path / "outside"
    outside.mkdir()
    for suffix in (".hea", ".dat"):  # a readable record, but outside the dataset's folder
        (base / "records100" / "00000" / f"00004_lr{suffix}").rename(outside / f"00004_lr{suffix}")
    name = {"absolute": str(outside / "00004_lr"), "parent": "../outside/00004_lr"}[where]
    table = pd.read_csv(base / "ptbxl_database.csv")
    table.loc[table.ecg_id == 4, "filename_lr"] = name
    table.to_csv(base / "ptbxl_database.csv", index=False)
    check("ptbxl", base, tmp_path / "out", r"ptbxl_database\.csv: ecg_id 4: filename_lr "
          rf"{re.escape(repr(name))} points outside .*\(record 00004\)", "00004",
          "points outside")


@pytest.mark.parametrize("line", [1, 3])
def test_ptb_records_line_that_is_not_utf8(tmp_path: Path, line: int) -> None:
    root = tmp_path / "ptb"
    ids = [f"patient00{i}/s000{i}_re" for i in (1, 2, 3)]
    for record_id in ids:
        write_ptb(root, record_id, "Healthy control")
    lines = [name.encode() for name in ids]
    lines.insert(line - 1, b"patient004/s\xff004_re")
    (root / "RECORDS").write_bytes(b"\n".join(lines) + b"\n")
    check("ptb", root, tmp_path / "out", rf"RECORDS: line {line} is not UTF-8 text .*"
          rf"\(record RECORDS line {line}\)", f"RECORDS line {line}", "not UTF-8 text")
