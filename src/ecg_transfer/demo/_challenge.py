"""CPSC2018 and Georgia as released for the PhysioNet/CinC Challenge 2020.

Each record is a MATLAB v4 `.mat` (int16 `val`, leads x samples) and a WFDB `.hea` whose
`#Dx:` comment lists SNOMED-CT codes, the final releases' style. The two sources differ in the
ways readers trip over, and the demo keeps those differences:

- CPSC2018 records last 6-60 s (a few under the 10 s a model input needs, so a reader must
  drop them), have a fixed date and time on the record line, and use `16+24 1000/mV`.
- Georgia records last 10 s, use `16x1+24 1000.0(0)/mV` (a few the CPSC spelling), carry many
  diagnoses the study ignores (some records only those), two records hold byte-identical
  signals under different names, as two do in the real release, and a few records have a
  stretch of missing samples (-32768) in one lead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import _common, _formats, _synth

FS = 500
LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")

# ---- CPSC2018 --------------------------------------------------------------------------------
CPSC_TOP = "Training_WFDB"
CPSC_CODES = {
    "NORM": "426783006",
    "AF": "164889003",
    "IAVB": "270492004",
    "LBBB": "164909002",
    "RBBB": "59118001",
    "PAC": "284470004",
    "VEB": "164884008",
    "STD": "429622005",
    "STE": "164931005",
}
# Record counts of the real CPSC2018 training set (6877 records): the class shares.
CPSC_WEIGHTS = {
    "NORM": 918,
    "AF": 1221,
    "IAVB": 722,
    "LBBB": 236,
    "RBBB": 1857,
    "PAC": 616,
    "VEB": 700,
    "STD": 869,
    "STE": 220,
}
_CPSC_FINDING = {
    "AF": "AF",
    "IAVB": "IAVB",
    "LBBB": "LBBB",
    "RBBB": "RBBB",
    "PAC": "PAC",
    "VEB": "PVC",
    "STD": "STD",
    "STE": "STE",
}
# A second diagnosis (~7 % of records, as in CPSC2018) from those that can coexist.
_CPSC_SECOND = {
    "AF": ("RBBB", "VEB", "STD", "LBBB"),
    "IAVB": ("RBBB", "STD", "VEB", "LBBB"),
    "LBBB": ("IAVB", "AF", "VEB"),
    "RBBB": ("AF", "IAVB", "PAC", "VEB", "STD", "STE"),
    "PAC": ("RBBB", "STD", "IAVB"),
    "VEB": ("RBBB", "AF", "STD"),
    "STD": ("RBBB", "VEB", "AF", "PAC"),
    "STE": ("RBBB", "VEB"),
}
CPSC_DATE_TIME = "05-Feb-2020 11:39:16"  # the same on every CPSC2018 record line

# ---- Georgia ---------------------------------------------------------------------------------
GEORGIA_TOP = "WFDB"
GEORGIA_CODES = {
    "NORM": "426783006",
    "AF": "164889003",
    "IAVB": "270492004",
    "SB": "426177001",
    "LAD": "39732003",
    "STach": "427084000",
    "TAb": "164934002",
    "TInv": "59931005",
    "LQT": "111975006",
    "PAC": "284470004",
}
# Diagnoses Georgia has but the study does not use: (code, finding that shows it).
GEORGIA_IGNORED = {
    "AFL": ("164890007", "AFL"),
    "IRBBB": ("713426002", "IRBBB"),
    "LAnFB": ("445118002", "LAD"),
    "LVH": ("164873001", "LVH"),
    "NSSTTA": ("428750005", "NSTT"),
    "RBBB": ("59118001", "RBBB"),
    "QAb": ("164917005", "MI"),
}
_GEORGIA_FINDING = {
    "AF": "AF",
    "IAVB": "IAVB",
    "SB": "SB",
    "LAD": "LAD",
    "STach": "STACH",
    "TAb": "TAB",
    "TInv": "TINV",
    "LQT": "LQT",
    "PAC": "PAC",
}
# Main diagnosis of a record; "OTHER" records carry only diagnoses the study ignores.
GEORGIA_CASES = {
    "NORM": 0.2,
    "SB": 0.14,
    "STach": 0.1,
    "AF": 0.055,
    "IAVB": 0.06,
    "LAD": 0.07,
    "TAb": 0.14,
    "TInv": 0.06,
    "LQT": 0.09,
    "PAC": 0.05,
    "OTHER": 0.1,
}
_RHYTHMS = ("AF", "SB", "STach")
MISSING = -32768  # WFDB's "no sample" value in format 16; readers see NaN


def _cpsc_lengths(rng: np.random.Generator, n: int) -> list[int]:
    """6-60 s, median ~14 s, and ~1 % under 10 s (at least one when n >= 10)."""
    secs = np.clip(10.0 + np.exp(rng.normal(np.log(4.0), 0.9, n)), 10.0, 60.0)
    n_short = max(1, round(0.01 * n)) if n >= 10 else 0
    secs[rng.choice(n, n_short, replace=False)] = rng.uniform(6.0, 9.9, n_short)
    return [round(float(s) * FS) for s in secs]


def build_cpsc(
    root: Path, n_records: int, rng: np.random.Generator, difficulty: float = 1.0
) -> None:
    top = root / CPSC_TOP
    top.mkdir()
    cases = _common.quota(rng, n_records, CPSC_WEIGHTS)
    lengths = _cpsc_lengths(rng, n_records)
    for i, (case, n) in enumerate(zip(cases, lengths, strict=True)):
        labels = [case]
        if case != "NORM" and rng.random() < 0.075:
            labels.append(str(rng.choice(_CPSC_SECOND[case])))
        findings = [_CPSC_FINDING[c] for c in labels if c != "NORM"]
        if "AF" in findings and "IAVB" in findings:
            findings.remove("IAVB")
            labels.remove("IAVB")
        findings.sort(key=lambda x: x != "AF")  # rhythm first, so later findings see its rate
        subject = _synth.new_subject(rng, mains_hz=50.0, difficulty=difficulty)
        mv = _common.synthesize(findings, subject, FS, n, rng)[0]
        sex = "Male" if rng.random() < 0.54 else "Female"
        comments = [
            f"#Age: {_common.age(rng, 60.0, 18.0, 18, 90)}",
            f"#Sex: {sex}",
            "#Dx: " + ",".join(CPSC_CODES[c] for c in labels),
            "#Rx: Unknown",
            "#Hx: Unknown",
            "#Sx: Unknown",
        ]
        _write(
            top,
            f"A{i + 1:04d}",
            mv,
            comments,
            fmt="16+24",
            gain="1000/mV",
            date_time=CPSC_DATE_TIME,
        )


def build_georgia(
    root: Path, n_records: int, rng: np.random.Generator, difficulty: float = 1.0
) -> None:
    if n_records < 2:
        raise ValueError(
            f"georgia: n_records is {n_records}; the mirror needs at least 2 "
            f"(two of its records are byte-identical duplicates)"
        )
    top = root / GEORGIA_TOP
    top.mkdir()
    cases = _common.quota(rng, n_records, GEORGIA_CASES)
    duplicate = int(rng.integers(0, n_records - 1))  # record duplicate+1 repeats this one
    old_style = rng.random(n_records) < 0.1
    # A few records (~0.5 %, at least one from 20 records on) lost a stretch of one lead, which
    # the real Georgia files mark with WFDB's missing-sample value.
    n_gaps = max(1, round(0.005 * n_records)) if n_records >= 20 else 0
    candidates = [i for i in range(n_records) if i not in (duplicate, duplicate + 1)]
    gapped = {int(i) for i in rng.choice(candidates, n_gaps, replace=False)} if n_gaps else set()
    last: tuple[np.ndarray, list[str], str, str] | None = None
    for i, case in enumerate(cases):
        name = f"E{i + 1:05d}"
        if i == duplicate + 1 and last is not None:
            mv_dup, comments_dup, fmt_dup, gain_dup = last
            _write(top, name, mv_dup, comments_dup, fmt=fmt_dup, gain=gain_dup)
            continue
        study, ignored = _georgia_labels(case, rng)
        findings = [_GEORGIA_FINDING[c] for c in study if c != "NORM"]
        findings += [GEORGIA_IGNORED[c][1] for c in ignored]
        findings.sort(key=lambda x: x not in ("AF", "AFL", "SB", "STACH"))
        n = FS * 10 if rng.random() > 0.02 else FS * 12
        subject = _synth.new_subject(rng, mains_hz=60.0, difficulty=difficulty)
        mv = _common.synthesize(findings, subject, FS, n, rng)[0]
        codes = [GEORGIA_CODES[c] for c in study] + [GEORGIA_IGNORED[c][0] for c in ignored]
        codes = [codes[j] for j in rng.permutation(len(codes))]
        age = "NaN" if rng.random() < 0.02 else str(_common.age(rng, 61.0, 16.0, 18, 89))
        sex = "Male" if rng.random() < 0.54 else "Female"
        sep = "#" if old_style[i] else "# "
        comments = [
            f"{sep}Age: {age}",
            f"{sep}Sex: {sex}",
            f"{sep}Dx: " + ",".join(codes),
            f"{sep}Rx: Unknown",
            f"{sep}Hx: Unknown",
            f"{sep}Sx: Unknown",
        ]
        fmt, gain = ("16+24", "1000/mV") if old_style[i] else ("16x1+24", "1000.0(0)/mV")
        gap = None
        if i in gapped:
            start = int(rng.integers(0, n - 500))
            gap = (int(rng.integers(0, 12)), start, start + int(rng.integers(50, 500)))
        _write(top, name, mv, comments, fmt=fmt, gain=gain, gap=gap)
        if i == duplicate:
            last = (mv, comments, fmt, gain)


def _georgia_labels(case: str, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """(study diagnoses, ignored diagnoses) of one record, built around its main case."""
    study: list[str] = []
    ignored: list[str] = []
    if case == "OTHER":
        ignored.append(
            _common.pick(
                rng,
                [
                    ("AFL", 0.2),
                    ("IRBBB", 0.25),
                    ("LAnFB", 0.15),
                    ("LVH", 0.2),
                    ("NSSTTA", 0.1),
                    ("RBBB", 0.1),
                ],
            )
        )
        return study, ignored
    if case != "NORM":
        study.append(case)
        if rng.random() < 0.35:  # Georgia records often carry several diagnoses
            extra = _common.pick(
                rng,
                [
                    ("IAVB", 0.1),
                    ("LAD", 0.15),
                    ("TAb", 0.3),
                    ("TInv", 0.1),
                    ("LQT", 0.2),
                    ("PAC", 0.05),
                    ("SB", 0.05),
                    ("STach", 0.05),
                ],
            )
            if extra not in study and not (extra in _RHYTHMS and any(r in study for r in _RHYTHMS)):
                study.append(extra)
        if "AF" in study:
            study = [c for c in study if c not in ("IAVB", "PAC")]
        if rng.random() < 0.25:
            ignored.append(
                _common.pick(
                    rng,
                    [("IRBBB", 0.2), ("LVH", 0.3), ("NSSTTA", 0.3), ("RBBB", 0.1), ("QAb", 0.1)],
                )
            )
    sinus_normal_rate = not any(r in study for r in _RHYTHMS)
    if sinus_normal_rate and (case == "NORM" or rng.random() < 0.3):
        study.insert(0, "NORM")
    return study, ignored


def _write(
    top: Path,
    name: str,
    mv: np.ndarray,
    comments: list[str],
    *,
    fmt: str,
    gain: str,
    date_time: str = "",
    gap: tuple[int, int, int] | None = None,
) -> None:
    digital = _synth.to_digital(mv, 1000.0)  # (12, n): the .mat holds leads x samples
    if gap is not None:  # (lead, start, stop): samples the recorder lost
        lead, start, stop = gap
        digital[lead, start:stop] = MISSING
    _formats.write_mat_v4(top / f"{name}.mat", digital)
    sig = _formats.SignalFile(f"{name}.mat", fmt, gain, LEADS, digital.T)
    text = _formats.header_text(name, FS, [sig], comments, date_time=date_time)
    (top / f"{name}.hea").write_text(text, encoding="ascii")
