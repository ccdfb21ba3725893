"""The PTB Diagnostic ECG Database 1.0.0: 1000 Hz records, 12 leads plus Frank leads.

Each record is one header over two signal files (`.dat`: the 12 standard leads, `.xyz`: Frank
leads vx, vy, vz), gain 2000 with no unit (WFDB then assumes mV), CRLF line ends, and the
diagnosis only in the free-text comment `Reason for admission:`. Patients have one to four
records; all of a patient's records share the patient's body and diagnosis, which is why
splitting PTB by record rather than by patient leaks.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np

from . import _common, _formats, _synth

TOP = "ptb-diagnostic-ecg-database-1.0.0"
FS = 1000
LEADS = ("i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6")
FRANK = ("vx", "vy", "vz")

# Reason for admission -> share of records (real PTB: ~67 % MI, ~15 % healthy controls).
REASONS = {
    "Myocardial infarction": 0.55,
    "Healthy control": 0.18,
    "Cardiomyopathy": 0.05,
    "Bundle branch block": 0.04,
    "Dysrhythmia": 0.04,
    "Myocardial hypertrophy": 0.03,
    "Valvular heart disease": 0.02,
    "Myocarditis": 0.02,
    "Stable angina": 0.02,
    "n/a": 0.05,
}
# (localization as PTB spells it, region of the heart model)
_LOCALIZATIONS = (
    ("anterior", "anterior"),
    ("antero-septal", "septal"),
    ("antero-lateral", "anterolateral"),
    ("inferior", "inferior"),
    ("infero-latera", "inferolateral"),
    ("lateral", "lateral"),
    ("infero-poster-lateral", "inferolateral"),
    ("posterior", "posterior"),
)


def build(root: Path, n_records: int, rng: np.random.Generator, difficulty: float = 1.0) -> None:
    top = root / TOP
    top.mkdir()
    reasons = _common.quota(
        rng, n_records, REASONS, required=("Myocardial infarction", "Healthy control")
    )
    patients = _group(reasons, rng)
    records, controls = [], []
    number = 9
    start = datetime.date(1990, 1, 1)
    for p, (reason, count) in enumerate(patients, start=1):
        subject = _synth.new_subject(rng, mains_hz=50.0, difficulty=difficulty)
        plan = _plan(reason, rng)
        age = "n/a" if rng.random() < 0.02 else str(_common.age(rng, 57.0, 12.0, 17, 87))
        sex = "male" if rng.random() < 0.73 else "female"
        day = start + datetime.timedelta(days=int(rng.integers(0, 3650)))
        folder = top / f"patient{p:03d}"
        folder.mkdir()
        for _ in range(count):
            number += int(rng.integers(1, 5))
            name = f"s{number:04d}" + str(rng.choice(["_re", "_re", "_re", "lre", "rem"]))
            n = int(rng.uniform(12.0, 32.0) * FS)
            leads, xyz = _common.synthesize(
                plan["findings"], subject, FS, n, rng, regions=plan["regions"], frank=True
            )
            if xyz is None:
                raise RuntimeError("the ECG model returned no Frank leads for a PTB record")
            _write(folder, name, leads, xyz, _comments(reason, plan, age, sex, day, rng))
            records.append(f"patient{p:03d}/{name}")
            if reason == "Healthy control":
                controls.append(records[-1])
            day += datetime.timedelta(days=int(rng.integers(1, 20)))
    (top / "RECORDS").write_text("".join(r + "\n" for r in records), encoding="ascii")
    (top / "CONTROLS").write_text("".join(r + "\n" for r in controls), encoding="ascii")


def _group(reasons: list[str], rng: np.random.Generator) -> list[tuple[str, int]]:
    """Cut each reason's records into patients of 1-4 records; patients in random order.

    The first infarct patient always gets two records when there are two, so that even a tiny
    mirror has the repeated patients that make record-level splits of PTB leak.
    """
    sizes = {
        "Myocardial infarction": ([1, 2, 3, 4], [0.35, 0.3, 0.2, 0.15]),
        "Healthy control": ([1, 2], [0.75, 0.25]),
    }
    patients = []
    for reason in REASONS:
        left = reasons.count(reason)
        options, p = sizes.get(reason, ([1, 2], [0.8, 0.2]))
        while left > 0:
            k = min(int(rng.choice(options, p=p)), left)
            if reason == "Myocardial infarction" and left == reasons.count(reason):
                k = max(k, min(2, left))
            patients.append((reason, k))
            left -= k
    return [patients[i] for i in rng.permutation(len(patients))]


def _plan(reason: str, rng: np.random.Generator) -> dict:
    """The findings a patient's records show, and the infarct's location if any."""
    findings: list[str] = []
    regions: dict[str, str] = {}
    localization = "no"
    if reason == "n/a":  # unlabelled: mostly infarcts and normals, as in the real database
        reason = _common.pick(rng, [("Myocardial infarction", 0.6), ("Healthy control", 0.4)])
    if reason == "Myocardial infarction":
        localization, region = _LOCALIZATIONS[int(rng.integers(len(_LOCALIZATIONS)))]
        kind = "STEMI" if rng.random() < 0.6 else "MI"
        findings.append(kind)
        regions[kind] = region
        if rng.random() < 0.1:
            findings.insert(0, "AF")
    elif reason == "Cardiomyopathy":
        findings += [_common.pick(rng, [("LOWV", 0.4), ("IVCD", 0.3), ("LBBB", 0.3)]), "TAB"]
    elif reason == "Bundle branch block":
        findings.append(_common.pick(rng, [("RBBB", 0.6), ("LBBB", 0.4)]))
    elif reason == "Dysrhythmia":
        findings.append(_common.pick(rng, [("AF", 0.4), ("PVC", 0.3), ("PAC", 0.2), ("AFL", 0.1)]))
    elif reason == "Myocardial hypertrophy":
        findings.append("LVH")
    elif reason == "Valvular heart disease":
        findings += [_common.pick(rng, [("LVH", 0.5), ("LAE", 0.3), ("AF", 0.2)])]
    elif reason == "Myocarditis":
        findings.append(_common.pick(rng, [("STE", 0.5), ("TINV", 0.5)]))
    elif reason == "Stable angina":
        findings.append("NSTT")
    return {"findings": findings, "regions": regions, "localization": localization}


def _comments(
    reason: str, plan: dict, age: str, sex: str, day: datetime.date, rng: np.random.Generator
) -> list[str]:
    mi = reason == "Myocardial infarction"
    acute = mi and "STEMI" in plan["findings"]
    lines = [
        f"# age: {age}",
        f"# sex: {sex}",
        f"# ECG date: {day.strftime('%d/%m/%Y')}",
        "",
        "# Diagnose:",
        f"# Reason for admission: {reason}",
        f"# Acute infarction (localization): {plan['localization'] if acute else 'no'}",
        f"# Former infarction (localization): {plan['localization'] if mi and not acute else 'no'}",
        f"# Additional diagnoses: {'n/a' if rng.random() < 0.7 else 'Diabetes mellitus'}",
        f"# Smoker: {rng.choice(['yes', 'no', 'unknown'])!s}",
        f"# Number of coronary vessels involved: {int(rng.integers(1, 4)) if mi else 'n/a'}",
        f"# Infarction date (acute): {day.strftime('%d-%b-%y') if acute else 'n/a'}",
        "",
        "# Hemodynamics:",
        "# Catheterization date: n/a",
        "# Ventriculography: n/a",
        "# Echocardiography: n/a",
        "",
        "# Therapy:",
        "# Infarction date: n/a",
        "# Medication pre admission: n/a",
    ]
    return lines


def _write(
    folder: Path, name: str, leads: np.ndarray, xyz: np.ndarray, comments: list[str]
) -> None:
    d_leads = _synth.to_digital(leads.T, 2000.0)
    d_xyz = _synth.to_digital(xyz.T, 2000.0)
    _formats.write_dat(folder / f"{name}.dat", d_leads)
    _formats.write_dat(folder / f"{name}.xyz", d_xyz)
    files = [
        _formats.SignalFile(f"{name}.dat", "16", "2000", LEADS, d_leads),
        _formats.SignalFile(f"{name}.xyz", "16", "2000", FRANK, d_xyz),
    ]
    text = _formats.header_text(
        name, FS, files, comments, newline="\r\n", blank_before_comments=True
    )
    (folder / f"{name}.hea").write_bytes(text.encode("ascii"))
