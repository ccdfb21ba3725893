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

from .errors import BadRecordError, as_bad_record
from .indexing import IndexBuilder
from .wfdb_io import index_checks, read_header

CLASSES = ("NORM", "MI")
_REASON_CLASS = {"healthy control": "NORM", "myocardial infarction": "MI"}
_REASON = "reason for admission:"
_NO_REASON = {"", "n/a"}
_RECORD_ID = re.compile(r"^(patient\d+)/([^/\s]+)$")


def classes(dataset: str) -> list[str]:
    return list(CLASSES)


def file_leads(dataset: str) -> None:
    """None: PTB's headers name the leads (i, ii, iii, avr, avl, avf, v1-v6, then
    the Frank leads); `read_record` puts them in STANDARD_LEADS order, the files' own order."""
    return None


def index(root: Path, builder: IndexBuilder) -> None:
    """One row per record of PTB's `RECORDS` list (or, without one, every patient*/*.hea).

    record_ids are "patientNNN/sXXXX_re"; patient_ids the patient folder. Records without a reason
    for admission are dropped, with that reason, as the paper did (549 -> 522). A listed record
    whose header is missing is a bad record; so is a line of `RECORDS` that is not UTF-8 text
    (record id "RECORDS line N"), while the list's other lines are read as usual.
    """
    settings = builder.settings
    records, unreadable = _find_records(root)
    for error in unreadable:
        builder.bad(error)
    for record_id, header_path in records:
        patient = record_id.split("/")[0]
        try:
            if not header_path.is_file():
                raise FileNotFoundError(f"RECORDS lists {record_id}, but the file is missing")
            header = read_header(header_path)
            reason = _reason_for_admission(header.comments)
            if reason is None or reason.lower() in _NO_REASON:
                builder.drop(
                    record_id,
                    header_path,
                    f"no reason for admission ({reason or 'missing'})",
                    patient_id=patient,
                )
                continue
            label = np.zeros(len(CLASSES), np.uint8)
            cls = _REASON_CLASS.get(reason.lower())
            if cls is not None:
                label[CLASSES.index(cls)] = 1
            content = index_checks(header, header_path, settings.protocol.hash_records)
        except (ValueError, OSError) as exc:
            builder.bad(as_bad_record(record_id, header_path, exc))
            continue
        builder.add(
            record_id, header_path, label, header.fs, header.sig_len,
            patient_id=patient, content_hash=content,
        )


def _reason_for_admission(comments: tuple[str, ...]) -> str | None:
    for comment in comments:
        if comment.lower().startswith(_REASON):
            return comment[len(_REASON) :].strip()
    return None


def _find_records(root: Path) -> tuple[list[tuple[str, Path]], list[BadRecordError]]:
    """(record id, header) sorted by id, and a BadRecordError for each RECORDS line that is not
    UTF-8 text."""
    lists = [p for p in sorted(root.rglob("RECORDS")) if _looks_like_ptb_list(p)]
    if len(lists) > 1:
        raise ValueError(f"{root}: {len(lists)} PTB RECORDS files {lists}; expected one")
    found: dict[str, Path] = {}
    unreadable: list[BadRecordError] = []
    if lists:
        base = lists[0].parent
        for number, line in _lines(lists[0]):
            if isinstance(line, UnicodeDecodeError):
                unreadable.append(BadRecordError(
                    f"RECORDS line {number}", lists[0],
                    f"line {number} is not UTF-8 text ({line.reason} at byte {line.start} of the "
                    f"line); expected 'patientNNN/record'",
                ))
                continue
            name = line.strip()
            if not name:
                continue
            if not _RECORD_ID.match(name):
                raise ValueError(
                    f"{lists[0]}, line {number}: {name!r}; expected 'patientNNN/record'"
                )
            found[name] = base / f"{name}.hea"  # a missing one is a bad record, see index()
    else:
        for path in root.rglob("*.hea"):
            if re.fullmatch(r"patient\d+", path.parent.name):
                found[f"{path.parent.name}/{path.stem}"] = path
    if not found:
        raise FileNotFoundError(
            f"{root}: no PTB records found (neither a RECORDS list nor patientNNN/*.hea below it)"
        )
    return sorted(found.items()), unreadable


def _lines(path: Path) -> list[tuple[int, str | UnicodeDecodeError]]:
    """(line number, text) of a text file decoded line by line, so that one line that is not
    UTF-8 (a damaged byte) costs that line, not the whole list; such a line comes as its
    UnicodeDecodeError."""
    out: list[tuple[int, str | UnicodeDecodeError]] = []
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            out.append((number, raw.decode("utf-8")))
        except UnicodeDecodeError as exc:
            out.append((number, exc))
    return out


def _looks_like_ptb_list(path: Path) -> bool:
    """Whether the first non-blank line that is text names a PTB record."""
    for _, line in _lines(path):
        if isinstance(line, str) and line.strip():
            return bool(_RECORD_ID.match(line.strip()))
    return False
