"""The data stages: index an extracted dataset, then preprocess it into shard parts.

A dataset is indexed once (:func:`write_index`: record list, labels, split, and which part each
record goes to) and then sharded in a fixed number of parts (:func:`make_part`), each its own
job, so reading and preprocessing fan out over the machine or the cluster. The
readers (:mod:`ecg_transfer.datasets`) are imported here and nowhere in the training stage, so an
edit to a reader re-runs the shards and what depends on them through the data, not through the
training stage's code hash.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np

from ecg_transfer import datasets
from ecg_transfer.datasets import BadRecordError, DatasetIndex, check_on_bad_record, read
from ecg_transfer.datasets.settings import SCALINGS
from ecg_transfer.fileio import atomic_path
from ecg_transfer.shards import PartWriter, write_attrs
from ecg_transfer.splits import SPLIT_NAMES, SplitSpec, assign_split

__all__ = ["QUARANTINE_COLUMNS", "make_part", "make_shard", "read_index", "write_index"]

QUARANTINE_COLUMNS = ("record_id", "file", "reason")

log = logging.getLogger(__name__)


def write_index(
    dataset: str,
    root: str | os.PathLike,
    csv_path: str | os.PathLike,
    meta_path: str | os.PathLike,
    *,
    preprocess: dict,
    split: dict,
    parts: int,
    on_bad_record: str = "error",
    records: dict | None = None,
) -> dict:
    """Index an extracted dataset, assign the split, and cut it into parts; returns the meta.

    Writes ``csv_path`` (one row per record: the dataset index plus ``split``, -1 for records
    left out, and ``part``) and ``meta_path`` (JSON: classes, protocol settings, split method,
    ``n_parts`` and counts), both atomically. The records, in sorted order and dropped and
    quarantined ones included, are cut into ``parts`` consecutive runs of (nearly) equal length
    by position, so that the number of parts, and so every shard job, is known from the config
    before anything is read, and every
    record is listed by exactly one part. ``records`` is the dataset's ``records`` config section
    where it is a folder of records of the user's (None for a built-in dataset).
    """
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
        raise ValueError(f"datasets.{dataset}.parts is {parts!r}; expected an integer >= 1")
    idx = datasets.index(dataset, root, **preprocess, on_bad_record=on_bad_record,
                         records=records)
    table = idx.table
    ok = (table["status"] == datasets.OK).to_numpy()
    if not ok.any():
        first = table.iloc[0] if len(table) else None
        detail = f" (first: {first.record_id}: {first.reason})" if first is not None else ""
        raise ValueError(f"{dataset}: all {len(table)} records were left out{detail}")
    spec = SplitSpec(**split)
    kept = idx.where(ok)
    split_vec, method = assign_split(
        spec, kept.labels, protocol=kept.settings.protocol.name,
        default_val_size=kept.settings.protocol.default_val_size,
        folds=kept.table["fold"].to_numpy(np.int64),
        groups=kept.table["patient_id"].tolist() if kept.has_patients() else None,
        duplicate_keys=kept.table["hash"].tolist(),
    )
    column = np.full(len(table), -1, dtype=np.int64)
    column[ok] = split_vec
    table["split"] = column
    table["part"] = np.arange(len(table)) * parts // max(len(table), 1)
    meta = {
        **idx.meta(),
        "split_method": method,
        "split_spec": {k: v for k, v in vars(spec).items()},
        "n_parts": parts,
        **{f"n_{name}": int((split_vec == i).sum()) for i, name in enumerate(SPLIT_NAMES)},
    }
    meta["count_warnings"] = _count_warnings(dataset, idx, spec, meta)
    for row in table[table["status"] == datasets.DROPPED].itertuples(index=False):
        log.info("dropped %s: %s", row.record_id, row.reason)
    for warning in meta["count_warnings"]:
        log.warning("%s (stored in the index meta and the shard's count_warnings)", warning)
    log.info(
        "%s: %d records indexed (%d ok, %d dropped, %d bad), %d classes %s; split %s: %s; "
        "%d part(s) of about %d records",
        dataset, len(table), meta["n_ok"], meta["n_dropped"], meta["n_bad"], len(idx.classes),
        idx.classes, method,
        " / ".join(f"{meta[f'n_{name}']} {name}" for name in SPLIT_NAMES), parts,
        math.ceil(len(table) / parts),
    )
    with atomic_path(csv_path) as tmp:
        idx.to_csv(tmp)
    with atomic_path(meta_path) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _count_warnings(dataset: str, idx: DatasetIndex, spec: SplitSpec, meta: dict) -> list[str]:
    """The paper's record counts against this index's, where the run is the paper's setting.

    Only a paper-protocol index at the paper's rate, length and split can be compared; the
    demo's miniature mirrors, another rate or a fold split are not checked. A validation split
    carved from train counts as train (the paper had none).
    """
    settings = idx.settings
    if (settings.protocol.name != "paper" or settings.fs != 100 or settings.length != 1000
            or spec.test_fold is not None or spec.test_size != 0.33):
        return []
    return datasets.expected_count_warnings(dataset, meta["n_records"], meta["n_ok"],
                                            meta["n_train"] + meta["n_val"], meta["n_test"])


def read_index(
    csv_path: str | os.PathLike, meta_path: str | os.PathLike, root: str | os.PathLike
) -> tuple[DatasetIndex, dict]:
    """The index and meta `write_index` wrote, for the dataset extracted at ``root``."""
    try:
        meta = json.loads(Path(meta_path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{meta_path}: unreadable index meta ({exc})") from exc
    return DatasetIndex.read_csv(csv_path, meta, root), meta




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
        writer = PartWriter(f, 12, settings.length, len(idx.classes), patients)
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
        write_attrs(f, {
            "dataset": idx.dataset,
            "classes": list(idx.classes),
            "fs": settings.fs,
            "leads": list(idx.leads),
            "protocol": settings.protocol.name,
            "scaling": settings.scaling,
            "split_method": meta["split_method"],
            "count_warnings": json.dumps(meta.get("count_warnings", [])),
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
    if scaling not in SCALINGS:
        raise ValueError(f"{source}: preprocess.scaling is {scaling!r}; expected one of {SCALINGS}")
    return replace(settings, scaling=scaling)


def _write_quarantine(path: Path, rows: Sequence[tuple[str, str, str]]) -> None:
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(QUARANTINE_COLUMNS)
        out.writerows(sorted(rows))


def make_shard(
    dataset: str,
    root: str | os.PathLike,
    path: str | os.PathLike,
    *,
    preprocess: dict,
    split: dict,
    on_bad_record: str = "error",
    records: dict | None = None,
) -> Path:
    """Index, split and shard a whole dataset into one file (no Snakemake needed).

    ``preprocess``, ``split`` and ``records`` (a folder of records of the user's; None for a
    built-in dataset) are the dataset's config sections (see config.yaml). The index
    and the quarantine list are written beside ``path`` (``<stem>.index.csv``/``.json``,
    ``<stem>.quarantine.csv``).
    """
    path = Path(path)
    csv_path = path.with_suffix(".index.csv")
    meta_path = path.with_suffix(".index.json")
    write_index(dataset, root, csv_path, meta_path, preprocess=preprocess, split=split,
                parts=1, on_bad_record=on_bad_record, records=records)
    make_part(csv_path, meta_path, root, 0, path, path.with_suffix(".quarantine.csv"),
              on_bad_record=on_bad_record)
    return path
