"""The CODE test set of Ribeiro et al. (2020) as its `data.zip` ships it.

`data/ecg_tracings.hdf5` holds one float32 dataset `tracings` of shape (N, 4096, 12): 400 Hz,
10 s (4000 samples, padded with 48 zeros at each end) or 7 s (2800 samples, 648 zeros each end),
leads in the order DI, DII, DIII, AVL, AVF, AVR, V1..V6 (not the standard aVR, aVL, aVF order).
The README of antonior92/automatic-ecg-diagnosis gives the scale as "1e-4 V" and also says to
multiply by 1000 to get volts, which cannot both hold; its model takes values of about 1 per
millivolt, so the demo stores millivolts. `data/annotations/gold_standard.csv` has the six
0/1 columns 1dAVb, RBBB, LBBB, SB, AF, ST (ST = sinus tachycardia here, not an ST change), one
row per exam in tracing order; `data/attributes.csv` has age and sex.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from . import _common, _formats, _synth

TOP = "data"
FS = 400
N_SAMPLES = 4096
CLASSES = ("1dAVb", "RBBB", "LBBB", "SB", "AF", "ST")
# Storage order of the leads, as indices into _synth.LEADS (I II III aVR aVL aVF V1..V6).
LEAD_ORDER = (0, 1, 2, 4, 5, 3, 6, 7, 8, 9, 10, 11)
LEAD_NAMES = ("DI", "DII", "DIII", "AVL", "AVF", "AVR", "V1", "V2", "V3", "V4", "V5", "V6")
_FINDING = {"1dAVb": "IAVB", "RBBB": "RBBB", "LBBB": "LBBB", "SB": "SB", "AF": "AF", "ST": "STACH"}

# Main case per exam. The real test set has 3.4/4.1/3.6/1.9/1.6/4.5 % of the six classes and
# 82 % with none; a demo of ~150 exams would then hold two or three AF exams, so the classes are
# about doubled. "NONE" exams may still show abnormalities outside the six classes.
CASES = {
    "1dAVb": 0.07,
    "RBBB": 0.08,
    "LBBB": 0.07,
    "SB": 0.05,
    "AF": 0.045,
    "ST": 0.08,
    "NONE": 0.605,
}
_OTHER = (("LAD", 0.3), ("PVC", 0.2), ("PAC", 0.15), ("TAB", 0.15), ("LVH", 0.1), ("IRBBB", 0.1))


def build(root: Path, n_records: int, rng: np.random.Generator, difficulty: float = 1.0) -> None:
    top = root / TOP
    (top / "annotations").mkdir(parents=True)
    cases = _common.quota(rng, n_records, CASES)
    tracings = np.zeros((n_records, N_SAMPLES, 12), np.float32)
    labels, attributes = [], []
    for i, case in enumerate(cases):
        findings = [] if case == "NONE" else [_FINDING[case]]
        if case != "NONE" and rng.random() < 0.1:  # ~1.5 % of exams have two of the classes
            second = str(rng.choice(["1dAVb", "RBBB", "LBBB", "ST"]))
            exclusive = {
                frozenset(("RBBB", "LBBB")),
                frozenset(("AF", "1dAVb")),
                frozenset(("SB", "ST")),
                frozenset(("AF", "ST")),
            }
            if second != case and frozenset((case, second)) not in exclusive:
                findings.append(_FINDING[second])
        if case == "NONE" and rng.random() < 0.2:
            findings.append(_common.pick(rng, _OTHER))
        findings.sort(key=lambda x: x not in ("AF", "SB", "STACH"))
        seconds = 7 if rng.random() < 0.1 else 10
        n = seconds * FS
        subject = _synth.new_subject(rng, mains_hz=60.0, difficulty=difficulty)
        mv = _common.synthesize(findings, subject, FS, n, rng)[0]
        pad = (N_SAMPLES - n) // 2
        # Whole microvolts, as an ADC delivers them; also makes the float32 values immune to
        # last-bit differences of exp/sin between CPUs, which could otherwise flip a rounding.
        microvolts = np.rint(mv[list(LEAD_ORDER)].T * 1000.0)
        tracings[i, pad : pad + n] = microvolts / 1000.0
        present = {c for c, f in _FINDING.items() if f in findings}
        labels.append([int(c in present) for c in CLASSES])
        attributes.append(
            [_common.age(rng, 55.0, 16.0, 17, 97), "F" if rng.random() < 0.61 else "M"]
        )
    with h5py.File(
        top / "ecg_tracings.hdf5", "w", libver=("earliest", "v110"), track_order=False
    ) as f:
        f.create_dataset("tracings", data=tracings, track_times=False)
    (top / "annotations" / "gold_standard.csv").write_text(
        _formats.csv_text(CLASSES, labels), encoding="ascii"
    )
    (top / "attributes.csv").write_text(
        _formats.csv_text(("age", "sex"), attributes), encoding="ascii"
    )
