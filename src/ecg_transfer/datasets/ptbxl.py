"""PTB-XL (Wagner et al. 2020), labelled with its five diagnostic superclasses.

`ptbxl_database.csv` lists the records (`scp_codes` is a Python dict literal of SCP code ->
likelihood); `scp_statements.csv` maps each diagnostic SCP code to its superclass. A record is
positive for the superclass of every diagnostic code it carries, whatever the likelihood, as in
PTB-XL's own example code. A record with no diagnostic code keeps an all-zero label row.
"""

from __future__ import annotations

import ast
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from .errors import BadRecordError, as_bad_record
from .indexing import IndexBuilder
from .wfdb_io import index_checks, read_header

CLASSES = ("NORM", "MI", "STTC", "HYP", "CD")

_DATABASE = "ptbxl_database.csv"
_STATEMENTS = "scp_statements.csv"
_NATIVE = {100.0: "filename_lr", 500.0: "filename_hr"}
_COLUMNS = ("ecg_id", "patient_id", "scp_codes", "strat_fold", *_NATIVE.values())


def classes(dataset: str) -> list[str]:
    return list(CLASSES)


def file_leads(dataset: str) -> None:
    """None: PTB-XL's headers name the leads (I, II, III, AVR, AVL, AVF, V1-V6); `read_record`
    puts them in STANDARD_LEADS order, the files' own order."""
    return None


def index(root: Path, builder: IndexBuilder) -> None:
    """One row per record of `ptbxl_database.csv`; record_ids are the zero-padded ecg_id
    ("00001"), the same whichever rate's files are read.

    A listed record whose files are missing (a label row without a record) is a bad record, not a
    silent gap; so is one whose `filename_lr`/`filename_hr` leaves the dataset's folder (an
    absolute path, or one with '..'), which would read some other file as this record.
    """
    settings = builder.settings
    base = _find_dataset_dir(root)
    database = _read_database(base / _DATABASE)
    superclass = _read_superclasses(base / _STATEMENTS)
    native_fs = settings.protocol.choose_native_fs(tuple(_NATIVE), settings.fs, base / _DATABASE)
    file_column = _NATIVE[native_fs]
    column = {name: i for i, name in enumerate(CLASSES)}
    for row in database.itertuples(index=False):
        record_id = f"{row.ecg_id:05d}"
        where = f"{base / _DATABASE}, ecg_id {row.ecg_id}"
        relative = str(getattr(row, file_column))
        header_path = base / f"{relative}.hea"
        try:
            if PurePosixPath(relative).is_absolute() or ".." in PurePosixPath(relative).parts:
                raise BadRecordError(
                    record_id, base / _DATABASE,
                    f"ecg_id {row.ecg_id}: {file_column} {relative!r} points outside {base}; "
                    f"expected a path relative to it without '..', such as "
                    f"'records100/00000/00001_lr'",
                )
            label = np.zeros(len(CLASSES), np.uint8)
            for code in _scp_codes(row.scp_codes, where):
                if code in superclass:
                    label[column[superclass[code]]] = 1
            if not header_path.is_file():
                raise FileNotFoundError(
                    f"{where}: {file_column} points to {header_path}, which is missing"
                )
            header = read_header(header_path)
            if header.fs != native_fs:
                raise ValueError(f"sampling rate {header.fs:g} Hz; expected {native_fs:g}")
            content = index_checks(header, header_path, settings.protocol.hash_records)
        except (ValueError, OSError) as exc:
            builder.bad(as_bad_record(record_id, header_path, exc))
            continue
        builder.add(
            record_id,
            header_path,
            label,
            native_fs,
            header.sig_len,
            patient_id=str(int(row.patient_id)),
            fold=int(row.strat_fold),
            content_hash=content,
        )


def _find_dataset_dir(root: Path) -> Path:
    hits = sorted(root.rglob(_DATABASE))
    if not hits:
        raise FileNotFoundError(f"{root}: no {_DATABASE} found in it or below")
    if len(hits) > 1:
        raise ValueError(f"{root}: {len(hits)} copies of {_DATABASE}: {hits}; expected one")
    return hits[0].parent


def _read_database(path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ValueError(f"{path}: unreadable CSV ({exc})") from exc
    missing = [c for c in _COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected PTB-XL's {list(_COLUMNS)}")
    for name in ("ecg_id", "patient_id", "strat_fold"):
        if table[name].isna().any():
            ids = table.loc[table[name].isna(), "ecg_id"].tolist()[:5]
            raise ValueError(f"{path}: column {name} is empty for ecg_id(s) {ids}")
    table = table.astype({"ecg_id": "int64"})
    if table["ecg_id"].duplicated().any():
        repeated = table.loc[table["ecg_id"].duplicated(), "ecg_id"].tolist()[:5]
        raise ValueError(f"{path}: duplicated ecg_id(s) {repeated}")
    return table.sort_values("ecg_id", kind="stable").reset_index(drop=True)


def _read_superclasses(path: Path) -> dict[str, str]:
    """Diagnostic SCP code -> superclass, from the rows with diagnostic == 1."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: missing; PTB-XL's {_STATEMENTS} must sit next to {_DATABASE}"
        )
    try:
        table = pd.read_csv(path, index_col=0)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ValueError(f"{path}: unreadable CSV ({exc})") from exc
    for name in ("diagnostic", "diagnostic_class"):
        if name not in table.columns:
            raise ValueError(f"{path}: missing column {name!r}")
    diagnostic = table[table["diagnostic"] == 1]
    unknown = sorted(set(diagnostic["diagnostic_class"]) - set(CLASSES))
    if unknown:
        raise ValueError(
            f"{path}: diagnostic_class value(s) {unknown}; expected only {list(CLASSES)}"
        )
    return diagnostic["diagnostic_class"].to_dict()


def _scp_codes(text: object, where: str) -> list[str]:
    try:
        codes = ast.literal_eval(text) if isinstance(text, str) else None
    except (ValueError, SyntaxError):
        codes = None
    if not isinstance(codes, dict):
        # A malformed value in the user's CSV, not a programming error: ValueError.
        raise ValueError(f"{where}: scp_codes {text!r}; expected a dict such as {{'NORM': 100.0}}")
    return [str(code) for code in codes]
