"""The result of reading a whole dataset (`datasets.load`): what the training code consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RecordSet:
    """One dataset, preprocessed: what the training code consumes."""

    signals: np.ndarray  # (N, 12, T) float32, leads in the order `leads` names
    labels: np.ndarray  # (N, C) uint8 multi-hot
    classes: list[str]  # label-column order
    record_ids: list[str]  # the dataset's own record names, sorted
    fs: float
    leads: list[str]  # standard names, in the order of axis 1 of `signals`
    patient_ids: list[str] | None  # where the dataset has them, else None
    folds: np.ndarray | None  # PTB-XL strat_fold (N,), else None
    dropped: list[tuple[str, str]]  # (record_id, reason) for every record left out
    protocol: str
    # (record_id, file, reason) of bad records left out with on_bad_record="skip"
    quarantined: list[tuple[str, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.record_ids)
        if self.signals.ndim != 3 or self.signals.shape[0] != n:
            raise ValueError(f"signals {self.signals.shape} do not match {n} record ids")
        if self.labels.shape != (n, len(self.classes)):
            raise ValueError(f"labels {self.labels.shape} do not match ({n}, {len(self.classes)})")
        if self.patient_ids is not None and len(self.patient_ids) != n:
            raise ValueError(f"{len(self.patient_ids)} patient ids for {n} records")
        if self.folds is not None and self.folds.shape != (n,):
            raise ValueError(f"folds {self.folds.shape} do not match {n} records")
