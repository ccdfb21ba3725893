"""Every genuine record in ../shared/real-ecg through the readers: shapes, rates and labels as the
headers say. Skipped only when that folder is absent (users do not have it); nothing from it is
copied into the project.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecg_transfer import datasets
from ecg_transfer.datasets.challenge import CPSC2018_TEXT_CODES, diagnosis_codes
from ecg_transfer.datasets.wfdb_io import read_header, read_record

REAL = Path(__file__).resolve().parents[2] / "shared" / "real-ecg"
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} (genuine records) is absent")


def headers(folder: str) -> list[Path]:
    return sorted((REAL / folder).rglob("*.hea"))


@pytest.mark.parametrize("protocol", ["paper", "sound"])
@pytest.mark.parametrize(
    "name,folder", [("cpsc2018", "cpsc2018_challenge2020"), ("georgia", "georgia_challenge2021")]
)
def test_challenge_records(name: str, folder: str, protocol: str) -> None:
    idx = datasets.index(name, REAL / folder, protocol)
    assert idx.record_ids == [p.stem for p in headers(folder)]
    for path, row in zip(headers(folder), idx.table.itertuples(index=False), strict=True):
        header = read_header(path)
        signal, fs = read_record(path)
        assert signal.shape == (12, header.sig_len) and fs == header.fs == 500
        assert row.native_length == header.sig_len and row.native_fs == 500
        codes = diagnosis_codes(header, name)
        if name == "cpsc2018":  # the early release writes text: every token is translated
            tokens = header.comments[[c.lower().startswith("dx") for c in header.comments]
                                     .index(True)][3:].split(",")
            assert codes == [CPSC2018_TEXT_CODES[t.strip().lower()] for t in tokens]
    rs = datasets.load(name, REAL / folder, protocol)
    assert rs.signals.shape == (len(idx.table), 12, 1000) and rs.fs == 100
    assert np.isfinite(rs.signals).all() and rs.protocol == protocol
    named = {r: [c for c, v in zip(rs.classes, row, strict=True) if v]
             for r, row in zip(rs.record_ids, rs.labels, strict=True)}
    if name == "cpsc2018":
        assert named == {"A0001": ["RBBB"], "A0002": ["NORM"], "A0003": ["AF"],
                         "A0004": ["AF"], "A0005": ["VEB"]}
    else:
        assert named["E07505"] == [] and named["E07509"] == ["SB"]


@pytest.mark.parametrize("protocol", ["paper", "sound"])
def test_ptb_record(tmp_path: Path, protocol: str) -> None:
    root = tmp_path / "ptb"
    shutil.copytree(REAL / "ptbdb", root / "patient001")  # the layout PTB's archive has
    rs = datasets.load("ptb", root, protocol)
    header = read_header(REAL / "ptbdb" / "s0010_re.hea")
    assert header.fs == 1000 and len(header.signals) == 15
    assert rs.signals.shape == (1, 12, 1000) and rs.labels.tolist() == [[0, 1]]
    assert rs.patient_ids == ["patient001"]


@pytest.mark.parametrize("protocol", ["paper", "sound"])
@pytest.mark.parametrize("fs", [100, 500])
def test_ptbxl_records(tmp_path: Path, protocol: str, fs: int) -> None:
    root = tmp_path / "ptbxl"
    root.mkdir()
    for name in ("records100", "records500", "scp_statements.csv"):
        src = REAL / "ptbxl" / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / name)
    table = pd.read_csv(REAL / "ptbxl" / "ptbxl_database.csv")
    table[table.ecg_id <= 10].to_csv(root / "ptbxl_database.csv", index=False)
    rs = datasets.load("ptbxl", root, protocol, fs=fs, seconds=10)
    assert rs.signals.shape == (10, 12, 10 * fs) and rs.fs == fs
    assert rs.record_ids == [f"{i:05d}" for i in range(1, 11)]
    for record_id in rs.record_ids:
        suffix = "lr" if fs == 100 else "hr"
        header = read_header(root / f"records{fs}/00000/{record_id}_{suffix}.hea")
        assert header.fs == fs and header.sig_len == 10 * fs
    assert rs.labels[:, 0].tolist() == [1, 1, 1, 1, 1, 1, 1, 0, 1, 1]
    assert rs.labels[7].tolist() == [0, 1, 0, 0, 0]  # IMI
    assert rs.patient_ids[0] == "15709" and rs.folds.tolist()[:3] == [3, 2, 5]


def test_ribeiro_labels_only() -> None:
    gold = pd.read_csv(REAL / "ribeiro_code_test" / "annotations" / "gold_standard.csv")
    assert len(gold) == 827
    assert list(gold.columns) == ["1dAVb", "RBBB", "LBBB", "SB", "AF", "ST"]
