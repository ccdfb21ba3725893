"""What the results read: every scratch and fine-tuning job's saved predictions and log,
checked, and the pairings of a scratch with a fine-tuned model that every table compares.

The answer works from the saved test-set probabilities (``predictions.npz``), not from the F1
each job logged (aggregate.py), because a difference between two models is only worth
reporting with its uncertainty, and that needs the per-record predictions.

A job that could not make a selection of metrics.SELECTIONS (no validation split, so no
``validation_probs``) is left out of that selection's numbers. Pretraining jobs are skipped:
their test split is the upstream set's, with no scratch run to compare with. The training-set
*size axis* (jobs trained on a subsample of the downstream training split) enters only the
size table and figure; every other table uses the full-split jobs (``size=None``).

No torch and no Snakemake are imported, so the rule calling the answer needs neither, and the
tests write the input files by hand.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ecg_transfer.aggregate import _arch_order, _check_job, _read_metrics
from ecg_transfer.answer.formatting import fmt_size
from ecg_transfer.fileio import read_npz
from ecg_transfer.metrics import SELECTIONS

__all__ = [
    "FAMILIES",
    "THRESHOLD",
    "Comparison",
    "Run",
    "check_families",
    "check_selection",
    "load_runs",
    "pairings",
    "upstreams_of",
]


#: The architecture families the paper compares; ``families`` maps every architecture to one.
FAMILIES = ("CNN", "RNN")
#: The decision threshold of every F1 computed from saved probabilities (stats' default).
THRESHOLD = 0.5


@dataclass(frozen=True, eq=False)
class Run:
    """One scratch or fine-tuning job with what the results need from its two files.

    ``probs`` holds, per selection the job could make, its test-set probabilities (records x
    classes, float32). ``epoch_probs`` (epochs x records x classes, float16 as saved; row e-1 is
    metrics.csv's epoch e) are the test probabilities after every epoch, from which the paper
    selection's best epoch is taken again in every bootstrap replicate; None for files written
    before they were saved. ``size`` is None for the full training split; ``n_train`` is how
    many records it trained on (from the job's sidecar).
    """

    regime: str
    upstream: str | None
    downstream: str
    arch: str
    seed: int
    size: int | float | None
    n_train: int
    metrics: Path
    predictions: Path
    log: pd.DataFrame = field(repr=False)
    record_ids: np.ndarray = field(repr=False)
    y_true: np.ndarray = field(repr=False)
    classes: tuple[str, ...] = field(repr=False)
    probs: Mapping[str, np.ndarray] = field(repr=False)
    epoch_probs: np.ndarray | None = field(default=None, repr=False)

    @property
    def baseline_f1(self) -> float:
        return float(self.log["baseline_f1"].iloc[0])

    def describe(self) -> str:
        """How tables name the job: regime, datasets, architecture, size and seed."""
        origin = "scratch" if self.upstream is None else f"fine-tuned from {self.upstream}"
        size = "" if self.size is None else f", size {fmt_size(self.size)}"
        return f"{self.arch} {origin} on {self.downstream}{size}, seed {self.seed}"


def _check_size(size: object, index: int) -> int | float | None:
    """The size as config key size_axis.train_sizes allows it: None (full split), a record
    count >= 1, or a fraction of the train split strictly between 0 and 1."""
    expected = ("None (the full training split), a record count >= 1 or a fraction of the "
                "train split in (0, 1)")
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, (int, float, np.integer, np.floating)):
        raise ValueError(f"job {index}: size must be {expected}, got {size!r}")
    if math.isfinite(size) and 0 < size < 1:
        return float(size)
    if math.isfinite(size) and size >= 1 and float(size).is_integer():
        return int(size)
    raise ValueError(f"job {index}: size must be {expected}, got {size!r}")


def _sidecar_n_train(path: Path) -> int:
    """The training records of a job, from its sidecar (``records.train``)."""
    try:
        return int(json.loads(path.read_text())["records"]["train"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: cannot read records.train from the sidecar ({err})") from None


def _check_n_train(n_train: object, index: int) -> int:
    if isinstance(n_train, bool) or not isinstance(n_train, (int, np.integer)) or n_train < 1:
        raise ValueError(f"job {index}: n_train must be a positive integer (the training records "
                         f"in the job's sidecar), got {n_train!r}")
    return int(n_train)


def _read_predictions(path: Path) -> dict[str, object]:
    """Read and check one job's predictions.npz (train.write_predictions' format) without
    importing train (torch): every defect is reported with the file's path."""
    arrays = read_npz(path, "predictions .npz", ("record_ids", "y_true", "classes",
                                                   "paper_probs"), "train.write_predictions",
                      "record_ids, y_true, classes and <selection>_probs per selection (paper "
                      "always)")
    y = arrays["y_true"]
    if y.ndim != 2 or not np.isin(y, (0, 1)).all():
        raise ValueError(f"{path}: y_true must be a 2-D (records, classes) array of 0/1, got "
                         f"shape {y.shape}")
    ids, classes = arrays["record_ids"], arrays["classes"]
    if ids.shape != (len(y),) or len(np.unique(ids)) != len(ids):
        raise ValueError(f"{path}: record_ids must hold {len(y)} distinct ids (one per y_true "
                         f"row), got shape {ids.shape}")
    if classes.shape != (y.shape[1],):
        raise ValueError(f"{path}: classes has shape {classes.shape}, y_true has {y.shape[1]} "
                         "classes")
    probs = {}
    for name in SELECTIONS:
        p = arrays.get(f"{name}_probs")
        if p is None:
            continue  # a selection the job could not make
        if p.shape != y.shape:
            raise ValueError(f"{path}: {name}_probs has shape {p.shape}, y_true has {y.shape}")
        p = p.astype(np.float32)
        if not np.isfinite(p).all() or (p.size and (p.min() < 0.0 or p.max() > 1.0)):
            raise ValueError(f"{path}: {name}_probs must be finite probabilities in [0, 1]")
        probs[name] = p
    epochs = arrays.get("epoch_probs")
    if epochs is not None:
        if epochs.ndim != 3 or epochs.shape[1:] != y.shape or not len(epochs):
            raise ValueError(f"{path}: epoch_probs must be (epochs >= 1, records, classes) with "
                             f"(records, classes) = {y.shape}, got shape {epochs.shape}")
        if not np.isfinite(epochs).all() or epochs.min() < 0.0 or epochs.max() > 1.0:
            raise ValueError(f"{path}: epoch_probs must be finite probabilities in [0, 1]")
    return {"record_ids": ids.astype(str), "y_true": y.astype(np.int8),
            "classes": tuple(str(c) for c in classes), "probs": probs, "epoch_probs": epochs}


def load_runs(jobs: Sequence[Mapping[str, object]]) -> list[Run]:
    """Read every scratch and fine-tuning job's metrics.csv and predictions.npz and check them.

    Each job is a dict as for aggregate.collect plus ``predictions`` (path), ``n_train`` (or
    ``sidecar``, the job's model.json, to read it from) and optionally ``size`` (None or
    missing: the full split). Beyond each file's own checks, the comparisons need: every job of
    one downstream set scored on the same test records in the same order with the same labels
    and classes (else Δ would compare different test sets); the same ``n_train`` for every job
    of one downstream set and size; every subsample trained on fewer records than its set's
    full split, and different sizes on different record counts (the size axis is drawn against
    ``n_train``). ``size`` is as config key size_axis.train_sizes writes it: a record count or
    a fraction of the train split. A violation raises ValueError naming the files involved.
    """
    runs: list[Run] = []
    seen: dict[tuple, int] = {}
    for index, raw in enumerate(jobs):
        job = _check_job(raw, index)
        if job["regime"] == "pretrain":
            continue
        if "n_train" not in job and "sidecar" in job:
            job = {**job, "n_train": _sidecar_n_train(Path(str(job["sidecar"])))}
        missing = [k for k in ("predictions", "n_train") if k not in job]
        if missing:
            raise ValueError(f"job {index}: missing key(s) {missing}; the results need the "
                             "predictions file and the training-set size of every job (or "
                             "its sidecar model.json, which records it)")
        size = _check_size(job.get("size"), index)
        key = (job["downstream"], job["arch"], job["regime"], job["upstream"], size, job["seed"])
        if key in seen:
            raise ValueError(f"jobs {seen[key]} and {index} are the same job {key}")
        seen[key] = index
        predictions = Path(str(job["predictions"]))
        metrics = Path(str(job["metrics"]))
        read = _read_predictions(predictions)
        log = _read_metrics(metrics)
        if read["epoch_probs"] is not None and len(read["epoch_probs"]) != len(log):
            raise ValueError(f"{predictions}: epoch_probs holds {len(read['epoch_probs'])} "
                             f"epoch(s), {metrics} logs {len(log)}: the two files are from "
                             "different runs of the job; rerun it")
        runs.append(Run(
            regime=str(job["regime"]), upstream=job["upstream"],
            downstream=str(job["downstream"]), arch=str(job["arch"]), seed=int(job["seed"]),
            size=size, n_train=_check_n_train(job["n_train"], index), metrics=metrics,
            predictions=predictions, log=log, **read,
        ))
    _check_test_sets(runs)
    _check_train_sizes(runs)
    return runs


def _check_test_sets(runs: Sequence[Run]) -> None:
    reference: dict[str, Run] = {}
    for run in runs:
        ref = reference.setdefault(run.downstream, run)
        both = (f"{ref.predictions} and {run.predictions} (test predictions of "
                f"{ref.describe()} and of {run.describe()})")
        if not np.array_equal(ref.record_ids, run.record_ids):
            if len(ref.record_ids) != len(run.record_ids):
                detail = f"{len(ref.record_ids)} vs {len(run.record_ids)} records"
            else:
                i = int(np.flatnonzero(ref.record_ids != run.record_ids)[0])
                detail = (f"first difference at position {i}: {ref.record_ids[i]!r} vs "
                          f"{run.record_ids[i]!r}")
            raise ValueError(f"{both}: record_ids differ ({detail}); jobs of one downstream set "
                             "are compared record by record, so they must be scored on the same "
                             "test records in the same order")
        if ref.classes != run.classes:
            raise ValueError(f"{both}: classes differ ({list(ref.classes)} vs "
                             f"{list(run.classes)})")
        if not np.array_equal(ref.y_true, run.y_true):
            i = int(np.flatnonzero((ref.y_true != run.y_true).any(axis=1))[0])
            raise ValueError(f"{both}: y_true differs at record {ref.record_ids[i]!r} although "
                             "the record_ids agree")


def _check_train_sizes(runs: Sequence[Run]) -> None:
    first: dict[tuple, Run] = {}
    for run in runs:
        ref = first.setdefault((run.downstream, run.size), run)
        if ref.n_train != run.n_train:
            raise ValueError(f"jobs of {run.downstream!r}{_size_words(run.size)} trained on "
                             f"different numbers of records: n_train {ref.n_train} "
                             f"({ref.predictions}) vs {run.n_train} ({run.predictions}); a "
                             "scratch and a fine-tuned model are compared on one training set")
    by_records: dict[tuple[str, int], Run] = {}
    for (downstream, size), run in first.items():
        full = first.get((downstream, None))
        if size is not None and full is not None and run.n_train >= full.n_train:
            raise ValueError(f"{run.predictions}: size {fmt_size(size)} of {downstream!r} "
                             f"trained on {run.n_train} records, not fewer than its full "
                             f"training split ({full.n_train}, {full.predictions}); the full "
                             "split is the size axis' last point")
        other = by_records.setdefault((downstream, run.n_train), run)
        if other is not run:
            raise ValueError(f"{other.predictions} and {run.predictions}: sizes "
                             f"{fmt_size(other.size)} and {fmt_size(run.size)} of "
                             f"{downstream!r} both trained on {run.n_train} records; the size "
                             "axis needs one point per training-set size")


def _size_words(size: int | float | None) -> str:
    return " (full training split)" if size is None else f" at size {fmt_size(size)}"


# --------------------------------------------------------------------------------------------
# Pairings: one architecture, scratch vs fine-tuned from one upstream, on one training set


@dataclass(frozen=True)
class Comparison:
    """The scratch and the fine-tuned jobs (sorted by seed) of one architecture, upstream,
    downstream set and training-set size: what one row of a table compares."""

    downstream: str
    arch: str
    upstream: str
    size: int | float | None
    scratch: tuple[Run, ...]
    finetune: tuple[Run, ...]

    @property
    def n_train(self) -> int:
        return self.scratch[0].n_train

    def select(self, selection: str) -> Comparison | None:
        """The comparison restricted to the jobs that made ``selection``; None if a side has
        none left."""
        scratch = tuple(r for r in self.scratch if selection in r.probs)
        finetune = tuple(r for r in self.finetune if selection in r.probs)
        if not scratch or not finetune:
            return None
        return Comparison(self.downstream, self.arch, self.upstream, self.size, scratch,
                          finetune)

    def probs(self, selection: str) -> tuple[np.ndarray, np.ndarray]:
        """(seeds, records, classes) probabilities of scratch and fine-tuned."""
        return (np.stack([r.probs[selection] for r in self.scratch]),
                np.stack([r.probs[selection] for r in self.finetune]))


def pairings(runs: Sequence[Run], arch_order: Sequence[str] = (), *,
             selection: str | None = None, full_only: bool = False) -> list[Comparison]:
    """Every (scratch, fine-tuned) pairing in a stable order: downstream, architecture in
    ``arch_order``, upstream, size (full split last)."""
    scratch: dict[tuple, list[Run]] = {}
    finetune: dict[tuple, list[Run]] = {}
    for run in runs:
        if full_only and run.size is not None:
            continue
        if run.regime == "scratch":
            scratch.setdefault((run.downstream, run.arch, run.size), []).append(run)
        else:
            finetune.setdefault((run.downstream, run.arch, run.upstream, run.size),
                                []).append(run)
    out = []
    for (downstream, arch, upstream, size), ft in finetune.items():
        sc = scratch.get((downstream, arch, size))
        if sc is None:
            continue
        comparison = Comparison(downstream, arch, str(upstream), size,
                                tuple(sorted(sc, key=lambda r: r.seed)),
                                tuple(sorted(ft, key=lambda r: r.seed)))
        if selection is not None:
            comparison = comparison.select(selection)
        if comparison is not None:
            out.append(comparison)
    order = {a: i for i, a in enumerate(_arch_order([c.arch for c in out], arch_order))}
    return sorted(out, key=lambda c: (c.downstream, order[c.arch], c.upstream, c.n_train))


def check_selection(selection: str) -> None:
    if selection not in SELECTIONS:
        raise ValueError(f"selection is {selection!r}, expected one of {list(SELECTIONS)}")


def check_families(runs: Sequence[Run], families: Mapping[str, str]) -> None:
    bad = {a: f for a, f in families.items() if f not in FAMILIES}
    if bad:
        raise ValueError(f"families: {bad} is not one of {list(FAMILIES)}")
    missing = sorted({r.arch for r in runs} - set(families))
    if missing:
        raise ValueError(f"families: no family for architecture(s) {missing}; map each to one "
                         f"of {list(FAMILIES)}")


def upstreams_of(runs: Sequence[Run]) -> list[str]:
    """Every upstream of the run, sorted: what fixes the upstream colours of all figures."""
    return sorted({str(r.upstream) for r in runs if r.upstream is not None})
