"""The PTB Diagnostic ECG Database (Bousseljot et al. 1995), as NORM vs MI.

549 records of 290 patients, one folder per patient, 15 signals at 1000 Hz: the 12 standard leads
in the `.dat` file and Frank's vx, vy, vz in the `.xyz` file (not read). The label is the header
comment `Reason for admission:`; the paper kept only records that have one, as NORM ("Healthy
control"), MI ("Myocardial infarction") or neither (every other reason: an all-zero row).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .common import Collector, RecordSet, Settings, lead_indices
from .wfdb_io import read_header, read_signals

CLASSES = ("NORM", "MI")
_REASON_CLASS = {"healthy control": "NORM", "myocardial infarction": "MI"}
_REASON = "reason for admission:"
_NO_REASON = {"", "n/a"}
_RECORD_ID = re.compile(r"^(patient\d+)/([^/\s]+)$")


def read(root: Path, settings: Settings) -> RecordSet:
    """Read the records named in PTB's `RECORDS` list (or, without one, every patient*/*.hea).

    record_ids are "patientNNN/sXXXX_re"; patient_ids the patient folder. Records without a reason
    for admission are dropped, with that reason, as the paper did (549 -> 522).
    """
    records = _find_records(root)
    collector = Collector(settings, len(records), CLASSES, patients=True)
    for record_id, header_path in records:
        header = read_header(header_path)
        reason = _reason_for_admission(header.comments)
        if reason is None or reason.lower() in _NO_REASON:
            collector.drop(record_id, f"no reason for admission ({reason or 'missing'})")
            continue
        label = np.zeros(len(CLASSES), np.uint8)
        cls = _REASON_CLASS.get(reason.lower())
        if cls is not None:
            label[CLASSES.index(cls)] = 1
        signal = read_signals(header, lead_indices(header.sig_names, header_path))
        collector.add(
            record_id, signal, header.fs, header_path, label, patient_id=record_id.split("/")[0]
        )
    return collector.finish()


def _reason_for_admission(comments: tuple[str, ...]) -> str | None:
    for comment in comments:
        if comment.lower().startswith(_REASON):
            return comment[len(_REASON) :].strip()
    return None


def _find_records(root: Path) -> list[tuple[str, Path]]:
    lists = [p for p in sorted(root.rglob("RECORDS")) if _looks_like_ptb_list(p)]
    if len(lists) > 1:
        raise ValueError(f"{root}: {len(lists)} PTB RECORDS files {lists}; expected one")
    found: dict[str, Path] = {}
    if lists:
        base = lists[0].parent
        for number, line in enumerate(lists[0].read_text().splitlines(), start=1):
            name = line.strip()
            if not name:
                continue
            if not _RECORD_ID.match(name):
                raise ValueError(
                    f"{lists[0]}, line {number}: {name!r}; expected 'patientNNN/record'"
                )
            path = base / f"{name}.hea"
            if not path.is_file():
                raise FileNotFoundError(
                    f"{lists[0]}, line {number}: lists {name}, but {path} is missing"
                )
            found[name] = path
    else:
        for path in root.rglob("*.hea"):
            if re.fullmatch(r"patient\d+", path.parent.name):
                found[f"{path.parent.name}/{path.stem}"] = path
    if not found:
        raise FileNotFoundError(
            f"{root}: no PTB records found (neither a RECORDS list nor patientNNN/*.hea below it)"
        )
    return sorted(found.items())


def _looks_like_ptb_list(path: Path) -> bool:
    for line in path.read_text().splitlines():
        if line.strip():
            return bool(_RECORD_ID.match(line.strip()))
    return False
