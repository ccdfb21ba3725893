"""The demo mirrors: real formats, real layouts, reproducible bytes, and a learnable class signal.

Each archive is read back with the libraries one reads the real datasets with (wfdb, scipy.io,
h5py, pandas). Where the genuine example records of /work/shared/real-ecg exist, the headers and
tables are compared with them field by field; without them only those comparisons are skipped.
"""

from __future__ import annotations

import ast
import collections
import hashlib
import tarfile
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.signal
import wfdb

from ecg_transfer import demo

REAL = Path("/work/shared/real-ecg")
SIZES = {"ptbxl": 30, "cpsc2018": 40, "georgia": 30, "ptb": 12, "ribeiro": 80}
PTBXL_TOP = "ptb-xl-a-large-publicly-available-electrocardiography-dataset-1.0.3"
PTB_TOP = "ptb-diagnostic-ecg-database-1.0.0"
STANDARD = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
CPSC_CODES = {"426783006", "164889003", "270492004", "164909002", "59118001", "284470004",
              "164884008", "429622005", "164931005"}  # fmt: skip
GEORGIA_CODES = {"426783006", "164889003", "270492004", "426177001", "39732003", "427084000",
                 "164934002", "59931005", "111975006", "284470004"}  # fmt: skip

needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} (genuine records) not present")


@pytest.fixture(scope="module")
def mirrors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each dataset's archive, written once and extracted; name -> extraction root."""
    base = tmp_path_factory.mktemp("mirrors")
    roots = {}
    for name, n in SIZES.items():
        archive = demo.write_archive(name, base / f"{name}.{demo.ARCHIVE_KINDS[name]}", n, seed=3)
        root = base / name
        if demo.ARCHIVE_KINDS[name] == "zip":
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(root)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(root, filter="data")
        roots[name] = root
    return roots


def _dx(header: wfdb.Record) -> list[str]:
    line = next(c for c in header.comments if c.lstrip("# ").lower().startswith("dx:"))
    return line.split(":", 1)[1].strip().split(",")


# ---- API ---------------------------------------------------------------------------------------


def test_unknown_dataset_names_the_accepted_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ptbxl, cpsc2018, georgia, ptb, ribeiro"):
        demo.write_archive("mitbih", tmp_path / "x.zip", 5)
    assert demo.DATASETS == ("ptbxl", "cpsc2018", "georgia", "ptb", "ribeiro")


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_bad_record_count_is_refused(tmp_path: Path, n: object) -> None:
    with pytest.raises(ValueError, match="n_records"):
        demo.write_archive("ptbxl", tmp_path / "x.zip", n)  # type: ignore[arg-type]


def test_failed_build_leaves_nothing_behind(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "georgia.tar"
    with pytest.raises(ValueError, match="georgia: n_records is 1"):
        demo.write_archive("georgia", dest, 1)
    assert list(dest.parent.iterdir()) == []


@pytest.mark.parametrize("name", demo.DATASETS)
def test_bytes_are_reproducible_and_seeded(tmp_path: Path, name: str) -> None:
    n = 6 if name != "ptb" else 3
    kind = demo.ARCHIVE_KINDS[name]
    paths = [demo.write_archive(name, tmp_path / f"{i}.{kind}", n, seed=s)
             for i, s in enumerate((7, 7, 8))]  # fmt: skip
    digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    assert digests[0] == digests[1]
    assert digests[0] != digests[2]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{i}.{kind}" for i in range(3)]


@pytest.mark.parametrize("difficulty", [0, 0.0, -0.5, 1.01, 2, float("nan"), float("inf"), True,
                                        "0.5", None])  # fmt: skip
def test_difficulty_outside_0_1_is_refused(tmp_path: Path, difficulty: object) -> None:
    with pytest.raises(ValueError, match="difficulty"):
        demo.write_archive("ribeiro", tmp_path / "x.zip", 4, difficulty=difficulty)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", demo.DATASETS)
def test_easier_mirrors_differ_and_are_reproducible(tmp_path: Path, name: str) -> None:
    n = 6 if name != "ptb" else 3
    kind = demo.ARCHIVE_KINDS[name]
    paths = [demo.write_archive(name, tmp_path / f"{i}.{kind}", n, seed=7, **kw)
             for i, kw in enumerate(({}, {"difficulty": 1.0}, {"difficulty": 0.3},
                                     {"difficulty": 0.3}, {"difficulty": 0.5}))]  # fmt: skip
    digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    assert digests[0] == digests[1]  # 1.0 is the default, the realistic mirror
    assert digests[2] == digests[3]
    assert len({digests[0], digests[2], digests[4]}) == 3


def test_archive_metadata_is_fixed(tmp_path: Path) -> None:
    with zipfile.ZipFile(demo.write_archive("ribeiro", tmp_path / "r.zip", 4)) as zf:
        for info in zf.infolist():
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.compress_type == zipfile.ZIP_STORED
    with tarfile.open(demo.write_archive("cpsc2018", tmp_path / "c.tar", 4)) as tf:
        members = tf.getmembers()
        assert [m.name for m in members] == sorted(m.name for m in members)
        for m in members:
            assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "")
            assert m.mode == (0o755 if m.isdir() else 0o644)


# ---- PTB-XL ------------------------------------------------------------------------------------


def test_ptbxl_layout_tables_and_records(mirrors: dict[str, Path]) -> None:
    top = mirrors["ptbxl"] / PTBXL_TOP
    assert sorted(p.name for p in mirrors["ptbxl"].iterdir()) == [PTBXL_TOP]
    db = pd.read_csv(top / "ptbxl_database.csv", index_col="ecg_id")
    statements = pd.read_csv(top / "scp_statements.csv", index_col=0)
    assert list(db.index) == list(range(1, SIZES["ptbxl"] + 1))
    assert set(db.strat_fold) <= set(range(1, 11))
    assert db.patient_id.nunique() < len(db)  # some patients have several ECGs
    diagnostic = statements[statements.diagnostic == 1.0]
    assert set(diagnostic.diagnostic_class) == {"NORM", "MI", "STTC", "HYP", "CD"}
    seen = collections.Counter()
    for codes in db.scp_codes:
        parsed = ast.literal_eval(codes)
        assert isinstance(parsed, dict) and all(isinstance(v, float) for v in parsed.values())
        assert set(parsed) <= set(statements.index)
        seen.update(
            {diagnostic.loc[c, "diagnostic_class"] for c in parsed if c in diagnostic.index}
        )
    assert set(seen) == {"NORM", "MI", "STTC", "HYP", "CD"}
    assert seen["NORM"] == max(seen.values())
    row = db.iloc[4]
    assert row.filename_lr == "records100/00000/00005_lr"
    assert row.filename_hr == "records500/00000/00005_hr"
    lr = wfdb.rdrecord(str(top / row.filename_lr))
    hr = wfdb.rdrecord(str(top / row.filename_hr))
    assert (lr.fs, lr.sig_len, hr.fs, hr.sig_len) == (100, 1000, 500, 5000)
    for rec in (lr, hr):
        assert rec.sig_name == ["I", "II", "III", "AVR", "AVL", "AVF", *STANDARD[6:]]
        assert rec.units == ["mV"] * 12 and rec.adc_gain == [1000.0] * 12 and rec.fmt == ["16"] * 12
    # The 100 Hz copy is the 500 Hz one downsampled.
    down = hr.p_signal.reshape(1000, 5, 12).mean(axis=1)
    assert np.abs(down - lr.p_signal).max() < 0.002
    # Einthoven and Goldberger hold, as in a real electrocardiograph (up to rounding).
    d = hr.adc().astype(int)
    assert np.abs(d[:, 2] - (d[:, 1] - d[:, 0])).max() <= 2
    assert np.abs(d[:, 3] + (d[:, 0] + d[:, 1]) / 2).max() <= 2


@needs_real
def test_ptbxl_matches_the_real_files(mirrors: dict[str, Path]) -> None:
    top = mirrors["ptbxl"] / PTBXL_TOP
    for table in ("ptbxl_database.csv", "scp_statements.csv"):
        real = (REAL / "ptbxl" / table).read_text(encoding="utf-8").splitlines()[0]
        assert (top / table).read_text(encoding="utf-8").splitlines()[0] == real
    real_db = pd.read_csv(REAL / "ptbxl" / "ptbxl_database.csv")
    db = pd.read_csv(top / "ptbxl_database.csv")
    for column in ("ecg_id", "patient_id", "age", "sex", "strat_fold", "scp_codes", "filename_hr"):
        assert db[column].dtype == real_db[column].dtype, column
    for sub, rate in (("records100", "lr"), ("records500", "hr")):
        real = wfdb.rdheader(str(REAL / "ptbxl" / sub / "00000" / f"00001_{rate}"))
        ours = wfdb.rdheader(str(top / sub / "00000" / f"00001_{rate}"))
        _same_header_fields(real, ours)
        real_lines = (REAL / "ptbxl" / sub / "00000" / f"00001_{rate}.hea").read_text().splitlines()
        our_lines = (top / sub / "00000" / f"00001_{rate}.hea").read_text().splitlines()
        assert real_lines[0] == our_lines[0]  # "00001_lr 12 100 1000": no date, no time
        assert [_spec(line) for line in real_lines[1:]] == [_spec(line) for line in our_lines[1:]]


# ---- CPSC2018 and Georgia (Challenge 2020) -----------------------------------------------------


def test_cpsc2018_records_read_and_vary_in_length(mirrors: dict[str, Path]) -> None:
    folder = mirrors["cpsc2018"] / "Training_WFDB"
    assert sorted(p.name for p in mirrors["cpsc2018"].iterdir()) == ["Training_WFDB"]
    names = sorted(p.stem for p in folder.glob("*.hea"))
    assert names == [f"A{i:04d}" for i in range(1, SIZES["cpsc2018"] + 1)]
    lengths, codes = [], collections.Counter()
    for name in names:
        header = wfdb.rdheader(str(folder / name))
        val = scipy.io.loadmat(folder / f"{name}.mat")["val"]
        assert val.dtype == np.int16 and val.shape == (12, header.sig_len)
        assert header.fs == 500 and header.sig_name == STANDARD
        dx = _dx(header)
        assert set(dx) <= CPSC_CODES and dx
        codes.update(dx)
        lengths.append(header.sig_len)
    assert set(codes) == CPSC_CODES  # every class present even in a small mirror
    assert min(lengths) >= 3000 and max(lengths) <= 30000 and len(set(lengths)) > 30
    assert 1 <= sum(n < 5000 for n in lengths) <= 3  # too short for a 10 s window
    record = wfdb.rdrecord(str(folder / names[0]), physical=False)
    val = scipy.io.loadmat(folder / f"{names[0]}.mat")["val"]
    np.testing.assert_array_equal(record.d_signal.T, val)


def test_georgia_codes_duplicate_and_header_styles(mirrors: dict[str, Path]) -> None:
    folder = mirrors["georgia"] / "WFDB"
    assert sorted(p.name for p in mirrors["georgia"].iterdir()) == ["WFDB"]
    digests = collections.defaultdict(list)
    only_ignored, study, gapped = 0, collections.Counter(), []
    for hea in sorted(folder.glob("E*.hea")):
        header = wfdb.rdheader(str(hea.with_suffix("")))
        val = scipy.io.loadmat(hea.with_suffix(".mat"))["val"]
        assert val.dtype == np.int16 and val.shape == (12, header.sig_len) and header.fs == 500
        dx = _dx(header)
        assert all(code.isdigit() for code in dx)
        study.update(set(dx) & GEORGIA_CODES)
        only_ignored += not set(dx) & GEORGIA_CODES
        digests[hashlib.sha256(hea.with_suffix(".mat").read_bytes()).hexdigest()].append(hea.stem)
        if (val == -32768).any():
            gapped.append(hea.stem)
    assert sorted(len(v) for v in digests.values() if len(v) > 1) == [2]  # one duplicate pair
    assert len(gapped) == 1  # a stretch of missing samples, which wfdb reads as NaN
    signal = wfdb.rdrecord(str(folder / gapped[0])).p_signal
    assert 50 <= np.isnan(signal).sum() < 500 and np.isnan(signal).any(axis=0).sum() == 1
    assert only_ignored >= 1
    assert set(study) == GEORGIA_CODES
    assert study["426783006"] == max(study.values())  # NORM most common


@needs_real
@pytest.mark.parametrize(
    ("name", "folder", "real_dir", "real_record"),
    [
        ("cpsc2018", "Training_WFDB", "cpsc2018_challenge2020", "A0001"),
        ("georgia", "WFDB", "georgia_challenge2021", "E07500"),
    ],
)
def test_challenge_headers_match_the_real_files(
    mirrors: dict[str, Path], name: str, folder: str, real_dir: str, real_record: str
) -> None:
    real = wfdb.rdheader(str(REAL / real_dir / real_record))
    ours_path = mirrors[name] / folder / f"{real_record[0]}{1:0{len(real_record) - 1}d}"
    ours = wfdb.rdheader(str(ours_path))
    _same_header_fields(real, ours)
    assert (ours.base_date, ours.base_time) == (real.base_date, real.base_time)
    keys = [c.split(":")[0] for c in ours.comments]
    assert keys[:5] == [c.split(":")[0] for c in real.comments][:5]  # Age Sex Dx Rx Hx
    real_lines = (REAL / real_dir / f"{real_record}.hea").read_text().splitlines()
    our_lines = ours_path.with_suffix(".hea").read_text().splitlines()
    assert [_spec(line) for line in real_lines[1:13]] == [_spec(line) for line in our_lines[1:13]]
    real_mat = (REAL / real_dir / f"{real_record}.mat").read_bytes()
    our_mat = ours_path.with_suffix(".mat").read_bytes()
    assert our_mat[:8] == real_mat[:8] and our_mat[16:24] == real_mat[16:24]  # v4 header
    assert (
        scipy.io.loadmat(ours_path.with_suffix(".mat")).keys()
        == scipy.io.loadmat(REAL / real_dir / f"{real_record}.mat").keys()
    )


# ---- PTB ---------------------------------------------------------------------------------------


def test_ptb_records_have_15_signals_and_a_reason(mirrors: dict[str, Path]) -> None:
    top = mirrors["ptb"] / PTB_TOP
    records = (top / "RECORDS").read_text().split()
    assert len(records) == SIZES["ptb"]
    patients = collections.Counter(r.split("/")[0] for r in records)
    assert max(patients.values()) > 1  # some patients have several records
    reasons = collections.Counter()
    for name in records:
        record = wfdb.rdrecord(str(top / name))
        assert record.n_sig == 15 and record.fs == 1000
        assert record.sig_name == [s.lower() for s in STANDARD] + ["vx", "vy", "vz"]
        assert (
            record.file_name
            == [f"{name.split('/')[1]}.dat"] * 12 + [f"{name.split('/')[1]}.xyz"] * 3
        )
        assert record.adc_gain == [2000.0] * 15
        assert 12_000 <= record.sig_len <= 32_000
        assert (top / f"{name}.hea").read_bytes().count(b"\r\n") > 15  # CRLF, like PTB
        reason = next(c for c in record.comments if c.startswith("Reason for admission:"))
        reasons[reason.split(":", 1)[1].strip()] += 1
    assert {"Myocardial infarction", "Healthy control"} <= set(reasons)
    assert reasons["Myocardial infarction"] == max(reasons.values())


@needs_real
def test_ptb_header_matches_the_real_one(mirrors: dict[str, Path]) -> None:
    top = mirrors["ptb"] / PTB_TOP
    first = (top / "RECORDS").read_text().split()[0]
    real = wfdb.rdheader(str(REAL / "ptbdb" / "s0010_re"))
    ours = wfdb.rdheader(str(top / first))
    _same_header_fields(real, ours)
    assert [c.split(":")[0] for c in ours.comments][:3] == ["age", "sex", "ECG date"]
    real_keys = {c.split(":")[0] for c in real.comments}
    assert {c.split(":")[0] for c in ours.comments} <= real_keys
    real_lines = (REAL / "ptbdb" / "s0010_re.hea").read_bytes().split(b"\r\n")
    our_lines = (top / f"{first}.hea").read_bytes().split(b"\r\n")
    assert [_spec(x.decode()) for x in real_lines[1:16]] == [
        _spec(x.decode()) for x in our_lines[1:16]
    ]
    assert real_lines[16] == our_lines[16] == b""  # blank line before the comments


# ---- Ribeiro (CODE test set) -------------------------------------------------------------------


def test_ribeiro_tracings_and_tables(mirrors: dict[str, Path]) -> None:
    top = mirrors["ribeiro"] / "data"
    with h5py.File(top / "ecg_tracings.hdf5", "r") as f:
        assert list(f) == ["tracings"]
        x = f["tracings"][()]
    n = SIZES["ribeiro"]
    assert x.shape == (n, 4096, 12) and x.dtype == np.float32
    assert (x[:, :48] == 0).all() and (x[:, -48:] == 0).all()
    short = (x[:, :648] == 0).all(axis=(1, 2)) & (x[:, -648:] == 0).all(axis=(1, 2))
    assert 1 <= short.sum() < n // 3  # a few 7 s exams, padded with 648 zeros a side
    assert (np.abs(x[~short, 48:4048]).max(axis=1) > 0).all()
    assert 0.3 < np.abs(x).max() < 20  # millivolts
    # Leads DI DII DIII AVL AVF AVR: DIII = DII - DI, AVR = -(DI + DII) / 2.
    np.testing.assert_allclose(x[..., 2], x[..., 1] - x[..., 0], atol=2.5e-3)  # 1 uV steps
    np.testing.assert_allclose(x[..., 5], -(x[..., 0] + x[..., 1]) / 2, atol=2.5e-3)
    gold = pd.read_csv(top / "annotations" / "gold_standard.csv")
    assert list(gold.columns) == ["1dAVb", "RBBB", "LBBB", "SB", "AF", "ST"]
    assert len(gold) == n and set(np.unique(gold.values)) == {0, 1}
    assert (gold.sum() > 0).all() and (gold.sum(axis=1) == 0).mean() > 0.4
    attrs = pd.read_csv(top / "attributes.csv")
    assert list(attrs.columns) == ["age", "sex"] and len(attrs) == n
    assert set(attrs.sex) <= {"M", "F"}


@needs_real
def test_ribeiro_tables_match_the_real_ones(mirrors: dict[str, Path]) -> None:
    top = mirrors["ribeiro"] / "data"
    for rel in ("annotations/gold_standard.csv", "attributes.csv"):
        real = pd.read_csv(REAL / "ribeiro_code_test" / rel)
        ours = pd.read_csv(top / rel)
        assert list(ours.columns) == list(real.columns)
        assert list(ours.dtypes) == list(real.dtypes)


# ---- the class signal is in the waveforms ------------------------------------------------------


def _rr_intervals(signal: np.ndarray, fs: float) -> np.ndarray:
    """Crude R-peak detection on the summed slope of all leads; signal is (samples, 12)."""
    b, a = scipy.signal.butter(2, [5.0, 30.0], btype="band", fs=fs)
    energy = np.abs(np.diff(scipy.signal.filtfilt(b, a, signal, axis=0), axis=0)).sum(axis=1)
    peaks, _ = scipy.signal.find_peaks(
        energy, height=0.35 * np.percentile(energy, 99), distance=int(0.3 * fs)
    )
    return np.diff(peaks) / fs


def test_rate_and_rhythm_classes_differ_in_the_signal(mirrors: dict[str, Path]) -> None:
    top = mirrors["ribeiro"] / "data"
    with h5py.File(top / "ecg_tracings.hdf5", "r") as f:
        x = f["tracings"][()]
    gold = pd.read_csv(top / "annotations" / "gold_standard.csv")
    stats = collections.defaultdict(list)
    for i, row in gold.iterrows():
        live = np.flatnonzero(np.abs(x[i]).sum(axis=1) > 0)
        rr = _rr_intervals(x[i, live[0] : live[-1] + 1], 400.0)
        for cls in ("SB", "ST", "AF"):
            if row[cls]:
                stats[cls].append((np.median(rr), np.std(rr) / np.mean(rr)))
        if not row.any():
            stats["none"].append((np.median(rr), np.std(rr) / np.mean(rr)))
    assert min(len(v) for v in stats.values()) >= 3
    rr = {k: np.median([m for m, _ in v]) for k, v in stats.items()}
    irregularity = {k: np.median([c for _, c in v]) for k, v in stats.items()}
    assert rr["SB"] > 1.0 > 60 / 100 > rr["ST"]  # < 60 and > 100 beats/min
    assert rr["SB"] > rr["none"] > rr["ST"]
    assert irregularity["AF"] > 2 * irregularity["none"]


def test_bundle_branch_blocks_widen_the_qrs(mirrors: dict[str, Path]) -> None:
    top = mirrors["ribeiro"] / "data"
    with h5py.File(top / "ecg_tracings.hdf5", "r") as f:
        x = f["tracings"][()]
    gold = pd.read_csv(top / "annotations" / "gold_standard.csv")
    b, a = scipy.signal.butter(2, [5.0, 40.0], btype="band", fs=400.0)
    width = {}
    for i in range(len(gold)):
        energy = np.abs(scipy.signal.filtfilt(b, a, x[i, 700:3400], axis=0)).sum(axis=1)
        width[i] = (energy > 0.3 * np.percentile(energy, 99.5)).sum() / len(energy)
    wide = [width[i] for i in gold.index[(gold.RBBB == 1) | (gold.LBBB == 1)]]
    normal = [width[i] for i in gold.index[gold.sum(axis=1) == 0]]
    assert np.median(wide) > 1.3 * np.median(normal)


def _rates(top: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Gold labels and each exam's heart rate (beats/min) of an extracted Ribeiro mirror."""
    with h5py.File(top / "ecg_tracings.hdf5", "r") as f:
        x = f["tracings"][()]
    gold = pd.read_csv(top / "annotations" / "gold_standard.csv")
    rates = []
    for i in range(len(gold)):
        live = np.flatnonzero(np.abs(x[i]).sum(axis=1) > 0)
        rates.append(60.0 / np.median(_rr_intervals(x[i, live[0] : live[-1] + 1], 400.0)))
    return gold, np.array(rates)


def _separation(a: np.ndarray, b: np.ndarray) -> float:
    """Distance of two groups' means in units of their pooled within-group spread."""
    return float((np.mean(a) - np.mean(b)) / np.sqrt((np.var(a) + np.var(b)) / 2))


def test_lower_difficulty_separates_the_classes_more(
    mirrors: dict[str, Path], tmp_path: Path
) -> None:
    """Heart rate tells SB and ST from exams without a finding, far more clearly when easier."""
    archive = demo.write_archive("ribeiro", tmp_path / "easy.zip", SIZES["ribeiro"], seed=3,
                                 difficulty=0.3)  # fmt: skip
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(tmp_path / "easy")
    separations = {}
    for label, top in (
        ("realistic", mirrors["ribeiro"] / "data"),
        ("easy", tmp_path / "easy" / "data"),
    ):
        gold, rate = _rates(top)
        none = rate[gold.sum(axis=1).to_numpy() == 0]
        sb, st = rate[gold.SB.to_numpy() == 1], rate[gold.ST.to_numpy() == 1]
        assert min(len(none), len(sb), len(st)) >= 3
        separations[label] = (_separation(none, sb), _separation(st, none))
    for realistic, easy in zip(separations["realistic"], separations["easy"], strict=True):
        assert realistic > 1.5  # learnable at 1.0 too
        assert easy > 2 * realistic


# ---- helpers -----------------------------------------------------------------------------------


def _same_header_fields(real: wfdb.Record, ours: wfdb.Record) -> None:
    for field in ("n_sig", "fs", "fmt", "adc_gain", "baseline", "units", "adc_res", "adc_zero",
                  "samps_per_frame", "byte_offset", "sig_name", "skew"):  # fmt: skip
        assert getattr(ours, field) == getattr(real, field), field


def _spec(line: str) -> tuple[str, ...]:
    """A signal line without its file name, initial value and checksum: the format fields."""
    f = line.split()
    return (f[1], f[2], f[3], f[4], f[7], f[8]) if len(f) == 9 else tuple(f)
