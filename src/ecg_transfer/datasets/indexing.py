"""Phase 1 of reading a dataset: the index, one row per record, from headers and label files.

Two phases, because the first is cheap and serial (it decides the record list, the labels and
the split) and the second (`preprocessing.preprocess`, per record) is expensive and parallel:
any subset of index rows can be read and preprocessed by its own job. A reader finds its
dataset's records and hands each to an `IndexBuilder` (`add`, `drop` or `bad`), which applies
the protocol's rules and builds the `DatasetIndex`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import BadRecordError, as_bad_record, check_on_bad_record
from .protocols import no_upsampling
from .settings import Settings

logger = logging.getLogger(__name__)

# Index row status: kept, left out by the protocol's documented rules, or unreadable/malformed.
OK, DROPPED, BAD = "ok", "dropped", "bad"

_PROGRESS_EVERY = 1000

INDEX_COLUMNS = (
    "record_id",
    "file",
    "patient_id",
    "fold",
    "native_fs",
    "native_length",
    "hash",
    "status",
    "reason",
)
_LABEL_PREFIX = "label:"
_STR_COLUMNS = ("record_id", "file", "patient_id", "hash", "status", "reason")


@dataclass
class DatasetIndex:
    """Phase 1 of reading a dataset: one row per record, no signal read.

    `table` has INDEX_COLUMNS plus one `label:<class>` column per class (0/1), sorted by
    record_id. `file` is relative to `root` (the header, or Ribeiro's HDF5 file). `status` is
    OK, DROPPED (left out by the protocol's rules, e.g. too short; `reason` says why) or BAD
    (unreadable or malformed; only with on_bad_record="skip"). `hash` is the content hash of the
    raw signal bytes where the protocol needs it (sound), else empty. Callers may add columns
    (the shard stage adds `split` and `part`); they travel through to_csv/read_csv.
    """

    dataset: str
    root: Path
    settings: Settings
    classes: list[str]
    table: pd.DataFrame

    @property
    def labels(self) -> np.ndarray:
        cols = [f"{_LABEL_PREFIX}{c}" for c in self.classes]
        return self.table[cols].to_numpy(dtype=np.uint8).reshape(len(self.table), len(cols))

    @property
    def record_ids(self) -> list[str]:
        return self.table["record_id"].tolist()

    @property
    def leads(self) -> list[str]:
        """The order of the leads in every record `read` returns (what a shard must record)."""
        return list(self.settings.leads)

    def has_patients(self) -> bool:
        return bool((self.table["patient_id"] != "").any())

    def where(self, mask: np.ndarray | pd.Series) -> DatasetIndex:
        return DatasetIndex(
            self.dataset, self.root, self.settings, self.classes,
            self.table[np.asarray(mask)].reset_index(drop=True),
        )

    def to_csv(self, path: str | os.PathLike) -> None:
        self.table.to_csv(path, index=False)

    def left_out(self) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
        """What the index already left out: (record_id, reason) of the DROPPED rows and
        (record_id, file, reason) of the BAD ones, in index order."""
        t = self.table
        dropped = [(r, why) for r, st, why in zip(t.record_id, t.status, t.reason, strict=True)
                   if st == DROPPED]
        bad = [(r, f, why) for r, f, st, why in zip(t.record_id, t.file, t.status, t.reason,
                                                   strict=True) if st == BAD]
        return dropped, bad

    def meta(self) -> dict:
        counts = self.table["status"].value_counts()
        return {
            "dataset": self.dataset,
            "settings": self.settings.describe(),
            "classes": self.classes,
            "leads": self.leads,
            "n_records": len(self.table),
            **{f"n_{s}": int(counts.get(s, 0)) for s in (OK, DROPPED, BAD)},
        }

    @classmethod
    def read_csv(
        cls, path: str | os.PathLike, meta: Mapping, root: str | os.PathLike
    ) -> DatasetIndex:
        """The index a `to_csv` wrote; `meta` is what `meta()` returned (classes, settings)."""
        path = Path(path)
        try:
            table = pd.read_csv(
                path, dtype=dict.fromkeys(_STR_COLUMNS, str), keep_default_na=False
            )
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise ValueError(f"{path}: unreadable index CSV ({exc})") from exc
        classes = list(meta["classes"])
        wanted = [*INDEX_COLUMNS, *(f"{_LABEL_PREFIX}{c}" for c in classes)]
        missing = [c for c in wanted if c not in table.columns]
        if missing:
            raise ValueError(f"{path}: not a dataset index, missing column(s) {missing}")
        settings = Settings.from_description(meta["settings"])
        return cls(settings.dataset, Path(root), settings, classes, table)


class IndexBuilder:
    """Collects the index rows a reader finds and applies the protocol's drop rules to them.

    `on_bad_record="error"` raises the first BadRecordError handed to `bad`; "skip" keeps the
    record as a BAD row, so the shard stage lists it in its quarantine file.
    """

    def __init__(self, settings: Settings, root: Path, classes: Sequence[str], on_bad_record: str):
        self.settings = settings
        self.root = root
        self.classes = list(classes)
        self.on_bad_record = check_on_bad_record(on_bad_record)
        self._rows: list[dict] = []
        self._labels: list[np.ndarray] = []
        self._zero = np.zeros(len(self.classes), np.uint8)

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def add(
        self,
        record_id: str,
        file: Path,
        label: np.ndarray | Sequence[int],
        native_fs: float,
        native_length: int,
        *,
        patient_id: str = "",
        fold: int = -1,
        content_hash: str = "",
    ) -> None:
        """A readable record; DROPPED with the reason when the protocol's window does not fit.

        A record below the requested rate stops the index (ValueError, whatever on_bad_record
        says): no protocol upsamples, and the record is not damaged, the request is wrong. A rate
        that is no rate (0, inf) or one the protocol cannot reach fs from (the paper's integer
        decimation from 333 Hz) is this record's problem: a bad record naming its file.
        """
        s = self.settings
        if not (math.isfinite(native_fs) and native_fs > 0):
            self.bad(BadRecordError(
                record_id, file, f"sampling rate {native_fs!r}; expected a finite number of Hz > 0"
            ))
            return
        if native_fs < s.fs:
            raise ValueError(no_upsampling(file, native_fs, s.fs, s.protocol.name))
        status, reason = OK, ""
        try:
            out_length = s.protocol.resampled_length(native_length, native_fs, s.fs, file)
        except (ValueError, ArithmeticError) as exc:
            self.bad(as_bad_record(record_id, file, exc))
            return
        if out_length < s.length:
            status = DROPPED
            reason = (
                f"too short: {native_length} samples at {native_fs:g} Hz give {out_length} at "
                f"{s.fs:g} Hz; {s.length} needed"
            )
        self._append(record_id, file, label, native_fs, native_length, patient_id, fold,
                     content_hash, status, reason)

    def drop(self, record_id: str, file: Path, reason: str, *, patient_id: str = "") -> None:
        """Leave a record out for one of the protocol's documented reasons (listed in `dropped`)."""
        self._append(record_id, file, self._zero, 0.0, 0, patient_id, -1, "", DROPPED, reason)

    def bad(self, error: BadRecordError) -> None:
        if self.on_bad_record == "error":
            raise error
        logger.warning("bad record, quarantined: %s", error)
        self._append(error.record_id, Path(error.file), self._zero, 0.0, 0, "", -1, "", BAD,
                     error.reason)

    def _append(self, record_id, file, label, native_fs, native_length, patient_id, fold,
                content_hash, status, reason) -> None:
        self._rows.append({
            "record_id": str(record_id),
            "file": self.rel(Path(file)),
            "patient_id": patient_id,
            "fold": int(fold),
            "native_fs": float(native_fs),
            "native_length": int(native_length),
            "hash": content_hash,
            "status": status,
            "reason": reason,
        })
        self._labels.append(np.asarray(label, dtype=np.uint8))
        seen = len(self._rows)
        if seen % _PROGRESS_EVERY == 0:
            logger.info("%s: %d records indexed", self.settings.dataset, seen)

    def finish(self) -> DatasetIndex:
        table = pd.DataFrame(self._rows, columns=list(INDEX_COLUMNS))
        labels = (np.vstack(self._labels) if self._labels
                  else np.zeros((0, len(self.classes)), np.uint8))
        for j, name in enumerate(self.classes):
            table[f"{_LABEL_PREFIX}{name}"] = labels[:, j]
        if table["record_id"].duplicated().any():
            repeated = table.loc[table["record_id"].duplicated(), "record_id"].tolist()[:5]
            raise ValueError(f"{self.root}: record id(s) {repeated} appear twice")
        table = table.sort_values("record_id", kind="stable").reset_index(drop=True)
        logger.info(
            "%s: %d records indexed (%d ok, %d dropped, %d bad)", self.settings.dataset,
            len(table), (table.status == OK).sum(), (table.status == DROPPED).sum(),
            (table.status == BAD).sum(),
        )
        return DatasetIndex(self.settings.dataset, self.root, self.settings, self.classes, table)
