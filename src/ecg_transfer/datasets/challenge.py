"""CPSC2018 and Georgia, as released for the PhysioNet/CinC Challenge 2020/2021.

Each record is a `.hea` header plus a MATLAB v4 `.mat` whose `val` holds int16 samples (leads x
samples) at 500 Hz; the diagnoses are the `#Dx:` comment. The early CPSC2018 release writes them
as text (`RBBB`, `Normal`, `PVC`), later releases as SNOMED-CT codes; both are accepted.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .common import Collector, RecordSet, Settings, lead_indices
from .wfdb_io import Header, read_header, read_signals

# (class, SNOMED-CT code) in the paper's label-column order.
CPSC2018_CLASSES = (
    ("NORM", "426783006"),
    ("AF", "164889003"),
    ("IAVB", "270492004"),
    ("LBBB", "164909002"),
    ("RBBB", "59118001"),
    ("PAC", "284470004"),
    ("VEB", "164884008"),
    ("STD", "429622005"),
    ("STE", "164931005"),
)
GEORGIA_CLASSES = (
    ("NORM", "426783006"),
    ("AF", "164889003"),
    ("IAVB", "270492004"),
    ("SB", "426177001"),
    ("LAD", "39732003"),
    ("STach", "427084000"),
    ("TAb", "164934002"),
    ("TInv", "59931005"),
    ("LQT", "111975006"),
    ("PAC", "284470004"),
)

# The early CPSC2018 release's text diagnoses -> SNOMED-CT (matched case-insensitively).
CPSC2018_TEXT_CODES = {
    "normal": "426783006",
    "af": "164889003",
    "i-avb": "270492004",
    "lbbb": "164909002",
    "rbbb": "59118001",
    "pac": "284470004",
    "pvc": "164884008",
    "std": "429622005",
    "ste": "164931005",
}

_CPSC2018_TEXT_SPELLING = "Normal, AF, I-AVB, LBBB, RBBB, PAC, PVC, STD, STE"

_DATASETS = {
    # name: (classes, record-name pattern, whether codes outside the classes are an error)
    # CPSC2018 has exactly the nine classes, and the paper's code failed on any other code, so
    # one is an error here too; Georgia has ~70 diagnoses and the paper kept ten, ignoring the
    # rest (a record may then have no positive class).
    "cpsc2018": (CPSC2018_CLASSES, re.compile(r"^A\d+$"), True),
    "georgia": (GEORGIA_CLASSES, re.compile(r"^E\d+$"), False),
}


def read(root: Path, settings: Settings) -> RecordSet:
    """Read every `*.hea` under `root` (sorted by record name, not file-system order)."""
    classes, pattern, strict = _DATASETS[settings.dataset]
    headers = _find_headers(root, settings.dataset, pattern)
    column = {code: i for i, (_, code) in enumerate(classes)}
    collector = Collector(settings, len(headers), [name for name, _ in classes])
    for record_id, path in headers:
        header = read_header(path)
        label = np.zeros(len(classes), np.uint8)
        for code in diagnosis_codes(header, settings.dataset):
            if code in column:
                label[column[code]] = 1
            elif strict:
                raise ValueError(
                    f"{path}: field Dx has code {code}, which is none of the {settings.dataset} "
                    f"classes {[f'{n}={c}' for n, c in classes]}"
                )
        leads = lead_indices(header.sig_names, path)
        signal = read_signals(header, leads)
        collector.add(record_id, signal, header.fs, path, label, fill_missing=True)
    return collector.finish()


def diagnosis_codes(header: Header, dataset: str) -> list[str]:
    """The SNOMED-CT codes of the `#Dx:` comment; CPSC2018's text labels are translated."""
    lines = [c for c in header.comments if c.lower().startswith("dx:")]
    if len(lines) != 1:
        raise ValueError(
            f"{header.path}: {len(lines)} '#Dx:' comment lines; expected exactly one "
            f"with comma-separated diagnoses"
        )
    tokens = [t.strip() for t in lines[0][3:].split(",") if t.strip()]
    if not tokens:
        raise ValueError(f"{header.path}: field Dx is empty; expected at least one diagnosis")
    codes = []
    for token in tokens:
        if token.isdigit():
            codes.append(token)
        elif dataset == "cpsc2018" and token.lower() in CPSC2018_TEXT_CODES:
            codes.append(CPSC2018_TEXT_CODES[token.lower()])
        else:
            expected = "SNOMED-CT codes"
            if dataset == "cpsc2018":
                expected = f"a SNOMED-CT code or one of {_CPSC2018_TEXT_SPELLING}"
            raise ValueError(
                f"{header.path}: field Dx has unknown label {token!r}; expected {expected}"
            )
    return codes


def _find_headers(root: Path, dataset: str, pattern: re.Pattern[str]) -> list[tuple[str, Path]]:
    found: dict[str, Path] = {}
    foreign: list[Path] = []
    for path in root.rglob("*.hea"):
        if not pattern.match(path.stem):
            foreign.append(path)
        elif path.stem in found:
            raise ValueError(f"record {path.stem} exists twice: {found[path.stem]} and {path}")
        else:
            found[path.stem] = path
    if foreign:
        # Mixing datasets under one root would silently merge them; refuse instead.
        raise ValueError(
            f"{root}: {len(foreign)} header(s) whose names are not {dataset} records "
            f"(pattern {pattern.pattern}), e.g. {sorted(foreign)[:3]}; give {dataset} its own root"
        )
    if not found:
        raise FileNotFoundError(f"{root}: no {dataset} headers (*.hea) found in it or below")
    return sorted(found.items())
