"""CPSC2018 and Georgia, as released for the PhysioNet/CinC Challenge 2020/2021.

Each record is a `.hea` header plus a MATLAB v4 `.mat` whose `val` holds int16 samples (leads x
samples) at 500 Hz; the diagnoses are the `#Dx:` comment. The early CPSC2018 release writes them
as text (`RBBB`, `Normal`, `PVC`), later releases as SNOMED-CT codes; both are accepted.
Records are read by `wfdb_io.read_record` (the same as PTB-XL and PTB).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .errors import BadRecordError, as_bad_record
from .indexing import IndexBuilder
from .settings import canonical_codes
from .wfdb_io import Header, dx_tokens, index_checks, read_header

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
    # name: (classes, record-name pattern). A valid code outside the class list is ignored, as
    # the paper does (Georgia has ~70 diagnoses, the paper kept ten; a record may then have no
    # positive class); only a label that cannot be read as a diagnosis is a bad record.
    "cpsc2018": (CPSC2018_CLASSES, re.compile(r"^A\d+$")),
    "georgia": (GEORGIA_CLASSES, re.compile(r"^E\d+$")),
}


def classes(dataset: str) -> list[str]:
    return [name for name, _ in _DATASETS[dataset][0]]


def file_leads(dataset: str) -> None:
    """None: every header names its own leads, which `read_record` puts in STANDARD_LEADS order
    (the order the Challenge's files use, so the paper's `wfdb.rdsamp` order too)."""
    return None


def index(root: Path, builder: IndexBuilder) -> None:
    """One row per `*.hea` under `root` (a `.mat` without its header is a bad record)."""
    settings = builder.settings
    class_codes, pattern = _DATASETS[settings.dataset]
    headers, orphans = _find_headers(root, settings.dataset, pattern)
    for record_id, mat in orphans:
        builder.bad(BadRecordError(record_id, mat, f"no header {record_id}.hea beside it"))
    column = {code: i for i, (_, code) in enumerate(class_codes)}
    for record_id, path in headers:
        try:
            header = read_header(path)
            label = np.zeros(len(class_codes), np.uint8)
            codes = canonical_codes(diagnosis_codes(header, settings.dataset), settings)
            for code in codes:
                if code in column:
                    label[column[code]] = 1
            content = index_checks(header, path, settings.protocol.hash_records)
        except (ValueError, OSError) as exc:
            builder.bad(as_bad_record(record_id, path, exc))
            continue
        builder.add(record_id, path, label, header.fs, header.sig_len, content_hash=content)


def diagnosis_codes(header: Header, dataset: str) -> list[str]:
    """The SNOMED-CT codes of the `#Dx:` comment; CPSC2018's text labels are translated."""
    codes = []
    for token in dx_tokens(header):
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


def _find_headers(
    root: Path, dataset: str, pattern: re.Pattern[str]
) -> tuple[list[tuple[str, Path]], list[tuple[str, Path]]]:
    """(record id, header) sorted by id, and (record id, .mat) of signal files without header."""
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
    orphans = sorted(
        (mat.stem, mat)
        for mat in root.rglob("*.mat")
        if pattern.match(mat.stem) and not mat.with_suffix(".hea").is_file()
    )
    if not found and not orphans:
        raise FileNotFoundError(f"{root}: no {dataset} headers (*.hea) found in it or below")
    return sorted(found.items()), orphans
