"""HDF5 shards: the on-disk format every training job reads.

A dataset's records are preprocessed once into shard parts (:mod:`ecg_transfer.prepare` writes
them, one job per part); a training job reads all parts of its dataset (:func:`read_shard` takes
one path or several) into memory once and slices batches from it. This module needs only h5py
and numpy: the training stage never imports the dataset readers.

Layout of one part::

    signals     (N, leads, samples) float32, chunked one record per chunk (written streaming)
    labels      (N, C) uint8 multi-hot
    record_ids  (N,) utf-8 strings, the dataset's own record names
    split       (N,) uint8, index into attrs["split_names"] (train, test, val)
    patient_ids (N,) utf-8 strings, only where the dataset has patients
    attrs: dataset, classes, fs, leads, protocol, split_names, split_method, n_train, n_test,
           n_val, dropped (JSON list of [record_id, reason]), part, n_parts, n_quarantined,
           n_missing_filled (NaN samples filled or interpolated)

Beside each part, ``partN.quarantine.csv`` lists (record_id, file, reason) of the bad records
left out with ``on_bad_record: skip`` (only its header with ``error``, where a bad record stops
the job and nothing is written).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ecg_transfer.fileio import atomic_path
from ecg_transfer.splits import SPLIT_NAMES

__all__ = ["PartWriter", "Shard", "read_shard", "write_attrs", "write_shard"]

_WRITE_BLOCK = 64  # records buffered before each HDF5 append: memory stays O(block), not O(N)


class PartWriter:
    """Appends records to a shard file in blocks: peak memory is one block, whatever N is."""

    def __init__(self, f: h5py.File, n_leads: int, length: int, n_classes: int, patients: bool):
        self.f = f
        str_dtype = h5py.string_dtype("utf-8")
        f.create_dataset("signals", shape=(0, n_leads, length), maxshape=(None, n_leads, length),
                         dtype=np.float32, chunks=(1, n_leads, length))
        f.create_dataset("labels", shape=(0, n_classes), maxshape=(None, n_classes),
                         dtype=np.uint8, chunks=(1024, max(n_classes, 1)))
        f.create_dataset("record_ids", shape=(0,), maxshape=(None,), dtype=str_dtype,
                         chunks=(1024,))
        f.create_dataset("split", shape=(0,), maxshape=(None,), dtype=np.uint8, chunks=(1024,))
        self.names = ["signals", "labels", "record_ids", "split"]
        if patients:
            f.create_dataset("patient_ids", shape=(0,), maxshape=(None,), dtype=str_dtype,
                             chunks=(1024,))
            self.names.append("patient_ids")
        self.buffer: dict[str, list] = {name: [] for name in self.names}
        self.n = 0

    def add(self, signal: np.ndarray, label: np.ndarray, record_id: str, split: int,
            patient_id: str | None = None) -> None:
        values = [signal, label, record_id, split, patient_id]
        for name, value in zip(self.names, values, strict=False):
            self.buffer[name].append(value)
        if len(self.buffer["signals"]) >= _WRITE_BLOCK:
            self.flush()

    def flush(self) -> None:
        k = len(self.buffer["signals"])
        if not k:
            return
        for name in self.names:
            ds = self.f[name]
            ds.resize(self.n + k, axis=0)
            values = self.buffer[name]
            if name in ("record_ids", "patient_ids"):
                ds[self.n :] = np.array(values, dtype=object)
            else:
                ds[self.n :] = np.stack(values) if name in ("signals", "labels") else values
            values.clear()
        self.n += k


def write_attrs(f: h5py.File, attrs: dict, split: np.ndarray) -> None:
    for key, value in attrs.items():
        f.attrs[key] = value
    f.attrs["split_names"] = list(SPLIT_NAMES)
    for i, name in enumerate(SPLIT_NAMES):
        f.attrs[f"n_{name}"] = int((split == i).sum())


# --- RecordSets and reading -------------------------------------------------------------------


def write_shard(
    path: str | os.PathLike, dataset: str, rs, split: np.ndarray, split_method: str
) -> Path:
    """Write a RecordSet as one shard, atomically: a crash never leaves a half-written file."""
    path = Path(path)
    split = np.asarray(split, dtype=np.uint8)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        writer = PartWriter(f, rs.signals.shape[1], rs.signals.shape[2], len(rs.classes),
                             rs.patient_ids is not None)
        for i, record_id in enumerate(rs.record_ids):
            writer.add(rs.signals[i], rs.labels[i], record_id, int(split[i]),
                       rs.patient_ids[i] if rs.patient_ids is not None else None)
        writer.flush()
        write_attrs(f, {
            "dataset": dataset,
            "classes": list(rs.classes),
            "fs": float(rs.fs),
            "leads": list(rs.leads),
            "protocol": rs.protocol,
            "split_method": split_method,
            "dropped": json.dumps([list(d) for d in rs.dropped]),
            "part": 0,
            "n_parts": 1,
            "n_quarantined": len(rs.quarantined),
        }, split)
    return path


@dataclass
class Shard:
    """A dataset's shard(s) in memory: what a training job needs."""

    signals: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    record_ids: list[str]
    classes: list[str]
    fs: float
    leads: list[str]
    dataset: str
    protocol: str
    patient_ids: list[str] | None = None
    dropped: list[tuple[str, str]] = field(default_factory=list)

    def part(self, which: int) -> tuple[np.ndarray, np.ndarray]:
        mask = self.split == which
        return self.signals[mask], self.labels[mask]


_SAME_ACROSS_PARTS = ("classes", "fs", "leads", "dataset", "protocol")


def read_shard(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> Shard:
    """Load one shard file, or all parts of a dataset (concatenated in the given order).

    The datasets are small (PTB-XL at 100 Hz is ~1 GB); the signals are read straight into one
    preallocated array, so the parts are never held twice. Parts must agree on classes, rate,
    leads, dataset and protocol: mixing shards of two configurations is an error.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("read_shard: no shard paths given")
    heads = [_shard_head(p) for p in paths]
    first = heads[0]
    for p, head in zip(paths[1:], heads[1:], strict=True):
        for key in _SAME_ACROSS_PARTS:
            if head[key] != first[key]:
                raise ValueError(f"{p}: {key} {head[key]!r} differs from {paths[0]}'s "
                                 f"{first[key]!r}; parts of one dataset must agree")
    n = sum(h["n"] for h in heads)
    signals = np.empty((n, *first["shape"]), np.float32)
    labels = np.empty((n, len(first["classes"])), np.uint8)
    split = np.empty(n, np.uint8)
    record_ids: list[str] = []
    patient_ids: list[str] | None = [] if all(h["patients"] for h in heads) else None
    dropped: list[tuple[str, str]] = []
    start = 0
    for p, head in zip(paths, heads, strict=True):
        stop = start + head["n"]
        try:
            with h5py.File(p, "r") as f:
                if head["n"]:
                    f["signals"].read_direct(signals, dest_sel=np.s_[start:stop])
                labels[start:stop] = f["labels"][...]
                split[start:stop] = f["split"][...]
                record_ids += _strings(f["record_ids"])
                if patient_ids is not None:
                    patient_ids += _strings(f["patient_ids"])
                dropped += [tuple(d) for d in json.loads(f.attrs.get("dropped", "[]"))]
        except OSError as e:
            raise ValueError(f"{p}: cannot read shard ({e})") from e
        start = stop
    return Shard(signals=signals, labels=labels, split=split, record_ids=record_ids,
                 classes=first["classes"], fs=first["fs"], leads=first["leads"],
                 dataset=first["dataset"], protocol=first["protocol"],
                 patient_ids=patient_ids, dropped=dropped)


def _strings(ds: h5py.Dataset) -> list[str]:
    return [s.decode() if isinstance(s, bytes) else s for s in ds[...]]


def _shard_head(path: Path) -> dict:
    try:
        with h5py.File(path, "r") as f:
            missing = {"signals", "labels", "split", "record_ids"} - set(f.keys())
            if missing:
                raise ValueError(f"{path}: not a shard, missing datasets {sorted(missing)}")
            return {
                "n": f["signals"].shape[0],
                "shape": f["signals"].shape[1:],
                "patients": "patient_ids" in f,
                "classes": [str(c) for c in f.attrs["classes"]],
                "fs": float(f.attrs["fs"]),
                "leads": [str(c) for c in f.attrs["leads"]],
                "dataset": str(f.attrs["dataset"]),
                "protocol": str(f.attrs["protocol"]),
            }
    except OSError as e:
        raise ValueError(f"{path}: cannot read shard ({e})") from e

