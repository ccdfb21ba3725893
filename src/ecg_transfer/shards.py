"""HDF5 shards: the on-disk format every training job reads, and the data stages that write it.

A dataset is indexed once (`write_index`: record list, labels, split, and which part each record
goes to) and then sharded in parts of at most ``shard_size`` records (`make_part`), each its own
job, so reading and preprocessing fan out over the machine or the cluster. A training job reads
all parts of its dataset (`read_shard` takes one path or several) into memory once and slices
batches from it.

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

import csv
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from ecg_transfer.fileio import atomic_path

if TYPE_CHECKING:  # the readers pull in wfdb, scipy and pandas: training jobs need none of it
    from ecg_transfer.datasets import DatasetIndex, RecordSet

SPLIT_NAMES = ("train", "test", "val")
TRAIN, TEST, VAL = 0, 1, 2
DEFAULT_SHARD_SIZE = 2000
QUARANTINE_COLUMNS = ("record_id", "file", "reason")
_WRITE_BLOCK = 64  # records buffered before each HDF5 append: memory stays O(block), not O(N)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitSpec:
    """How a dataset is divided (the config's ``split`` section).

    The paper's is ``train_test_split(test_size=0.33, random_state=1)``. ``test_fold`` (PTB-XL)
    uses the dataset's own ``strat_fold`` instead of a random test split. ``val_size`` is the
    fraction of all records in the validation split, carved out of train; None is the protocol's
    default (paper: 0, the paper had none; sound: 0.1). ``stratify`` is the paper's option;
    sound always stratifies (iteratively, on the multi-label matrix).
    """

    test_size: float = 0.33
    random_state: int = 1
    stratify: bool = False
    test_fold: int | None = None
    val_size: float | None = None


def split_records(rs: RecordSet, spec: SplitSpec) -> tuple[np.ndarray, str]:
    """The paper's train/test split of a RecordSet; returns the split vector and its description.

    Records are sorted by name before splitting (the readers guarantee it), so the split is the
    same on every machine, unlike the paper's glob-ordered lists.
    """
    return _paper_split(rs.labels, rs.folds, spec)


def _paper_split(
    labels: np.ndarray, folds: np.ndarray | None, spec: SplitSpec
) -> tuple[np.ndarray, str]:
    n = len(labels)
    split = np.full(n, TRAIN, dtype=np.uint8)
    if spec.test_fold is not None:
        return _fold_split(folds, spec)
    from sklearn.model_selection import train_test_split

    stratify = None
    method = f"train_test_split(test_size={spec.test_size}, random_state={spec.random_state}"
    if spec.stratify:
        stratify = _stratification_groups(labels)
        method += ", stratify=label combination (combinations seen once pooled)"
    _, test_idx = train_test_split(
        np.arange(n), test_size=spec.test_size, random_state=spec.random_state, stratify=stratify
    )
    split[test_idx] = TEST
    return split, method + ")"


def _fold_split(folds: np.ndarray | None, spec: SplitSpec) -> tuple[np.ndarray, str]:
    if folds is None or (np.asarray(folds) < 0).all():
        raise ValueError(
            f"split.test_fold={spec.test_fold} but dataset has no folds (only PTB-XL has "
            "strat_fold); remove test_fold from its split config"
        )
    split = np.full(len(folds), TRAIN, dtype=np.uint8)
    split[np.asarray(folds) == spec.test_fold] = TEST
    if not (split == TEST).any():
        raise ValueError(f"split.test_fold={spec.test_fold}: no record is in that fold")
    return split, f"strat_fold == {spec.test_fold} is test, the other folds train"


def assign_split(idx: DatasetIndex, spec: SplitSpec) -> tuple[np.ndarray, str]:
    """Split vector (TRAIN/TEST/VAL) for the rows of `idx` (its OK rows, in order) by its protocol.

    paper: `split_records`' rule, then, if ``val_size`` > 0, a seeded stratified share of train
    becomes validation (test stays exactly the paper's). sound: `splits.sound_split`, which keeps
    every patient (PTB-XL ``patient_id``, PTB folder) and every duplicated signal (same content
    hash) inside one split; with ``test_fold`` the fold is test and validation is carved from
    train by patient.
    """
    from ecg_transfer import splits

    protocol = idx.settings.protocol
    labels = idx.labels
    table = idx.table
    folds = table["fold"].to_numpy(np.int64)
    groups = table["patient_id"].tolist() if idx.has_patients() else None
    val_size = protocol.default_val_size if spec.val_size is None else spec.val_size
    if protocol.name == "sound" and spec.test_fold is None:
        split = splits.sound_split(
            labels, groups=groups, duplicate_keys=table["hash"].tolist(),
            test_size=spec.test_size, val_size=val_size, random_state=spec.random_state,
        )
        method = (
            f"sound_split(test_size={spec.test_size}, val_size={val_size}, random_state="
            f"{spec.random_state}): iterative stratification; patients"
            f"{'' if groups is not None else ' (none in this dataset)'} and identical signals "
            "kept in one split"
        )
        return split, method
    if protocol.name == "sound":
        split, method = _fold_split(folds, spec)
    else:
        split, method = _paper_split(labels, folds if (folds >= 0).any() else None, spec)
    if val_size > 0:
        # carve_validation's fraction is of train; val_size is of all records.
        fraction = min(val_size * len(split) / max(int((split == TRAIN).sum()), 1), 0.99)
        split = splits.carve_validation(split, labels, fraction, spec.random_state, groups=groups)
        method += (
            f"; val_size={val_size} of all records carved from train (seed {spec.random_state})"
        )
    return split, method


def _stratification_groups(labels: np.ndarray) -> np.ndarray:
    """One group per label combination; combinations seen once share a group.

    sklearn refuses to stratify on a group of one; pooling the singletons keeps the stratification
    of everything else.
    """
    keys = np.array(["".join(map(str, row)) for row in labels])
    uniq, counts = np.unique(keys, return_counts=True)
    rare = set(uniq[counts < 2])
    groups = np.array(["rare" if k in rare else k for k in keys])
    if (groups == "rare").sum() == 1:  # a pooled group of one: fold it into the largest group
        values, c = np.unique(groups[groups != "rare"], return_counts=True)
        groups[groups == "rare"] = values[np.argmax(c)]
    return groups


# --- the index stage ---------------------------------------------------------------------------


def write_index(
    dataset: str,
    root: str | os.PathLike,
    csv_path: str | os.PathLike,
    meta_path: str | os.PathLike,
    *,
    preprocess: dict,
    split: dict,
    shard_size: int = DEFAULT_SHARD_SIZE,
    on_bad_record: str = "error",
) -> dict:
    """Index an extracted dataset, assign the split, and cut it into parts; returns the meta.

    Writes ``csv_path`` (one row per record: the dataset index plus ``split``, -1 for records
    left out, and ``part``) and ``meta_path`` (JSON: classes, protocol settings, split method,
    ``n_parts`` and counts), both atomically. Parts are consecutive runs of at most
    ``shard_size`` records in sorted order, dropped and quarantined ones included, so that every
    record is listed by exactly one part.
    """
    from ecg_transfer import datasets

    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(
            f"datasets.{dataset}.shard_size is {shard_size!r}; expected an integer >= 1"
        )
    idx = datasets.index(dataset, root, **preprocess, on_bad_record=on_bad_record)
    table = idx.table
    ok = (table["status"] == datasets.OK).to_numpy()
    if not ok.any():
        first = table.iloc[0] if len(table) else None
        detail = f" (first: {first.record_id}: {first.reason})" if first is not None else ""
        raise ValueError(f"{dataset}: all {len(table)} records were left out{detail}")
    spec = SplitSpec(**split)
    split_vec, method = assign_split(idx.where(ok), spec)
    column = np.full(len(table), -1, dtype=np.int64)
    column[ok] = split_vec
    table["split"] = column
    table["part"] = np.arange(len(table)) // shard_size
    n_parts = max(1, math.ceil(len(table) / shard_size))
    meta = {
        **idx.meta(),
        "split_method": method,
        "split_spec": {k: v for k, v in vars(spec).items()},
        "shard_size": shard_size,
        "n_parts": n_parts,
        **{f"n_{name}": int((split_vec == i).sum()) for i, name in enumerate(SPLIT_NAMES)},
    }
    for row in table[table["status"] == datasets.DROPPED].itertuples(index=False):
        log.info("dropped %s: %s", row.record_id, row.reason)
    log.info(
        "%s: %d records indexed (%d ok, %d dropped, %d bad), %d classes %s; split %s: %s; "
        "%d part(s) of at most %d records",
        dataset, len(table), meta["n_ok"], meta["n_dropped"], meta["n_bad"], len(idx.classes),
        idx.classes, method,
        " / ".join(f"{meta[f'n_{name}']} {name}" for name in SPLIT_NAMES), n_parts, shard_size,
    )
    with atomic_path(csv_path) as tmp:
        idx.to_csv(tmp)
    with atomic_path(meta_path) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def read_index(
    csv_path: str | os.PathLike, meta_path: str | os.PathLike, root: str | os.PathLike
) -> tuple[DatasetIndex, dict]:
    """The index and meta `write_index` wrote, for the dataset extracted at ``root``."""
    from ecg_transfer.datasets import DatasetIndex

    try:
        meta = json.loads(Path(meta_path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{meta_path}: unreadable index meta ({exc})") from exc
    return DatasetIndex.read_csv(csv_path, meta, root), meta


def part_paths(shard_dir: str | os.PathLike, n_parts: int) -> list[str]:
    """The part files of a dataset's shard folder, in order (what training rules take)."""
    return [str(Path(shard_dir) / f"part{i}.h5") for i in range(n_parts)]


# --- the shard stage -----------------------------------------------------------------------------


class _PartWriter:
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


def _write_attrs(f: h5py.File, attrs: dict, split: np.ndarray) -> None:
    for key, value in attrs.items():
        f.attrs[key] = value
    f.attrs["split_names"] = list(SPLIT_NAMES)
    for i, name in enumerate(SPLIT_NAMES):
        f.attrs[f"n_{name}"] = int((split == i).sum())


def make_part(
    index_csv: str | os.PathLike,
    index_meta: str | os.PathLike,
    root: str | os.PathLike,
    part: int,
    shard_path: str | os.PathLike,
    quarantine_path: str | os.PathLike,
    *,
    on_bad_record: str = "error",
    scaling: str | None = None,
) -> int:
    """Read and preprocess the records of part ``part`` of an index; write its shard streaming.

    ``scaling`` (the dataset's ``preprocess.scaling``) overrides the index's: the index does not
    depend on it, so the workflow passes it here and a scaling change re-runs only the parts.

    With ``on_bad_record="error"`` the first bad record raises BadRecordError (naming the file and
    the reason) and nothing is written; with "skip" bad records are left out and listed in
    ``quarantine_path``. Both files appear atomically. Returns the number of records written.
    """
    from ecg_transfer.datasets import BadRecordError, check_on_bad_record, read

    check_on_bad_record(on_bad_record)
    idx, meta = read_index(index_csv, index_meta, root)
    if not 0 <= part < meta["n_parts"]:
        raise ValueError(f"{index_meta}: part {part} requested, but the index has "
                         f"{meta['n_parts']} part(s)")
    idx = idx.where(idx.table["part"] == part)
    if scaling is not None:
        idx.settings = _with_scaling(idx.settings, scaling, index_meta)
    table = idx.table
    dropped, quarantine = idx.left_out()
    if quarantine and on_bad_record == "error":
        r, f, why = quarantine[0]
        raise BadRecordError(r, Path(root) / f, why)
    settings = idx.settings
    patients = idx.has_patients()
    by_id = {r: i for i, r in enumerate(table["record_id"])}
    labels, splits_col = idx.labels, table["split"].to_numpy()
    written_split: list[int] = []
    n_missing = 0
    with atomic_path(shard_path) as tmp, h5py.File(tmp, "w") as f:
        writer = _PartWriter(f, 12, settings.length, len(idx.classes), patients)
        for record_id, file, result in read(idx):
            if isinstance(result, BadRecordError):
                if on_bad_record == "error":
                    raise result
                log.warning("quarantined: %s", result)
                quarantine.append((record_id, file, result.reason))
                continue
            if result.signal is None:
                log.info("dropped %s: %s", record_id, result.reason)
                dropped.append((record_id, result.reason))
                continue
            if result.n_missing:
                log.info("%s: %d missing samples %s", record_id, result.n_missing,
                         "interpolated" if settings.protocol.interpolate_missing else "filled")
                n_missing += result.n_missing
            i = by_id[record_id]
            writer.add(result.signal, labels[i], record_id, int(splits_col[i]),
                       table["patient_id"].iat[i] if patients else None)
            written_split.append(int(splits_col[i]))
        writer.flush()
        _write_attrs(f, {
            "dataset": idx.dataset,
            "classes": list(idx.classes),
            "fs": settings.fs,
            "leads": list(_standard_leads()),
            "protocol": settings.protocol.name,
            "scaling": settings.scaling,
            "split_method": meta["split_method"],
            "dropped": json.dumps(dropped),
            "part": part,
            "n_parts": meta["n_parts"],
            "n_quarantined": len(quarantine),
            "n_missing_filled": n_missing,
        }, np.asarray(written_split, dtype=np.uint8))
        with atomic_path(quarantine_path) as qtmp:
            _write_quarantine(qtmp, quarantine)
    log.info(
        "%s part %d/%d: %d records written, %d dropped, %d quarantined, %d missing samples "
        "filled; %d samples at %g Hz", idx.dataset, part, meta["n_parts"], writer.n,
        len(dropped), len(quarantine), n_missing, settings.length, settings.fs,
    )
    return writer.n


def _with_scaling(settings, scaling: str, source: object):
    from dataclasses import replace

    from ecg_transfer.datasets.common import SCALINGS

    if scaling not in SCALINGS:
        raise ValueError(f"{source}: preprocess.scaling is {scaling!r}; expected one of {SCALINGS}")
    return replace(settings, scaling=scaling)


def _write_quarantine(path: Path, rows: Sequence[tuple[str, str, str]]) -> None:
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(QUARANTINE_COLUMNS)
        out.writerows(sorted(rows))


def _standard_leads() -> tuple[str, ...]:
    from ecg_transfer.datasets import STANDARD_LEADS

    return STANDARD_LEADS


def make_shard(
    dataset: str,
    root: str | os.PathLike,
    path: str | os.PathLike,
    *,
    preprocess: dict,
    split: dict,
    on_bad_record: str = "error",
) -> Path:
    """Index, split and shard a whole dataset into one file (no Snakemake needed).

    ``preprocess`` and ``split`` are the dataset's config sections (see config.yaml). The index
    and the quarantine list are written beside ``path`` (``<stem>.index.csv``/``.json``,
    ``<stem>.quarantine.csv``).
    """
    path = Path(path)
    csv_path = path.with_suffix(".index.csv")
    meta_path = path.with_suffix(".index.json")
    write_index(dataset, root, csv_path, meta_path, preprocess=preprocess, split=split,
                shard_size=2**62, on_bad_record=on_bad_record)
    make_part(csv_path, meta_path, root, 0, path, path.with_suffix(".quarantine.csv"),
              on_bad_record=on_bad_record)
    return path


# --- RecordSets and reading -------------------------------------------------------------------


def write_shard(
    path: str | os.PathLike, dataset: str, rs: RecordSet, split: np.ndarray, split_method: str
) -> Path:
    """Write a RecordSet as one shard, atomically: a crash never leaves a half-written file."""
    path = Path(path)
    split = np.asarray(split, dtype=np.uint8)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        writer = _PartWriter(f, rs.signals.shape[1], rs.signals.shape[2], len(rs.classes),
                             rs.patient_ids is not None)
        for i, record_id in enumerate(rs.record_ids):
            writer.add(rs.signals[i], rs.labels[i], record_id, int(split[i]),
                       rs.patient_ids[i] if rs.patient_ids is not None else None)
        writer.flush()
        _write_attrs(f, {
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

