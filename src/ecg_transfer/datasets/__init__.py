"""Readers for the study's five ECG datasets, behind one function: `load`.

Each reader finds its dataset inside the directory an official archive was extracted into, reads
the records and labels, and applies a preprocessing *protocol* (see `common`), so that every
dataset comes out as the same `RecordSet`: (N, 12, T) float32 signals in STANDARD_LEADS order and
a multi-hot label matrix.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from . import challenge, ptb, ptbxl, ribeiro
from .common import NAMES, PROTOCOLS, STANDARD_LEADS, RecordSet, Settings

__all__ = ["NAMES", "PROTOCOLS", "STANDARD_LEADS", "RecordSet", "load"]

_READERS: dict[str, Callable[[Path, Settings], RecordSet]] = {
    "ptbxl": ptbxl.read,
    "cpsc2018": challenge.read,
    "georgia": challenge.read,
    "ptb": ptb.read,
    "ribeiro": ribeiro.read,
}


def load(
    name: str,
    root: str | os.PathLike,
    protocol: str = "paper",
    *,
    fs: float = 100.0,
    seconds: float = 10.0,
    scaling: str | None = None,
) -> RecordSet:
    """Read dataset `name` from `root`, preprocessed by `protocol`.

    `root` may be the extracted archive's top folder or any folder above it: the reader searches
    for the dataset's marker files (`ptbxl_database.csv`, `*.hea`, `RECORDS`, `ecg_tracings.hdf5`).

    Records are always in sorted order of their names. The paper's code listed them with `glob`,
    whose order depends on the file system, so its train/test splits differed between machines;
    sorting makes every split drawn from a RecordSet the same everywhere.

    Protocol "paper" reproduces the seed paper's preprocessing: keep every k-th sample, where
    k = native rate / fs must be an integer; keep the first round(seconds * fs) samples (Ribeiro:
    the middle ones, as the paper cut its zero padding equally from both ends); records shorter
    than that are left out and listed in `dropped`. `scaling=None` is the protocol's default for
    the dataset ("minmax" per record and lead onto [-1, 1] for CPSC2018, Georgia and Ribeiro,
    "none", i.e. millivolts, for PTB-XL and PTB); "none" or "minmax" overrides it.

    Unreadable or malformed files raise an exception that names the file; nothing is skipped
    silently.
    """
    if name not in _READERS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {list(NAMES)}")
    settings = Settings.create(name, protocol, fs, seconds, scaling)
    path = Path(root)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: dataset root for {name!r} is not a directory")
    return _READERS[name](path, settings)
