"""HDF5 shards: the one on-disk format every training job reads.

A shard holds a whole preprocessed dataset with its split, so a training job opens one file,
loads it into memory once and slices batches from it.

Layout::

    signals     (N, leads, samples) float32
    labels      (N, C) uint8 multi-hot
    record_ids  (N,) utf-8 strings, the dataset's own record names
    split       (N,) uint8, index into attrs["split_names"] (train, test, val)
    patient_ids (N,) utf-8 strings, only where the dataset has patients
    attrs: dataset, classes, fs, leads, protocol, split_names, split_method, n_train, n_test,
           n_val, dropped (JSON list of [record_id, reason])
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from ecg_transfer.fileio import atomic_path

if TYPE_CHECKING:  # the readers pull in wfdb, scipy and pandas: training jobs need none of it
    from ecg_transfer.datasets import RecordSet

SPLIT_NAMES = ("train", "test", "val")
TRAIN, TEST, VAL = 0, 1, 2


@dataclass(frozen=True)
class SplitSpec:
    """How a dataset is divided.

    The paper's is ``train_test_split(test_size=0.33, random_state=1)``.

    ``test_fold`` (PTB-XL) uses the dataset's own ``strat_fold`` instead of a random split.
    """

    test_size: float = 0.33
    random_state: int = 1
    stratify: bool = False
    test_fold: int | None = None


def split_records(rs: RecordSet, spec: SplitSpec) -> tuple[np.ndarray, str]:
    """Assign each record to train or test; return the split vector and a description of it.

    Records are sorted by name before splitting (the readers guarantee it), so the split is the
    same on every machine, unlike the paper's glob-ordered lists.
    """
    n = len(rs.record_ids)
    split = np.full(n, TRAIN, dtype=np.uint8)
    if spec.test_fold is not None:
        if rs.folds is None:
            raise ValueError(
                f"split.test_fold={spec.test_fold} but dataset has no folds (only PTB-XL has "
                "strat_fold); remove test_fold from its split config"
            )
        split[rs.folds == spec.test_fold] = TEST
        if not (split == TEST).any():
            raise ValueError(f"split.test_fold={spec.test_fold}: no record is in that fold")
        return split, f"strat_fold == {spec.test_fold} is test, the other folds train"
    from sklearn.model_selection import train_test_split

    stratify = None
    method = (
        f"train_test_split(test_size={spec.test_size}, random_state={spec.random_state}"
    )
    if spec.stratify:
        stratify = _stratification_groups(rs.labels)
        method += ", stratify=label combination (combinations seen once pooled)"
    idx = np.arange(n)
    _, test_idx = train_test_split(
        idx, test_size=spec.test_size, random_state=spec.random_state, stratify=stratify
    )
    split[test_idx] = TEST
    return split, method + ")"


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


def write_shard(
    path: str | os.PathLike, dataset: str, rs: RecordSet, split: np.ndarray, split_method: str
) -> Path:
    """Write a shard atomically: a crash never leaves a half-written file under ``path``."""
    path = Path(path)
    str_dtype = h5py.string_dtype("utf-8")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("signals", data=rs.signals.astype(np.float32, copy=False),
                         chunks=(1, *rs.signals.shape[1:]) if len(rs.signals) else None)
        f.create_dataset("labels", data=rs.labels.astype(np.uint8, copy=False))
        f.create_dataset("record_ids", data=np.array(rs.record_ids, dtype=object),
                         dtype=str_dtype)
        f.create_dataset("split", data=split.astype(np.uint8))
        if rs.patient_ids is not None:
            f.create_dataset("patient_ids", data=np.array(rs.patient_ids, dtype=object),
                             dtype=str_dtype)
        f.attrs["dataset"] = dataset
        f.attrs["classes"] = list(rs.classes)
        f.attrs["fs"] = float(rs.fs)
        f.attrs["leads"] = list(rs.leads)
        f.attrs["protocol"] = rs.protocol
        f.attrs["split_names"] = list(SPLIT_NAMES)
        f.attrs["split_method"] = split_method
        for i, name in enumerate(SPLIT_NAMES):
            f.attrs[f"n_{name}"] = int((split == i).sum())
        f.attrs["dropped"] = json.dumps([list(d) for d in rs.dropped])
    return path


@dataclass
class Shard:
    """A shard in memory: what a training job needs."""

    signals: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    record_ids: list[str]
    classes: list[str]
    fs: float
    leads: list[str]
    dataset: str
    protocol: str

    def part(self, which: int) -> tuple[np.ndarray, np.ndarray]:
        mask = self.split == which
        return self.signals[mask], self.labels[mask]


def read_shard(path: str | os.PathLike) -> Shard:
    """Load a whole shard into memory (the datasets are small: PTB-XL at 100 Hz is ~1 GB)."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            missing = {"signals", "labels", "split", "record_ids"} - set(f.keys())
            if missing:
                raise ValueError(f"{path}: not a shard, missing datasets {sorted(missing)}")
            return Shard(
                signals=f["signals"][...],
                labels=f["labels"][...],
                split=f["split"][...],
                record_ids=[s.decode() if isinstance(s, bytes) else s for s in f["record_ids"]],
                classes=[str(c) for c in f.attrs["classes"]],
                fs=float(f.attrs["fs"]),
                leads=[str(c) for c in f.attrs["leads"]],
                dataset=str(f.attrs["dataset"]),
                protocol=str(f.attrs["protocol"]),
            )
    except OSError as e:
        raise ValueError(f"{path}: cannot read shard ({e})") from e


def make_shard(
    dataset: str,
    root: str | os.PathLike,
    path: str | os.PathLike,
    *,
    preprocess: dict,
    split: dict,
) -> Path:
    """Read an extracted dataset with its preprocessing protocol, split it, write its shard.

    ``preprocess`` and ``split`` are the dataset's config sections (see config.yaml).
    """
    from ecg_transfer import datasets

    log = logging.getLogger(__name__)
    rs = datasets.load(dataset, root, **preprocess)
    for record_id, reason in rs.dropped:
        log.info("dropped %s: %s", record_id, reason)
    split_vec, method = split_records(rs, SplitSpec(**split))
    log.info(
        "%s: %d records (%d dropped), %d classes %s, fs %g, %d samples; split %s: %d train / "
        "%d test",
        dataset, len(rs.record_ids), len(rs.dropped), len(rs.classes), rs.classes, rs.fs,
        rs.signals.shape[-1], method, (split_vec == TRAIN).sum(), (split_vec == TEST).sum(),
    )
    return write_shard(path, dataset, rs, split_vec, method)
