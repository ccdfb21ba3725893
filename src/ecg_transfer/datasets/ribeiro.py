"""The CODE test set of Ribeiro et al. (2020): 827 exams annotated by cardiologists.

`ecg_tracings.hdf5` holds one array `tracings` (exams x 4096 samples x 12 leads) at 400 Hz, each
recording zero-padded to 4096 samples, leads in the order DI, DII, DIII, AVL, AVF, AVR, V1-V6.
The values are kept in the file's unit: its README's "scale 1e-4V ... multiplied by 1000 to obtain
V" contradicts itself, and the values (order 1) look like mV; the paper min-max scales anyway.
`annotations/gold_standard.csv` has one row per exam (same order) with six 0/1 columns; the paper
added NORM for rows with none of them.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from .common import Collector, RecordSet, Settings, lead_indices

CLASSES = ("NORM", "1dAVb", "RBBB", "LBBB", "SB", "AF", "ST")
FILE_LEADS = ("DI", "DII", "DIII", "AVL", "AVF", "AVR", "V1", "V2", "V3", "V4", "V5", "V6")
NATIVE_FS = 400.0

_TRACINGS = "ecg_tracings.hdf5"
_GOLD = "gold_standard.csv"
_CHUNK = 256  # exams read from the HDF5 file at a time, to bound memory


def read(root: Path, settings: Settings) -> RecordSet:
    """Read all exams; record_ids are the 0-based exam index, zero-padded ("000" ... "826")."""
    tracings_path = _find_one(root, _TRACINGS)
    labels = _read_labels(_find_one(root, _GOLD))
    leads = lead_indices(FILE_LEADS, tracings_path)
    try:
        handle = h5py.File(tracings_path, "r")
    except OSError as exc:
        raise ValueError(f"{tracings_path}: not a readable HDF5 file ({exc})") from exc
    with handle:
        if "tracings" not in handle:
            raise ValueError(f"{tracings_path}: no dataset 'tracings'; found {list(handle)}")
        tracings = handle["tracings"]
        if tracings.ndim != 3 or tracings.shape[2] != len(FILE_LEADS):
            raise ValueError(
                f"{tracings_path}: 'tracings' has shape {tracings.shape}; expected "
                f"(exams, samples, {len(FILE_LEADS)})"
            )
        n = tracings.shape[0]
        if len(labels) != n:
            raise ValueError(
                f"{tracings_path}: {n} exams, but the gold standard has {len(labels)} rows"
            )
        width = len(str(max(n - 1, 0)))
        collector = Collector(settings, n, CLASSES)
        for start in range(0, n, _CHUNK):
            block = np.asarray(tracings[start : start + _CHUNK], dtype=np.float64)
            block = block.transpose(0, 2, 1)[:, leads, :]  # (exams, 12, samples)
            for offset, signal in enumerate(block):
                i = start + offset
                source = f"{tracings_path}, exam {i}"
                collector.add(f"{i:0{width}d}", signal, NATIVE_FS, source, labels[i])
    return collector.finish()


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
