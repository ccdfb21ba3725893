"""Readers for the study's five ECG datasets and for a folder of records of the user's own,
behind three functions: `index`, `read`, `load`.

Each reader finds its dataset inside the directory an official archive was extracted into (or any
folder above it: records by searching for headers recursively, label files by name), so that
releases and mirrors with different layouts work. Reading happens in two phases:

1. `index(name, root, ...)`: one row per record from headers and label files only (record id,
   file, labels, patient, fold, native rate and length, content hash, and the reason for every
   record the protocol drops). Cheap and serial; it decides the record list and the split.
2. `read(index)`: reads and preprocesses the signals of any subset of index rows, one record at
   a time, so shard jobs can fan out over parts of a dataset.

`load(name, root, ...)` is both phases over the whole dataset, returning a `RecordSet`: (N, 12,
T) float32 signals and a multi-hot label matrix. The leads are in STANDARD_LEADS order, except
under protocol "paper" for Ribeiro, whose HDF5 columns the paper fed as stored; `leads` (of the
index's settings, and of the RecordSet) always says which order it is.

A dataset of the user's own (`records=`, the config's `datasets.<name>.records`) is a folder
of WFDB or Challenge records labelled by a CSV or by the headers' `#Dx:` codes, read by the one
generic reader (`records`); any safe name that is not a built-in one may name it.

`expected_count_warnings` compares a paper-protocol run's record counts with the paper's own.

The modules, each a reader on top of the shared parts or one of those parts:

- readers: `ptbxl`, `challenge` (CPSC2018, Georgia), `ptb`, `ribeiro`, `records` (a folder of
  the user's); `wfdb_io` reads WFDB and Challenge files for all but Ribeiro;
- `names`: the built-in names, and which names a user's dataset may have;
- `errors`: `BadRecordError` and the on_bad_record policy;
- `leads`: the standard lead order and the files' spellings of it;
- `signals`: min-max scalings and the filling of missing samples;
- `protocols`: the `paper` and `sound` protocols (`PROTOCOLS`);
- `settings`: a validated request (dataset, protocol, rate, length, scaling, lead order);
- `hashing`: content hashes of records' raw bytes;
- `indexing`: phase 1, `IndexBuilder` and `DatasetIndex`;
- `preprocessing`: phase 2, one record through the protocol;
- `recordset`: `RecordSet`, what `load` returns;
- `counts`: the record counts the paper's notebooks printed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from types import ModuleType

import numpy as np

from . import challenge, ptb, ptbxl, ribeiro
from .counts import PAPER_COUNTS, PaperCounts, expected_count_warnings
from .errors import BadRecordError, as_bad_record, check_on_bad_record
from .indexing import BAD, DROPPED, OK, DatasetIndex, IndexBuilder
from .leads import STANDARD_LEADS
from .names import NAMES
from .preprocessing import Preprocessed, preprocess
from .protocols import PROTOCOLS
from .records import RecordsReader, RecordsSpec
from .recordset import RecordSet
from .settings import Settings
from .wfdb_io import read_record

__all__ = [
    "BAD",
    "DROPPED",
    "NAMES",
    "OK",
    "PAPER_COUNTS",
    "PROTOCOLS",
    "STANDARD_LEADS",
    "BadRecordError",
    "DatasetIndex",
    "PaperCounts",
    "RecordSet",
    "expected_count_warnings",
    "index",
    "load",
    "read",
    "reader",
]

logger = logging.getLogger(__name__)

_READERS: dict[str, ModuleType] = {
    "ptbxl": ptbxl,
    "cpsc2018": challenge,
    "georgia": challenge,
    "ptb": ptb,
    "ribeiro": ribeiro,
}


def reader(name: str, records: object = None) -> ModuleType | RecordsReader:
    """The reader of dataset `name`: its built-in reader, or with `records` (the config's
    `datasets.<name>.records` section) the generic reader of a folder of records.

    Raises ValueError naming the config key where the name is unknown, unsafe or a built-in
    one given `records`, or where the section is malformed; so the workflow calls it on every
    dataset entry before any job runs.
    """
    if records is not None:
        return RecordsReader(RecordsSpec.from_config(name, records))
    if name not in _READERS:
        raise ValueError(
            f"unknown dataset {name!r}; known datasets: {list(NAMES)}; a folder of records of "
            f"your own needs a records section (config datasets.{name}.records, or records=)"
        )
    return _READERS[name]


def index(
    name: str,
    root: str | os.PathLike,
    protocol: str = "paper",
    *,
    fs: float = 100.0,
    seconds: float = 10.0,
    scaling: str | None = None,
    on_bad_record: str = "error",
    records: object = None,
) -> DatasetIndex:
    """Phase 1: the record list of dataset `name` under `root`, with labels, sorted by record id.

    Records are always in sorted order of their names. The paper's code listed them with `glob`,
    whose order depends on the file system, so its train/test splits differed between machines;
    sorting makes every split drawn from an index the same everywhere.

    Records the protocol leaves out (too short for `seconds` at `fs`; PTB records without a
    reason for admission) are rows with status DROPPED and the reason. A record whose files are
    missing or malformed, or whose label cannot be interpreted, raises BadRecordError with
    `on_bad_record="error"`, and is a BAD row with "skip".

    `records`: for a folder of records of the user's, the config's `datasets.<name>.records`
    section (classes and where the labels come from; see `records.RecordsSpec`).
    """
    source = reader(name, records)
    settings = Settings.create(name, protocol, fs, seconds, scaling, source.file_leads(name))
    check_on_bad_record(on_bad_record)
    path = Path(root)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: dataset root for {name!r} is not a directory")
    builder = IndexBuilder(settings, path, source.classes(name), on_bad_record)
    source.index(path, builder)
    return builder.finish()


def read(idx: DatasetIndex) -> Iterator[tuple[str, str, Preprocessed | BadRecordError]]:
    """Phase 2: (record_id, file, result) for every OK row of `idx`, in order, one at a time.

    `result` is the preprocessed record (its `signal` None when the protocol drops it after all)
    or the BadRecordError that explains why the record cannot be used; the caller decides whether
    that stops the run or quarantines the record. Memory holds one record at a time.
    """
    rows = idx.table[idx.table["status"] == OK]
    with ExitStack() as stack:
        signal_of = _signal_reader(idx, stack)
        for record_id, file in zip(rows["record_id"], rows["file"], strict=True):
            path = idx.root / file
            try:
                signal, native_fs = signal_of(record_id, file)
                result: Preprocessed | BadRecordError = preprocess(
                    signal, native_fs, idx.settings, record_id, path
                )
            except (ValueError, OSError) as exc:
                result = as_bad_record(record_id, path, exc)
            yield record_id, file, result


def _signal_reader(
    idx: DatasetIndex, stack: ExitStack
) -> Callable[[str, str], tuple[np.ndarray, float]]:
    if idx.dataset != "ribeiro":
        return lambda record_id, file: read_record(idx.root / file)
    opened: dict[str, object] = {}

    def read_exam(record_id: str, file: str) -> tuple[np.ndarray, float]:
        if file not in opened:  # one HDF5 file for the whole dataset: open it once
            opened[file] = stack.enter_context(ribeiro.open_tracings(idx.root, file))
        signal = ribeiro.read_exam(opened[file], int(record_id), idx.settings.leads)
        return signal, ribeiro.NATIVE_FS

    return read_exam


def load(
    name: str,
    root: str | os.PathLike,
    protocol: str = "paper",
    *,
    fs: float = 100.0,
    seconds: float = 10.0,
    scaling: str | None = None,
    on_bad_record: str = "error",
    records: object = None,
) -> RecordSet:
    """Read dataset `name` from `root`, preprocessed by `protocol`: `index` + `read` of all rows.

    Protocol "paper" reproduces the seed paper's preprocessing: keep every k-th sample, where
    k = native rate / fs must be an integer; keep the first round(seconds * fs) samples (Ribeiro:
    the middle ones, as the paper cut its zero padding equally from both ends); records shorter
    than that are left out and listed in `dropped`. `scaling=None` is the protocol's default for
    the dataset ("minmax" per record and lead onto [-1, 1] for CPSC2018, Georgia and Ribeiro,
    as sklearn's MinMaxScaler does it, a flat lead -1; "none", i.e. millivolts, for PTB-XL and
    PTB); "none" or "minmax" overrides it. Missing samples of CPSC2018 and Georgia are filled
    after scaling with the mean of their valid neighbours; Ribeiro's leads stay in the file's
    order (I, II, III, aVL, aVF, aVR, V1-V6), as `leads` says.

    Protocol "sound" resamples with `scipy.signal.resample_poly` (any rational ratio, with an
    anti-aliasing filter; never up), interpolates missing samples linearly, merges the
    Challenge's equivalent SNOMED-CT codes, puts every dataset's leads in STANDARD_LEADS order
    and keeps millivolts (scaling "none") for every dataset.

    Bad records raise BadRecordError (naming the file and the reason) unless
    `on_bad_record="skip"`, which leaves them out and lists them in `quarantined`.

    A folder of records of the user's (`records`) gets the generic choices: scaling "none"
    (millivolts) under both protocols, a missing sample a bad record under "paper".
    """
    idx = index(
        name, root, protocol, fs=fs, seconds=seconds, scaling=scaling, on_bad_record=on_bad_record,
        records=records,
    )
    table = idx.table
    ok = (table["status"] == OK).to_numpy()
    n = int(ok.sum())
    signals = np.empty((n, len(idx.leads), idx.settings.length), np.float32)
    keep = np.zeros(n, bool)
    kept = 0  # kept records fill `signals` from the front, so no second copy is needed
    dropped, quarantined = idx.left_out()
    for i, (record_id, file, result) in enumerate(read(idx)):
        if isinstance(result, BadRecordError):
            if on_bad_record == "error":
                raise result
            logger.warning("bad record, left out: %s", result)
            quarantined.append((record_id, file, result.reason))
        elif result.signal is None:
            dropped.append((record_id, result.reason))
        else:
            signals[kept] = result.signal
            kept += 1
            keep[i] = True
    if not keep.any():
        first = f" (first: {dropped[0][0]}: {dropped[0][1]})" if dropped else ""
        raise ValueError(
            f"{name}: all {len(dropped) + len(quarantined)} records were dropped{first}"
        )
    rows = table[ok][keep]
    patients = rows["patient_id"].tolist() if idx.has_patients() else None
    return RecordSet(
        signals=signals[:kept],
        labels=idx.labels[ok][keep],
        classes=idx.classes,
        record_ids=rows["record_id"].tolist(),
        fs=idx.settings.fs,
        leads=idx.leads,
        patient_ids=patients,
        folds=rows["fold"].to_numpy(np.int64) if name == "ptbxl" else None,
        dropped=sorted(dropped),
        protocol=idx.settings.protocol.name,
        quarantined=sorted(quarantined),
    )


def other_readers(name: str) -> list[str]:
    """Dotted names of the reader modules that dataset `name`'s jobs import but never run.

    The data stage's code hash leaves them out (``codehash.code_hash(..., exclude=...)``), so a
    fix to the Georgia reader re-runs Georgia's shards and not PTB-XL's. A name that is not a
    built-in one is a folder of records (`reader` checks it has a records section), read by
    `records`.
    """
    generic = RecordsReader.__module__
    mine = _READERS[name].__name__ if name in _READERS else generic
    return sorted(({m.__name__ for m in _READERS.values()} | {generic}) - {mine})
