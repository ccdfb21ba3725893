"""The CODE test set of Ribeiro et al. (2020): 827 exams annotated by cardiologists.

`ecg_tracings.hdf5` holds one array `tracings` (exams x 4096 samples x 12 leads) at 400 Hz, each
recording zero-padded to 4096 samples, leads in the order DI, DII, DIII, AVL, AVF, AVR, V1-V6 as
the dataset's README says (data/README.md of antonior92/automatic-ecg-diagnosis, which describes
Zenodo record 3625006; the pretrained models' README says the same of their input). That
repository's main README said so too until its commit "Fix order of the leads" (f3fbd2f,
2020-08-12) changed it to DI, DII, DIII, AVR, AVL, AVF; the data README was left as it was. Both
cannot be right; FILE_LEADS follows the data README. The paper fed the columns as stored
(`X[:, ::4, :]`), so protocol `paper` keeps them in that order (and says so in `leads`); `sound`
puts them in STANDARD_LEADS order by these names.

The values are kept in the file's unit: its README's "scale 1e-4V ... multiplied by 1000 to obtain
V" contradicts itself, and the values (order 1) look like mV; the paper min-max scales anyway.
`annotations/gold_standard.csv` has one row per exam (same order) with six 0/1 columns; the paper
added NORM for rows with none of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from .errors import BadRecordError
from .hashing import hash_bytes
from .indexing import IndexBuilder
from .leads import STANDARD_LEADS, lead_indices, standard_lead

CLASSES = ("NORM", "1dAVb", "RBBB", "LBBB", "SB", "AF", "ST")
FILE_LEADS = ("DI", "DII", "DIII", "AVL", "AVF", "AVR", "V1", "V2", "V3", "V4", "V5", "V6")
NATIVE_FS = 400.0

_TRACINGS = "ecg_tracings.hdf5"
_GOLD = "gold_standard.csv"
_CHUNK = 256  # exams read from the HDF5 file at a time, to bound memory
# Exams without a gold standard row listed one BAD row each up to this many; beyond it one row
# covers them all (an HDF5 header can claim 10**12 exams while the file holds kilobytes).
_MAX_SURPLUS_ROWS = 1000
lead_indices(FILE_LEADS, "Ribeiro's lead order")  # all 12 standard leads, each once
# The file's lead order in standard names: I, II, III, aVL, aVF, aVR, V1 ... V6.
STORED_LEADS = tuple(standard_lead(name) or name for name in FILE_LEADS)
_COLUMN = {lead: j for j, lead in enumerate(STORED_LEADS)}


def classes(dataset: str) -> list[str]:
    return list(CLASSES)


def file_leads(dataset: str) -> tuple[str, ...]:
    """One lead order for every exam of the HDF5 file, so a protocol may keep it."""
    return STORED_LEADS


def index(root: Path, builder: IndexBuilder) -> None:
    """One row per exam; record_ids are the 0-based exam index, zero-padded ("000" ... "826").

    Tracings and gold-standard rows are matched by position, as the paper (and the CODE README)
    do. When their counts differ, the surplus rows at the end (labels without a tracing, or
    tracings without labels) are bad records, one BAD row each; more than 1000 exams without
    labels are one BAD row ("827-999999999999") under on_bad_record="skip", and under "error"
    the first of them stops the index. Only exams with a label are hashed or indexed.
    """
    settings = builder.settings
    tracings_path = _find_one(root, _TRACINGS)
    labels = _read_labels(_find_one(root, _GOLD))
    with _open(tracings_path) as tracings:
        n_tracings, native_length = tracings.shape[0], tracings.shape[1]
        n_labelled = min(n_tracings, len(labels))
        unlabelled = range(len(labels), n_tracings)  # empty unless tracings outnumber labels
        one_row = len(unlabelled) > _MAX_SURPLUS_ROWS
        n = len(labels) if one_row else max(n_tracings, len(labels))
        width = len(str(max(n - 1, 0)))
        hashes = (_hashes(tracings, tracings_path, n_labelled)
                  if settings.protocol.hash_records else None)
    for i in range(n_labelled):
        record_id = f"{i:0{width}d}"
        if hashes is not None and isinstance(hashes[i], BadRecordError):
            builder.bad(BadRecordError(record_id, tracings_path, hashes[i].reason))
        else:
            builder.add(
                record_id, tracings_path, labels[i], NATIVE_FS, native_length,
                content_hash="" if hashes is None else hashes[i],
            )
    for i in range(n_labelled, len(labels)):
        builder.bad(BadRecordError(
            f"{i:0{width}d}", tracings_path,
            f"gold standard row {i} has no tracing: the file holds {n_tracings} exams",
        ))
    if one_row and builder.on_bad_record == "skip":
        first, last = unlabelled[0], unlabelled[-1]
        builder.bad(BadRecordError(
            f"{first:0{width}d}-{last}", tracings_path,
            f"exams {first} to {last} ({len(unlabelled)} exams) have no gold standard row: "
            f"the CSV has {len(labels)} rows",
        ))
    else:  # one row each; under "error" the first one raises, so the range is never walked
        for i in unlabelled:
            builder.bad(BadRecordError(
                f"{i:0{width}d}", tracings_path,
                f"exam {i} has no gold standard row: the CSV has {len(labels)} rows",
            ))


def read_exam(
    tracings: h5py.Dataset, i: int, leads: Sequence[str] = STANDARD_LEADS
) -> np.ndarray:
    """Exam `i` as (12, samples) float64, leads in the order `leads` names (standard names).

    `leads` is the index's `settings.leads`: STORED_LEADS under the paper protocol (the columns
    as stored), STANDARD_LEADS under sound.
    """
    return np.asarray(tracings[i], dtype=np.float64).T[[_COLUMN[lead] for lead in leads]]


def _hashes(tracings: h5py.Dataset, path: Path, n: int) -> list[str | BadRecordError]:
    """Content hash of the raw bytes of the first `n` exams (those with a label), read in chunks
    to bound memory."""
    out: list[str | BadRecordError] = []
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        try:
            block = tracings[start:stop]
        except OSError:  # a damaged chunk: find which exams it holds, one by one
            for i in range(start, stop):
                try:
                    out.append(hash_bytes([np.ascontiguousarray(tracings[i]).tobytes()]))
                except OSError as exc:
                    out.append(BadRecordError(str(i), path, f"exam {i} unreadable ({exc})"))
            continue
        out.extend(hash_bytes([np.ascontiguousarray(x).tobytes()]) for x in block)
    return out


@contextmanager
def _open(path: Path) -> Iterator[h5py.Dataset]:
    """The `tracings` dataset; a file that does not open is a dataset-level error."""
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path}: not a readable HDF5 file ({exc})") from exc
    with handle:
        if "tracings" not in handle:
            raise ValueError(f"{path}: no dataset 'tracings'; found {list(handle)}")
        tracings = handle["tracings"]
        if tracings.ndim != 3 or tracings.shape[2] != len(FILE_LEADS):
            raise ValueError(
                f"{path}: 'tracings' has shape {tracings.shape}; expected "
                f"(exams, samples, {len(FILE_LEADS)})"
            )
        yield tracings


@contextmanager
def open_tracings(root: Path, file: str) -> Iterator[h5py.Dataset]:
    """The index's HDF5 file (relative to root), opened once for a whole shard part."""
    with _open(root / file) as tracings:
        yield tracings


def _read_labels(path: Path) -> np.ndarray:
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ValueError(f"{path}: unreadable CSV ({exc})") from exc
    abnormal = list(CLASSES[1:])
    missing = [c for c in abnormal if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected {abnormal}")
    values = table[abnormal]
    if values.isna().any().any() or not values.isin([0, 1]).all().all():
        raise ValueError(f"{path}: columns {abnormal} must hold only 0 or 1")
    abnormal_hot = values.to_numpy(dtype=np.uint8)
    norm = (abnormal_hot.sum(axis=1) == 0).astype(np.uint8)[:, None]
    return np.hstack([norm, abnormal_hot])


def _find_one(root: Path, name: str) -> Path:
    hits = sorted(root.rglob(name))
    if not hits:
        raise FileNotFoundError(f"{root}: no {name} found in it or below")
    if len(hits) > 1:
        raise ValueError(f"{root}: {len(hits)} files named {name}: {hits}; expected one")
    return hits[0]
