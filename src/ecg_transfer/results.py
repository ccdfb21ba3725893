"""The study's answer: does fine-tuning beat training from scratch, by how much, and how sure.

aggregate.py tabulates the F1 each job logged; this module works from the saved test-set
probabilities (``predictions.npz``) instead, because a difference between two models is only
worth reporting with its uncertainty, and that needs the per-record predictions: Δ = F1(fine-
tuned) - F1(scratch) gets a paired bootstrap interval over the downstream test records (and
seeds), computed by stats.py. From those numbers the module writes the tables, two figures and
``claims.md``, where every claim of the paper gets a verdict computed by code from this run's
numbers, never typed by hand.

The two model selections of metrics.SELECTIONS are never mixed: every table and figure exists
once per selection. A job that could not make a selection (no validation split, so no
``validation_probs``) is left out of that selection's numbers, and the selection's tables list
it. Pretraining jobs are skipped: their test split is the upstream set's, with no scratch run to
compare with.

The training-set *size axis* (jobs trained on a subsample of the downstream training split)
enters only the size table and figure; every other table uses the full-split jobs
(``size=None``).

No torch and no Snakemake are imported, so the rule calling :func:`write_results` needs neither,
and the tests write the input files by hand.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import NullFormatter

from ecg_transfer.aggregate import (
    _arch_order,
    _atomic_write_bytes,
    _check_job,
    _mean_curve,
    _read_metrics,
    _write_figure,
)
from ecg_transfer.fileio import read_npz
from ecg_transfer.metrics import SELECTIONS
from ecg_transfer.stats import (
    MeanDelta,
    _bootstrap_pairs,
    _check_bootstrap_args,
    _Pair,
    _percentile_interval,
    _seeded_probs,
    _test_labels,
    bootstrap_mean_delta,
    convergence,
    crossover,
    macro_auroc,
    paired_bootstrap_delta,
)

__all__ = [
    "CONVERGENCE_COLUMNS",
    "CONVERGENCE_TOLERANCE",
    "FAMILIES",
    "FAMILY_COLUMNS",
    "NOT_SUPPORTED",
    "NOT_TESTABLE",
    "SIZE_COLUMNS",
    "SUPPORTED",
    "TRANSFER_COLUMNS",
    "Claim",
    "Run",
    "Tables",
    "claims_markdown",
    "compute_tables",
    "convergence_markdown",
    "convergence_table",
    "evaluate_claims",
    "family_markdown",
    "family_table",
    "load_runs",
    "output_paths",
    "plot_gain_heatmap",
    "plot_size_curve",
    "size_markdown",
    "size_table",
    "transfer_markdown",
    "transfer_table",
    "write_results",
    "write_table",
]

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
NOT_TESTABLE = "not testable with this run"
#: The architecture families the paper compares; ``families`` maps every architecture to one.
FAMILIES = ("CNN", "RNN")
#: Within this much F1 of the best scratch F1 counts as "reached" (stats.convergence): the
#: convergence claim is about reaching scratch's level, not its last noisy peak.
CONVERGENCE_TOLERANCE = 0.01
#: The label of the family table's difference row.
_DIFFERENCE = "CNN - RNN"

_STAT_COLUMNS = (
    "n_train", "n_test", "seeds_scratch", "seeds_finetune",
    "scratch_f1", "scratch_sd", "finetune_f1", "finetune_sd", "delta", "low", "high",
    "excludes_zero", "scratch_auroc", "finetune_auroc", "delta_auroc", "auroc_classes",
    "n_classes", "baseline_f1", "n_boot", "level",
)
#: Columns of :func:`transfer_table`, in order.
TRANSFER_COLUMNS = ("selection", "downstream", "arch", "upstream", *_STAT_COLUMNS)
#: Columns of :func:`size_table`: ``size`` is the subsample as configured (a record count or a
#: fraction of the train split; empty for the full split, ``full_split``); ``n_train``, the
#: records actually trained on, is the x axis, and ``crossover`` (per curve: downstream, arch,
#: upstream) is in its units.
SIZE_COLUMNS = ("selection", "downstream", "arch", "upstream", "size", "full_split",
                *_STAT_COLUMNS, "crossover", "crossover_monotone")
#: Columns of :func:`family_table`; the ``CNN - RNN`` row has ``n_pairs`` of both families.
FAMILY_COLUMNS = ("selection", "family", "delta", "low", "high", "excludes_zero", "n_pairs",
                  "n_downstream", "n_boot", "level")
#: Columns of :func:`convergence_table`; epochs are 1-based, empty where not reached.
CONVERGENCE_COLUMNS = ("downstream", "arch", "upstream", "seeds_scratch", "seeds_finetune",
                       "epochs_scratch", "epochs_finetune", "tolerance", "target",
                       "scratch_epoch", "finetune_epoch", "epochs_saved")


# --------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True, eq=False)
class Run:
    """One scratch or fine-tuning job with what the results need from its two files.

    ``probs`` holds, per selection the job could make, its test-set probabilities (records x
    classes, float32: the float16 saved values, exactly). ``size`` is None for the full training
    split; ``n_train`` is how many records it trained on (from the job's sidecar).
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

    @property
    def baseline_f1(self) -> float:
        return float(self.log["baseline_f1"].iloc[0])

    def describe(self) -> str:
        """How tables name the job: regime, datasets, architecture, size and seed."""
        origin = "scratch" if self.upstream is None else f"fine-tuned from {self.upstream}"
        size = "" if self.size is None else f", size {_fmt_size(self.size)}"
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
    return {"record_ids": ids.astype(str), "y_true": y.astype(np.int8),
            "classes": tuple(str(c) for c in classes), "probs": probs}


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
        runs.append(Run(
            regime=str(job["regime"]), upstream=job["upstream"],
            downstream=str(job["downstream"]), arch=str(job["arch"]), seed=int(job["seed"]),
            size=size, n_train=_check_n_train(job["n_train"], index), metrics=metrics,
            predictions=predictions, log=_read_metrics(metrics), **read,
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
            raise ValueError(f"{run.predictions}: size {_fmt_size(size)} of {downstream!r} "
                             f"trained on {run.n_train} records, not fewer than its full "
                             f"training split ({full.n_train}, {full.predictions}); the full "
                             "split is the size axis' last point")
        other = by_records.setdefault((downstream, run.n_train), run)
        if other is not run:
            raise ValueError(f"{other.predictions} and {run.predictions}: sizes "
                             f"{_fmt_size(other.size)} and {_fmt_size(run.size)} of "
                             f"{downstream!r} both trained on {run.n_train} records; the size "
                             "axis needs one point per training-set size")


def _size_words(size: int | float | None) -> str:
    return " (full training split)" if size is None else f" at size {_fmt_size(size)}"


# --------------------------------------------------------------------------------------------
# Comparisons: one architecture, scratch vs fine-tuned from one upstream, on one training set


@dataclass(frozen=True)
class _Comparison:
    downstream: str
    arch: str
    upstream: str
    size: int | float | None
    scratch: tuple[Run, ...]
    finetune: tuple[Run, ...]

    @property
    def n_train(self) -> int:
        return self.scratch[0].n_train

    def select(self, selection: str) -> _Comparison | None:
        """The comparison restricted to the jobs that made ``selection``; None if a side has
        none left."""
        scratch = tuple(r for r in self.scratch if selection in r.probs)
        finetune = tuple(r for r in self.finetune if selection in r.probs)
        if not scratch or not finetune:
            return None
        return _Comparison(self.downstream, self.arch, self.upstream, self.size, scratch,
                           finetune)

    def probs(self, selection: str) -> tuple[np.ndarray, np.ndarray]:
        """(seeds, records, classes) probabilities of scratch and fine-tuned."""
        return (np.stack([r.probs[selection] for r in self.scratch]),
                np.stack([r.probs[selection] for r in self.finetune]))


def _comparisons(runs: Sequence[Run], arch_order: Sequence[str] = (), *,
                 selection: str | None = None, full_only: bool = False) -> list[_Comparison]:
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
        comparison = _Comparison(downstream, arch, str(upstream), size,
                                 tuple(sorted(sc, key=lambda r: r.seed)),
                                 tuple(sorted(ft, key=lambda r: r.seed)))
        if selection is not None:
            comparison = comparison.select(selection)
        if comparison is not None:
            out.append(comparison)
    order = {a: i for i, a in enumerate(_arch_order([c.arch for c in out], arch_order))}
    return sorted(out, key=lambda c: (c.downstream, order[c.arch], c.upstream, c.n_train))


def _check_selection(selection: str) -> None:
    if selection not in SELECTIONS:
        raise ValueError(f"selection is {selection!r}, expected one of {list(SELECTIONS)}")


def _check_families(runs: Sequence[Run], families: Mapping[str, str]) -> None:
    bad = {a: f for a, f in families.items() if f not in FAMILIES}
    if bad:
        raise ValueError(f"families: {bad} is not one of {list(FAMILIES)}")
    missing = sorted({r.arch for r in runs} - set(families))
    if missing:
        raise ValueError(f"families: no family for architecture(s) {missing}; map each to one "
                         f"of {list(FAMILIES)}")


def _upstreams(runs: Sequence[Run]) -> list[str]:
    return sorted({str(r.upstream) for r in runs if r.upstream is not None})


# --------------------------------------------------------------------------------------------
# Tables


def _stat_row(c: _Comparison, selection: str, n_boot: int, seed: int,
              level: float) -> dict[str, object]:
    y = c.scratch[0].y_true
    probs_a, probs_b = c.probs(selection)
    d = paired_bootstrap_delta(y, probs_a, probs_b, n_boot=n_boot, seed=seed, level=level)
    auroc_a = [macro_auroc(y, p) for p in probs_a]
    auroc_b = [macro_auroc(y, p) for p in probs_b]
    mean_a = float(np.mean([a.value for a in auroc_a]))
    mean_b = float(np.mean([b.value for b in auroc_b]))
    return {
        "selection": selection, "downstream": c.downstream, "arch": c.arch,
        "upstream": c.upstream, "n_train": c.n_train, "n_test": len(y),
        "seeds_scratch": d.n_seeds_a, "seeds_finetune": d.n_seeds_b,
        "scratch_f1": d.f1_a, "scratch_sd": d.sd_a, "finetune_f1": d.f1_b,
        "finetune_sd": d.sd_b, "delta": d.delta, "low": d.low, "high": d.high,
        "excludes_zero": not d.low <= 0.0 <= d.high,
        "scratch_auroc": mean_a, "finetune_auroc": mean_b, "delta_auroc": mean_b - mean_a,
        "auroc_classes": auroc_a[0].n_used, "n_classes": y.shape[1],
        "baseline_f1": float(np.mean([r.baseline_f1 for r in c.scratch + c.finetune])),
        "n_boot": n_boot, "level": level,
    }


def transfer_table(runs: Sequence[Run], selection: str, *, n_boot: int, seed: int,
                   level: float, arch_order: Sequence[str] = ()) -> pd.DataFrame:
    """Δ F1 (fine-tuned - scratch) per downstream x architecture x upstream, full split only.

    One row per pairing that has at least one scratch and one fine-tuned job making
    ``selection``; F1s are means over seeds (sd over seeds, NaN with one). The interval is the
    paired bootstrap of stats.paired_bootstrap_delta (records resampled once for both models,
    seeds resampled independently per model). Macro AUROC is the threshold-free companion: a Δ
    F1 that AUROC does not echo may be a threshold effect. ``baseline_f1`` (the best constant
    predictor, from metrics.csv) says whether either model learnt anything from the ECG.
    """
    _check_selection(selection)
    _check_bootstrap_args(n_boot, seed, level)
    rows = [_stat_row(c, selection, n_boot, seed, level)
            for c in _comparisons(runs, arch_order, selection=selection, full_only=True)]
    return pd.DataFrame(rows, columns=list(TRANSFER_COLUMNS))


def size_table(runs: Sequence[Run], selection: str, *, n_boot: int, seed: int, level: float,
               arch_order: Sequence[str] = ()) -> pd.DataFrame:
    """Δ F1 and its interval against the training-set size, with each curve's crossover.

    A curve is one downstream x architecture x upstream with at least one subsampled point; its
    full-split pairing joins it as the largest point. Points sit at ``n_train``, the records
    each trained on (from the sidecar), since a configured size may be a count or a fraction of
    the split. ``crossover`` is stats.crossover: the smallest ``n_train`` whose interval
    includes 0 (NaN: none does); ``crossover_monotone`` is False when a larger size excludes 0
    again, so that one number would mislead. Empty without a size axis.
    """
    _check_selection(selection)
    _check_bootstrap_args(n_boot, seed, level)
    curves: dict[tuple, list[_Comparison]] = {}
    for c in _comparisons(runs, arch_order, selection=selection):
        curves.setdefault((c.downstream, c.arch, c.upstream), []).append(c)
    rows = []
    for points in curves.values():
        if all(c.size is None for c in points):
            continue
        stats = [_stat_row(c, selection, n_boot, seed, level) for c in points]
        sizes = [c.n_train for c in points]
        intervals = [(s["low"], s["high"]) for s in stats]
        cross = crossover(sizes, intervals)
        monotone = cross is None or all(lo <= 0.0 <= hi for x, (lo, hi)
                                        in zip(sizes, intervals, strict=True) if x >= cross)
        for c, s in zip(points, stats, strict=True):
            rows.append({**s, "size": math.nan if c.size is None else c.size,
                         "full_split": c.size is None,
                         "crossover": math.nan if cross is None else cross,
                         "crossover_monotone": monotone})
    return pd.DataFrame(rows, columns=list(SIZE_COLUMNS))


def _groups(comparisons: Sequence[_Comparison], selection: str
            ) -> dict[str, tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]]:
    """bootstrap_mean_delta's input: pairs grouped by the downstream test set they share."""
    groups: dict[str, tuple[np.ndarray, list]] = {}
    for c in comparisons:
        groups.setdefault(c.downstream, (c.scratch[0].y_true, []))[1].append(c.probs(selection))
    return groups


def _family_difference(cnn: Sequence[_Comparison], rnn: Sequence[_Comparison], selection: str,
                       n_boot: int, seed: int, level: float) -> tuple[float, float, float]:
    """Mean Δ of the CNN pairs minus mean Δ of the RNN pairs, with a percentile interval.

    stats has no public call returning replicate draws, so this uses its internal
    ``_bootstrap_pairs`` (the engine behind bootstrap_mean_delta) on all pairs of both families
    at once: each replicate draws one record resample per downstream test set, shared by every
    CNN and RNN pair scored on it (their Δs move together with the records drawn, so the
    difference's interval must keep that correlation), sets resampled independently, seeds as
    in paired_bootstrap_delta; the replicate difference is the mean over the replicate's CNN
    pairs minus the mean over its RNN pairs, each family's pairs weighing equally within it.
    """
    by_set: dict[str, tuple[np.ndarray, list[_Pair], list[bool]]] = {}
    for family_is_cnn, comparisons in ((True, cnn), (False, rnn)):
        for c in comparisons:
            y, pairs, flags = by_set.setdefault(
                c.downstream, (_test_labels(c.scratch[0].y_true, c.downstream), [], []))
            a, b = c.probs(selection)
            pairs.append(_Pair(_seeded_probs(a, "scratch probs", y.shape),
                               _seeded_probs(b, "fine-tuned probs", y.shape)))
            flags.append(family_is_cnn)
    groups = [(y, pairs) for y, pairs, _ in by_set.values()]
    is_cnn = np.array([f for _, _, flags in by_set.values() for f in flags])
    stats = _bootstrap_pairs(groups, n_boot, seed, 0.5)
    replicates = np.stack([s.deltas for s in stats])
    point = np.array([s.f1_b.mean() - s.f1_a.mean() for s in stats])
    diff = replicates[is_cnn].mean(axis=0) - replicates[~is_cnn].mean(axis=0)
    low, high = _percentile_interval(diff, level)
    return float(point[is_cnn].mean() - point[~is_cnn].mean()), low, high


def family_table(runs: Sequence[Run], selection: str, *, families: Mapping[str, str],
                 n_boot: int, seed: int, level: float) -> pd.DataFrame:
    """Mean Δ per architecture family (full split) and the difference CNN - RNN.

    A family's row is stats.bootstrap_mean_delta over all its pairs, grouped by downstream test
    set (pairs on one set share each replicate's record resample; every pair weighs the same).
    The ``CNN - RNN`` row, present only when both families have pairs, resamples both families'
    pairs jointly (see :func:`_family_difference`), so its interval is not derived from the two
    family intervals.
    """
    _check_selection(selection)
    _check_bootstrap_args(n_boot, seed, level)
    _check_families(runs, families)
    comparisons = _comparisons(runs, selection=selection, full_only=True)
    by_family = {f: [c for c in comparisons if families[c.arch] == f] for f in FAMILIES}
    rows = []
    for family, members in by_family.items():
        if not members:
            continue
        md = bootstrap_mean_delta(_groups(members, selection), n_boot=n_boot, seed=seed,
                                  level=level)
        rows.append({"family": family, "delta": md.delta, "low": md.low, "high": md.high,
                     "n_pairs": md.n_pairs, "n_downstream": md.n_groups})
    if all(by_family.values()):
        delta, low, high = _family_difference(by_family["CNN"], by_family["RNN"], selection,
                                              n_boot, seed, level)
        members = by_family["CNN"] + by_family["RNN"]
        rows.append({"family": _DIFFERENCE, "delta": delta, "low": low, "high": high,
                     "n_pairs": len(members),
                     "n_downstream": len({c.downstream for c in members})})
    for row in rows:
        row.update(selection=selection, excludes_zero=not row["low"] <= 0.0 <= row["high"],
                   n_boot=n_boot, level=level)
    return pd.DataFrame(rows, columns=list(FAMILY_COLUMNS))


def convergence_table(runs: Sequence[Run], *, tolerance: float = CONVERGENCE_TOLERANCE,
                      arch_order: Sequence[str] = ()) -> pd.DataFrame:
    """Epochs each regime needs to come within ``tolerance`` of the best scratch test F1.

    Per full-split pairing, on the per-epoch test F1 of metrics.csv averaged over seeds (an
    epoch some seeds lack averages the others), via stats.convergence. It is the same under
    both selections: it reads whole curves, not one selected epoch. ``epochs_saved`` > 0 means
    fine-tuning got there sooner; empty where fine-tuning never reached the target.
    """
    rows = []
    for c in _comparisons(runs, arch_order, full_only=True):
        scratch = _mean_curve([r.log for r in c.scratch]).to_numpy()
        finetune = _mean_curve([r.log for r in c.finetune]).to_numpy()
        conv = convergence(scratch, finetune, tolerance)
        rows.append({
            "downstream": c.downstream, "arch": c.arch, "upstream": c.upstream,
            "seeds_scratch": len(c.scratch), "seeds_finetune": len(c.finetune),
            "epochs_scratch": len(scratch), "epochs_finetune": len(finetune),
            "tolerance": tolerance, "target": conv.target, "scratch_epoch": conv.scratch_epoch,
            "finetune_epoch": conv.finetune_epoch, "epochs_saved": conv.epochs_saved,
        })
    df = pd.DataFrame(rows, columns=list(CONVERGENCE_COLUMNS))
    for col in ("scratch_epoch", "finetune_epoch", "epochs_saved"):
        df[col] = df[col].astype("Int64")
    return df


@dataclass(frozen=True)
class Tables:
    """Every table of one run: per selection (keys of metrics.SELECTIONS) and the convergence
    table, which does not depend on the selection. ``sizes`` is empty without a size axis."""

    transfer: dict[str, pd.DataFrame]
    families: dict[str, pd.DataFrame]
    convergence: pd.DataFrame
    sizes: dict[str, pd.DataFrame]


def compute_tables(runs: Sequence[Run], *, families: Mapping[str, str], n_boot: int, seed: int,
                   level: float, arch_order: Sequence[str] = ()) -> Tables:
    """All tables, computed once, so that the claims and figures quote the same numbers."""
    _check_families(runs, families)
    boot = {"n_boot": n_boot, "seed": seed, "level": level}
    sized = any(r.size is not None for r in runs)
    return Tables(
        transfer={s: transfer_table(runs, s, arch_order=arch_order, **boot) for s in SELECTIONS},
        families={s: family_table(runs, s, families=families, **boot) for s in SELECTIONS},
        convergence=convergence_table(runs, arch_order=arch_order),
        sizes={s: size_table(runs, s, arch_order=arch_order, **boot) for s in SELECTIONS}
        if sized else {},
    )


# --------------------------------------------------------------------------------------------
# Markdown


def _f(value: object, sign: bool = False) -> str:
    if value is None or pd.isna(value):
        return "—"
    return f"{value:+.3f}" if sign else f"{value:.3f}"


def _mean_sd(mean: float, sd: float) -> str:
    return _f(mean) if pd.isna(sd) else f"{mean:.3f} ± {sd:.3f}"


def _interval(low: float, high: float) -> str:
    return f"[{low:+.3f}, {high:+.3f}]"


def _pct(level: float) -> str:
    return f"{round(level * 100, 6):g}%"


def _level_of(table: pd.DataFrame) -> str:
    """The interval level as captions print it ("95% "), or "" for an empty table."""
    return _pct(float(table["level"].iloc[0])) + " " if len(table) else ""


def _fmt_size(size: float | None) -> str:
    if size is None or pd.isna(size):
        return "full"
    return f"{size:g}" if isinstance(size, float) else str(size)


def _selection_intro(selection: str) -> str:
    return f"**{selection.capitalize()} selection**: {SELECTIONS[selection][1]}."


def _lacking(runs: Sequence[Run], selection: str) -> list[Run]:
    return [r for r in runs if selection not in r.probs]


def _lacking_note(runs: Sequence[Run], selection: str) -> str:
    lacking = _lacking(runs, selection)
    if not lacking:
        return ""
    if len(lacking) == len(runs):
        return (f"No job could make the {selection} selection (no `{selection}_probs` in any "
                "predictions file: no validation split), so this table has no rows.\n")
    listed = "\n".join(f"* {r.describe()} (`{r.predictions}`)" for r in lacking)
    return (f"{len(lacking)} of {len(runs)} jobs could not make the {selection} selection "
            f"(no `{selection}_probs`) and are left out of it:\n\n{listed}\n")


def _unpaired_note(runs: Sequence[Run], sized: bool) -> str:
    """Jobs no table row uses because the other regime is missing for them (said, not
    silently dropped: a failed or forgotten job should show)."""
    considered = [r for r in runs if (r.size is not None) == sized]
    used = {id(r) for c in _comparisons(considered) for r in c.scratch + c.finetune}
    unpaired = [r for r in considered if id(r) not in used]
    if not unpaired:
        return ""
    listed = "\n".join(f"* {r.describe()} (`{r.predictions}`)" for r in unpaired)
    return ("Jobs without a counterpart of the other regime (same architecture, downstream set "
            f"and training size), so in no row:\n\n{listed}\n")


def transfer_markdown(table: pd.DataFrame, selection: str, *,
                      runs: Sequence[Run] = ()) -> str:
    """The transfer table of one selection as Markdown, with a caption saying how to read it;
    ``runs`` (all jobs) lets it list the jobs that could not make the selection."""
    level = _level_of(table)
    parts = [
        f"# Fine-tuned vs scratch: Δ F1 with {level}intervals ({selection} selection)\n",
        _selection_intro(selection) + "\n",
        "Each row compares one architecture trained from scratch on a downstream set with the "
        "same architecture fine-tuned from an upstream set, both on the full training split "
        "(`n train` records). F1 is the support-weighted F1 at a 0.5 threshold, recomputed from "
        "the saved test probabilities; `mean ± sd` over seeds where there are several. "
        f"`Δ` = fine-tuned - scratch; its {level}interval is a paired bootstrap over test "
        "records (both models scored on the same resample; seeds resampled too). `*`: the "
        "interval excludes 0, the difference is more than test-set noise. AUROC is the "
        "unweighted mean over classes (`†`: over fewer classes than the table has, some lacking "
        "positives or negatives in the test set). `constant` is the best F1 of a predictor that "
        "ignores the ECG.\n",
    ]
    note = _lacking_note(runs, selection)
    parts += [n for n in (note, _unpaired_note(runs, sized=False)) if n]
    if table.empty:
        if not note:
            parts.append(f"No downstream set has both a scratch and a fine-tuned job making the "
                         f"{selection} selection, so this table has no rows.\n")
        return "\n".join(parts)
    header = ["downstream", "arch", "upstream", "n train", "scratch F1", "fine-tuned F1", "Δ F1",
              f"{level}interval", "scratch AUROC", "fine-tuned AUROC", "Δ AUROC", "constant"]
    rows = []
    for r in table.itertuples(index=False):
        dagger = "†" if r.auroc_classes < r.n_classes else ""
        rows.append([
            r.downstream, r.arch, r.upstream, str(r.n_train),
            _mean_sd(r.scratch_f1, r.scratch_sd), _mean_sd(r.finetune_f1, r.finetune_sd),
            _f(r.delta, sign=True) + ("*" if r.excludes_zero else ""),
            _interval(r.low, r.high), _f(r.scratch_auroc) + dagger,
            _f(r.finetune_auroc) + dagger, _f(r.delta_auroc, sign=True), _f(r.baseline_f1),
        ])
    parts.append(_markdown_table(header, rows, 3) + "\n")
    return "\n".join(parts)


def size_markdown(table: pd.DataFrame, selection: str, *, runs: Sequence[Run] = ()) -> str:
    """The size table of one selection as Markdown, with each curve's crossover below it."""
    level = _level_of(table)
    parts = [
        f"# Δ F1 against the training-set size ({selection} selection)\n",
        _selection_intro(selection) + "\n",
        "Scratch and fine-tuned models trained on subsamples of the downstream training split "
        "(`size` as configured: a record count or a fraction of the split; `full` is the whole "
        "split, the last point); `n train` is the records each trained on. "
        f"`Δ` = fine-tuned - scratch with its {level}paired bootstrap interval; `*`: the "
        "interval excludes 0. The *crossover* of a curve is the smallest training-set size "
        "whose interval includes 0: from there on, this run cannot tell fine-tuning from "
        "scratch.\n",
    ]
    note = _lacking_note(runs, selection)
    parts += [n for n in (note, _unpaired_note(runs, sized=True)) if n]
    if table.empty:
        if not note:
            parts.append(f"No subsampled pairing makes the {selection} selection.\n")
        return "\n".join(parts)
    header = ["downstream", "arch", "upstream", "size", "n train", "scratch F1", "fine-tuned F1",
              "Δ F1", f"{level}interval"]
    rows = [[r.downstream, r.arch, r.upstream, _fmt_size(_as_size(r.size)), str(r.n_train),
             _mean_sd(r.scratch_f1, r.scratch_sd), _mean_sd(r.finetune_f1, r.finetune_sd),
             _f(r.delta, sign=True) + ("*" if r.excludes_zero else ""), _interval(r.low, r.high)]
            for r in table.itertuples(index=False)]
    parts.append(_markdown_table(header, rows, 3) + "\n")
    parts.append("## Crossover per curve\n")
    parts += [f"* {line}" for line in _crossover_lines(table)]
    return "\n".join(parts) + "\n"


def _crossover_lines(table: pd.DataFrame) -> list[str]:
    lines = []
    for (downstream, arch, upstream), curve in table.groupby(
            ["downstream", "arch", "upstream"], sort=False):
        first = curve.iloc[0]
        name = f"{arch} fine-tuned from {upstream} on {downstream}"
        if pd.isna(first["crossover"]):
            lines.append(f"{name}: no crossover (every interval excludes 0)")
            continue
        line = f"{name}: crossover at {int(first['crossover'])} training records"
        if not first["crossover_monotone"]:
            again = curve.loc[(curve["n_train"] > first["crossover"]) & curve["excludes_zero"],
                              "n_train"]
            line += (" (not monotone: the interval excludes 0 again at "
                     + ", ".join(str(n) for n in again) + " records)")
        lines.append(line)
    return lines


def _as_size(value: float) -> int | float | None:
    """A size read back from a float table column: NaN -> None (full), 500.0 -> 500."""
    if pd.isna(value):
        return None
    return int(value) if float(value).is_integer() else float(value)


def family_markdown(table: pd.DataFrame, selection: str) -> str:
    """The family table of one selection as Markdown."""
    level = _level_of(table)
    parts = [
        f"# CNN vs RNN: mean Δ F1 per architecture family ({selection} selection)\n",
        _selection_intro(selection) + "\n",
        "Mean of Δ = fine-tuned - scratch over every (architecture, upstream, downstream) "
        "pairing of the family on the full training split, each pairing weighing the same, "
        f"with a {level}bootstrap interval: per replicate one resample of each downstream test "
        f"set, shared by all pairings scored on it. `{_DIFFERENCE}` is the difference of the two "
        "means, its interval from the same joint resampling of both families (not from the two "
        "rows above). `*`: the interval excludes 0.\n",
    ]
    if table.empty:
        parts.append(f"No pairing makes the {selection} selection, so this table has no rows.\n")
        return "\n".join(parts)
    header = ["family", "mean Δ F1", f"{level}interval", "pairings", "downstream sets"]
    rows = [[r.family, _f(r.delta, sign=True) + ("*" if r.excludes_zero else ""),
             _interval(r.low, r.high), str(r.n_pairs), str(r.n_downstream)]
            for r in table.itertuples(index=False)]
    parts.append(_markdown_table(header, rows, 1) + "\n")
    missing = [f for f in FAMILIES if f not in set(table["family"])]
    if missing:
        parts.append(f"No {' or '.join(missing)} pairing in this selection, so the difference "
                     f"{_DIFFERENCE} cannot be computed.\n")
    return "\n".join(parts)


def convergence_markdown(table: pd.DataFrame) -> str:
    """The convergence table as Markdown; `not reached` where a curve never got there."""
    tolerance = float(table["tolerance"].iloc[0]) if len(table) else CONVERGENCE_TOLERANCE
    parts = [
        "# Epochs to reach the scratch level\n",
        "Per pairing (full training split), the test F1 per epoch averaged over seeds. Target: "
        f"the best scratch F1 minus {tolerance:g}. `scratch` and `fine-tuned` are the first "
        "epochs (from 1) at or above it; `saved` = scratch - fine-tuned, positive where "
        "fine-tuning got there sooner. `not reached`: not within the epochs trained (a job "
        "that stopped earlier might have got there later). Independent of the model "
        "selection: it reads whole curves.\n",
    ]
    if table.empty:
        parts.append("No downstream set has both a scratch and a fine-tuned job.\n")
        return "\n".join(parts)

    def epoch(value: object) -> str:
        return "not reached" if pd.isna(value) else str(int(value))

    header = ["downstream", "arch", "upstream", "epochs trained (scratch / ft)", "target",
              "scratch", "fine-tuned", "saved"]
    rows = [[r.downstream, r.arch, r.upstream, f"{r.epochs_scratch} / {r.epochs_finetune}",
             _f(r.target), epoch(r.scratch_epoch), epoch(r.finetune_epoch),
             "—" if pd.isna(r.epochs_saved) else f"{int(r.epochs_saved):+d}"]
            for r in table.itertuples(index=False)]
    parts.append(_markdown_table(header, rows, 3) + "\n")
    return "\n".join(parts)


def _markdown_table(header: list[str], rows: list[list[str]], text_columns: int) -> str:
    """A Markdown table whose first ``text_columns`` columns are left-aligned, numbers right."""
    align = ["---"] * text_columns + ["---:"] * (len(header) - text_columns)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def write_table(table: pd.DataFrame, markdown: str, csv_path: str | os.PathLike,
                md_path: str | os.PathLike) -> None:
    """Write a table as CSV (every column, full precision) and its Markdown, each atomically."""
    _atomic_write_bytes(Path(csv_path), table.to_csv(index=False, float_format="%.6g").encode())
    _atomic_write_bytes(Path(md_path), markdown.encode())


# --------------------------------------------------------------------------------------------
# Claims


@dataclass(frozen=True)
class Claim:
    """One claim of the paper, this run's numbers bearing on it, and the verdict they give.

    ``selection`` is None for a claim independent of the selection. ``verdict`` is one of
    :data:`SUPPORTED`, :data:`NOT_SUPPORTED`, :data:`NOT_TESTABLE`; ``rule`` says how it
    follows from ``estimate`` and the interval (``low``, ``high``; None where not testable).
    """

    key: str
    title: str
    selection: str | None
    verdict: str
    evidence: str
    rule: str
    estimate: float | None = None
    low: float | None = None
    high: float | None = None


_TITLES = {
    "small_sets": "Fine-tuning helps on small downstream sets "
                  "(paper: up to +0.14 F1 at 827 samples)",
    "large_sets": "The gain vanishes on large downstream sets (paper: near 6000 samples)",
    "convergence": "Fine-tuning reaches the same F1 sooner (paper: 30-35 epochs)",
    "families": "CNNs transfer better than RNNs",
}
_RULES = {
    "small_sets": "supported if the interval's low end > 0, else not supported; not testable "
                  "without a CNN pairing on the smallest set.",
    "large_sets": "supported (no gain detectable) if the interval includes 0, not supported if "
                  "it excludes 0; not testable with a single downstream set and no size axis, "
                  "or without a CNN pairing on the largest set.",
    "convergence": "supported if the interval's low end > 0, else not supported (also when "
                   "fine-tuning never reached the target); not testable without a pairing "
                   "whose jobs trained at least 2 epochs.",
    "families": f"supported if the interval of {_DIFFERENCE} has its low end > 0, else not "
                "supported; not testable if either family has no pairing.",
}


def _claim(key: str, selection: str | None, verdict: str, evidence: str,
           estimate: float | None = None, low: float | None = None,
           high: float | None = None) -> Claim:
    return Claim(key, _TITLES[key], selection, verdict, evidence, _RULES[key], estimate, low,
                 high)


def _cnn_mean(comparisons: Sequence[_Comparison], selection: str,
              boot: Mapping[str, object]) -> tuple[MeanDelta, str]:
    md = bootstrap_mean_delta(_groups(comparisons, selection), **boot)
    archs = ", ".join(dict.fromkeys(c.arch for c in comparisons))
    ups = ", ".join(sorted({c.upstream for c in comparisons}))
    words = (f"mean Δ F1 over {md.n_pairs} CNN pairing(s) there (architectures {archs}; "
             f"upstreams {ups}): **{md.delta:+.3f}**, {_pct(md.level)} interval "
             f"{_interval(md.low, md.high)}")
    return md, words


def _tied(n_train: Mapping[str, int], n: int) -> list[str]:
    """Every downstream set with ``n`` training records: sets of equal size are judged
    together (pairs grouped by set), not one picked by name."""
    return sorted(d for d, m in n_train.items() if m == n)


def _sets_words(sets: Sequence[str], n_train: Mapping[str, int]) -> str:
    tied = " (tied)" if len(sets) > 1 else ""
    return ", ".join(f"**{d}**" for d in sets) + f"{tied} (n_train = {n_train[sets[0]]})"


def _small_sets_claim(runs: Sequence[Run], selection: str, families: Mapping[str, str],
                      transfer: pd.DataFrame, sized: pd.DataFrame | None,
                      boot: Mapping[str, object]) -> Claim:
    comparisons = _comparisons(runs, selection=selection, full_only=True)
    if not comparisons:
        return _claim("small_sets", selection, NOT_TESTABLE,
                      f"No pairing makes the {selection} selection.")
    n_train = {c.downstream: c.n_train for c in comparisons}
    smallest = _tied(n_train, min(n_train.values()))
    cnn = [c for c in comparisons if c.downstream in smallest and families[c.arch] == "CNN"]
    where = f"Smallest downstream set: {_sets_words(smallest, n_train)}"
    if not cnn:
        return _claim("small_sets", selection, NOT_TESTABLE, f"{where}; it has no CNN pairing.")
    md, words = _cnn_mean(cnn, selection, boot)
    rows = transfer[transfer["downstream"].isin(smallest)
                    & (transfer["arch"].map(families) == "CNN")]
    best = rows.loc[rows["delta"].idxmax()]
    evidence = (f"{where}; {words}. Largest single pairing: {best['delta']:+.3f} "
                f"({best['arch']} from {best['upstream']} on {best['downstream']}, interval "
                f"{_interval(best['low'], best['high'])}).")
    if sized is not None and not sized.empty:
        evidence += " " + _smallest_size_words(runs, selection, families, sized, boot)
    verdict = SUPPORTED if md.low > 0 else NOT_SUPPORTED
    return _claim("small_sets", selection, verdict, evidence, md.delta, md.low, md.high)


def _smallest_size_words(runs: Sequence[Run], selection: str, families: Mapping[str, str],
                         sized: pd.DataFrame, boot: Mapping[str, object]) -> str:
    """With a size axis, the same mean at its smallest size (reported, not used for the
    verdict, which follows the paper's comparison of downstream sets)."""
    n = int(sized.loc[~sized["full_split"], "n_train"].min())
    at = [c for c in _comparisons(runs, selection=selection)
          if c.size is not None and c.n_train == n and families[c.arch] == "CNN"]
    if not at:
        return f"The size axis' smallest size ({n} records) has no CNN pairing."
    md, _ = _cnn_mean(at, selection, boot)
    return (f"At the size axis' smallest size ({n} training records), the mean "
            f"Δ over {md.n_pairs} CNN pairing(s) is {md.delta:+.3f}, interval "
            f"{_interval(md.low, md.high)} (reported, not used for the verdict).")


def _large_sets_claim(runs: Sequence[Run], selection: str, families: Mapping[str, str],
                      sized: pd.DataFrame | None, boot: Mapping[str, object]) -> Claim:
    comparisons = _comparisons(runs, selection=selection, full_only=True)
    if not comparisons:
        return _claim("large_sets", selection, NOT_TESTABLE,
                      f"No pairing makes the {selection} selection.")
    n_train = {c.downstream: c.n_train for c in comparisons}
    has_sizes = sized is not None and not sized.empty
    if len(n_train) < 2 and not has_sizes:
        return _claim("large_sets", selection, NOT_TESTABLE,
                      f"Only one downstream set ({next(iter(n_train))}) and no size axis: "
                      "nothing larger to compare with.")
    largest = _tied(n_train, max(n_train.values()))
    cnn = [c for c in comparisons if c.downstream in largest and families[c.arch] == "CNN"]
    where = f"Largest downstream set: {_sets_words(largest, n_train)}"
    if not cnn:
        return _claim("large_sets", selection, NOT_TESTABLE, f"{where}; it has no CNN pairing.")
    md, words = _cnn_mean(cnn, selection, boot)
    includes = md.low <= 0.0 <= md.high
    if includes:
        outcome = "The interval includes 0: no gain detectable."
    else:
        outcome = ("The interval excludes 0: fine-tuning still "
                   + ("helps" if md.delta > 0 else "hurts") + " on this set.")
    evidence = f"{where}; {words}. {outcome}"
    if has_sizes:
        cnn_curves = sized[sized["arch"].map(families) == "CNN"]
        lines = _crossover_lines(cnn_curves)
        evidence += ("\n\nCrossover sizes of the CNN curves (smallest size whose interval "
                     "includes 0):\n\n" + "\n".join(f"* {line}" for line in lines)
                     if lines else "\n\nThe size axis has no CNN curve.")
    verdict = SUPPORTED if includes else NOT_SUPPORTED
    return _claim("large_sets", selection, verdict, evidence, md.delta, md.low, md.high)


def _bootstrap_mean(values: np.ndarray, n_boot: int, seed: int,
                    level: float) -> tuple[float, float, float]:
    """Mean of ``values`` with a percentile interval from resampling the values themselves."""
    rng = np.random.default_rng(seed)
    draws = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(axis=1)
    low, high = _percentile_interval(draws, level)
    return float(values.mean()), low, high


def _convergence_claim(table: pd.DataFrame, boot: Mapping[str, object]) -> Claim:
    trained = table[(table["epochs_scratch"] >= 2) & (table["epochs_finetune"] >= 2)]
    if trained.empty:
        return _claim("convergence", None, NOT_TESTABLE,
                      "No pairing whose jobs trained at least 2 epochs." if len(table) else
                      "No pairing of a scratch and a fine-tuned job.")
    reached = trained["epochs_saved"].dropna().to_numpy(dtype=np.float64)
    never = len(trained) - len(reached)
    never_words = (f"In {never} of {len(trained)} pairing(s) fine-tuning never reached the "
                   "target within the epochs trained.")
    tolerance = float(trained["tolerance"].iloc[0])
    target = f"Target: the best scratch test F1 (mean curve over seeds) minus {tolerance:g}."
    if len(reached) == 0:
        return _claim("convergence", None, NOT_SUPPORTED, f"{target} {never_words}")
    mean, low, high = _bootstrap_mean(reached, int(boot["n_boot"]), int(boot["seed"]),
                                      float(boot["level"]))
    single = " (one pairing: the interval is that single value)" if len(reached) == 1 else ""
    evidence = (f"{target} Over the {len(reached)} pairing(s) where both reached it, "
                f"fine-tuning got there **{mean:+.1f}** epochs sooner on average, "
                f"{_pct(float(boot['level']))} bootstrap interval over pairings "
                f"[{low:+.1f}, {high:+.1f}]{single}. {never_words}")
    verdict = SUPPORTED if low > 0 else NOT_SUPPORTED
    return _claim("convergence", None, verdict, evidence, mean, low, high)


def _families_claim(table: pd.DataFrame, selection: str) -> Claim:
    rows = {r.family: r for r in table.itertuples(index=False)}
    missing = [f for f in FAMILIES if f not in rows]
    if missing:
        return _claim("families", selection, NOT_TESTABLE,
                      f"No {' or '.join(missing)} pairing in the {selection} selection.")
    diff = rows[_DIFFERENCE]
    per_family = "; ".join(
        f"{f}: mean Δ {rows[f].delta:+.3f}, interval {_interval(rows[f].low, rows[f].high)} "
        f"over {rows[f].n_pairs} pairing(s)" for f in FAMILIES)
    evidence = (f"{per_family}. Difference {_DIFFERENCE}: **{diff.delta:+.3f}**, "
                f"{_pct(diff.level)} interval {_interval(diff.low, diff.high)}.")
    verdict = SUPPORTED if diff.low > 0 else NOT_SUPPORTED
    return _claim("families", selection, verdict, evidence, diff.delta, diff.low, diff.high)


def evaluate_claims(runs: Sequence[Run], tables: Tables, *, families: Mapping[str, str],
                    n_boot: int, seed: int, level: float) -> list[Claim]:
    """Each claim of the paper under each selection (convergence once: it reads whole curves).

    The verdict rules are in each :class:`Claim`'s ``rule``. Claims 1 and 2 bootstrap the mean
    Δ over the CNN pairings of one downstream set (stats.bootstrap_mean_delta), so they need the
    runs as well as the tables.
    """
    _check_families(runs, families)
    boot = {"n_boot": n_boot, "seed": seed, "level": level}
    claims = []
    for selection in SELECTIONS:
        sized = tables.sizes.get(selection)
        claims += [
            _small_sets_claim(runs, selection, families, tables.transfer[selection], sized,
                              boot),
            _large_sets_claim(runs, selection, families, sized, boot),
            _families_claim(tables.families[selection], selection),
        ]
    claims.append(_convergence_claim(tables.convergence, boot))
    return claims


def claims_markdown(claims: Sequence[Claim], runs: Sequence[Run]) -> str:
    """``claims.md``: which selections the run could make, a verdict overview, then each claim
    with its numbers, per selection (paper first: the paper's protocol)."""
    made = {s: len(_comparisons(runs, selection=s, full_only=True)) for s in SELECTIONS}
    could = [f"**{s}** ({n} pairing(s))" for s, n in made.items() if n]
    could_not = [s for s, n in made.items() if not n]
    lines = ["# The paper's claims, tested on this run\n",
             "Every number below is computed from this run's saved predictions and logs; the "
             "verdicts follow the rule printed under each claim.\n",
             "Selections this run could make: " + (", ".join(could) or "none") + "."
             + "".join(f" Not made: {s} (no scratch/fine-tuned pairing whose jobs saved "
                       f"`{s}_probs`" + (": no validation split" if s == "validation" else "")
                       + ")." for s in could_not) + "\n"]
    sections = [(s, SELECTIONS[s][1]) for s in SELECTIONS] + [(None, "")]
    header = ["claim", *[f"{s} selection" for s in SELECTIONS]]
    overview = []
    for key, title in _TITLES.items():
        per = {c.selection: c.verdict for c in claims if c.key == key}
        if None in per:
            overview.append([title, *[per[None]] * len(SELECTIONS)])
        else:
            overview.append([title, *[per.get(s, "—") for s in SELECTIONS]])
    lines.append(_markdown_table(header, overview, len(header)) + "\n")
    for selection, label in sections:
        chosen = [c for c in claims if c.selection == selection]
        if not chosen:
            continue
        if selection is None:
            lines.append("## Independent of the selection\n\nThese read whole per-epoch "
                         "curves, not one selected epoch.\n")
        else:
            primary = (" (primary: the paper's protocol)" if selection == "paper" else "")
            lines.append(f"## {selection.capitalize()} selection{primary}\n\n{label}.\n")
        for c in chosen:
            lines.append(f"### {c.title}\n\n**Verdict: {c.verdict}.**\n\n{c.evidence}\n\n"
                         f"*Rule:* {c.rule}\n")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Figures


def _check_dpi(dpi: int) -> None:
    if not isinstance(dpi, int) or isinstance(dpi, bool) or dpi < 10:
        raise ValueError(f"plots.dpi: expected an integer of at least 10, got {dpi!r}")


def _upstream_colours(upstreams: Sequence[str]) -> dict[str, str]:
    """One colour per upstream, by its place among all the run's upstreams in sorted order,
    so an upstream has the same colour in every figure of this module."""
    return {up: f"C{i % 10}" for i, up in enumerate(sorted(upstreams))}


def _empty_figure(path: Path, dpi: int, message: str) -> Path:
    fig = Figure(figsize=(6, 1.5), layout="constrained")
    FigureCanvasAgg(fig)
    fig.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    _write_figure(fig, path, dpi)
    return path


def plot_gain_heatmap(table: pd.DataFrame, path: str | os.PathLike, *, dpi: int,
                      selection: str, arch_order: Sequence[str] = (),
                      upstreams: Sequence[str] = ()) -> Path:
    """Δ F1 as an upstream x downstream heat map, one panel per architecture.

    Colour is Δ on a diverging scale centred at 0 and symmetric (red: fine-tuning helped, blue:
    it hurt); each cell prints Δ, and a bold border and ``*`` mark cells whose interval
    excludes 0. Downstream sets run from the smallest training split to the largest, so the
    paper's claim (gain shrinking with size) reads left to right. Upstream labels carry the
    upstream colours of :func:`plot_size_curve`. ``table`` is :func:`transfer_table`'s result;
    ``upstreams`` (default: the table's) fixes the colours across figures.
    """
    _check_dpi(dpi)
    path = Path(path)
    if table.empty:
        return _empty_figure(path, dpi, f"No scratch/fine-tuned pairing makes the {selection} "
                                        "selection in this run.")
    colours = _upstream_colours(list(upstreams) or table["upstream"].unique().tolist())
    ups = sorted(table["upstream"].unique())
    n_train = table.groupby("downstream")["n_train"].first()
    downs = sorted(n_train.index, key=lambda d: (n_train[d], d))
    archs = _arch_order(table["arch"].tolist(), arch_order)
    extent = max(float(table["delta"].abs().max()), 0.01)
    norm = Normalize(vmin=-extent, vmax=extent)
    cmap = colormaps["RdBu_r"].with_extremes(bad="white")
    ncols = min(3, len(archs))
    nrows = math.ceil(len(archs) / ncols)
    fig = Figure(figsize=(ncols * (1.1 * len(downs) + 1.8), nrows * (0.6 * len(ups) + 1.6) + 1),
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    image = None
    for ax, arch in zip(axes, archs, strict=False):
        sub = table[table["arch"] == arch].set_index(["upstream", "downstream"])
        values = np.full((len(ups), len(downs)), np.nan)
        for i, up in enumerate(ups):
            for j, down in enumerate(downs):
                if (up, down) not in sub.index:
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///",
                                           edgecolor="#b0b0b0", linewidth=0))
                    continue
                row = sub.loc[(up, down)]
                values[i, j] = row["delta"]
                strong = bool(row["excludes_zero"])
                text_colour = "white" if abs(row["delta"]) > 0.6 * extent else "black"
                ax.text(j, i, f"{row['delta']:+.2f}" + ("*" if strong else ""), ha="center",
                        va="center", fontsize=8, color=text_colour,
                        fontweight="bold" if strong else "normal")
                if strong:
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False,
                                           edgecolor="black", linewidth=2))
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, aspect="auto")
        ax.set_xticks(range(len(downs)),
                      [f"{d}\n(n={n_train[d]})" for d in downs], fontsize=8)
        ax.set_yticks(range(len(ups)), ups, fontsize=8)
        for label, up in zip(ax.get_yticklabels(), ups, strict=True):
            label.set_color(colours.get(up, "black"))
        ax.set_xlabel("downstream (training records)")
        ax.set_ylabel("upstream")
        ax.set_title(arch)
    for ax in axes[len(archs):]:
        ax.set_visible(False)
    fig.colorbar(image, ax=axes[: len(archs)].tolist(), label="Δ F1 (fine-tuned - scratch)",
                 shrink=0.9)
    level = _pct(float(table["level"].iloc[0]))
    fig.legend([Rectangle((0, 0), 1, 1, fill=False, edgecolor="black", linewidth=2),
                Rectangle((0, 0), 1, 1, fill=False, hatch="///", edgecolor="#b0b0b0")],
               [f"* / bold border: the {level} interval of Δ excludes 0", "no pairing"],
               loc="outside lower center", ncols=2, fontsize="small")
    fig.suptitle(f"Δ F1 from fine-tuning ({selection} selection)")
    _write_figure(fig, path, dpi)
    return path


_MARKERS = "osD^vPXh<>"


def plot_size_curve(table: pd.DataFrame, path: str | os.PathLike, *, dpi: int, selection: str,
                    arch_order: Sequence[str] = (), upstreams: Sequence[str] = ()) -> Path:
    """Δ F1 with its interval against the training-set size (log x), one panel per downstream.

    One line per architecture (marker) and upstream (colour, as in every figure here); a
    hollow star marks each curve's crossover, the dashed line is Δ = 0, error bars are the
    intervals. Points of different curves at one size are spread slightly sideways so their
    error bars stay apart.
    ``table`` is :func:`size_table`'s result.
    """
    _check_dpi(dpi)
    path = Path(path)
    if table.empty:
        return _empty_figure(path, dpi, f"No size axis, or no subsampled pairing makes the "
                                        f"{selection} selection in this run.")
    colours = _upstream_colours(list(upstreams) or table["upstream"].unique().tolist())
    archs = _arch_order(table["arch"].tolist(), arch_order)
    markers = {a: _MARKERS[i % len(_MARKERS)] for i, a in enumerate(archs)}
    downs = sorted(table["downstream"].unique())
    ncols = min(2, len(downs))
    nrows = math.ceil(len(downs) / ncols)
    fig = Figure(figsize=(max(8.0, 5.5 * ncols), 3.8 * nrows + 1.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    legend: dict[str, object] = {}
    for ax, down in zip(axes, downs, strict=False):
        sub = table[table["downstream"] == down]
        keys = [(a, u) for a in archs for u in sorted(sub["upstream"].unique())
                if ((sub["arch"] == a) & (sub["upstream"] == u)).any()]
        for k, (arch, up) in enumerate(keys):
            curve = sub[(sub["arch"] == arch) & (sub["upstream"] == up)].sort_values("n_train")
            spread = 10 ** ((k - (len(keys) - 1) / 2) * 0.012)
            x = curve["n_train"].to_numpy(dtype=float) * spread
            y = curve["delta"].to_numpy()
            err = np.vstack([y - curve["low"].to_numpy(), curve["high"].to_numpy() - y])
            handle = ax.errorbar(x, y, yerr=err, color=colours.get(up, "black"),
                                 marker=markers[arch], markersize=5, capsize=3, linewidth=1.2)
            legend.setdefault(f"{arch} from {up}", handle)
            cross = curve["crossover"].iloc[0]
            if not pd.isna(cross):
                at = curve["n_train"].to_numpy() == cross
                ax.plot(x[at], y[at], linestyle="none", marker="*", markersize=15,
                        markerfacecolor="none", markeredgecolor=colours.get(up, "black"),
                        markeredgewidth=1.3)
        ax.axhline(0.0, color="grey", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        sizes = sorted(sub["n_train"].unique())
        ax.set_xticks(sizes, [str(n) for n in sizes], fontsize=8)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("training records (log scale)")
        ax.set_ylabel("Δ F1 (fine-tuned - scratch)")
        ax.set_title(down)
    for ax in axes[len(downs):]:
        ax.set_visible(False)
    level = _pct(float(table["level"].iloc[0]))
    legend[f"crossover: first size whose {level} interval includes 0"] = Line2D(
        [], [], linestyle="none", marker="*", markersize=12, markerfacecolor="none",
        markeredgecolor="black")
    fig.legend(list(legend.values()), list(legend), loc="outside lower center",
               ncols=min(len(legend), 3), fontsize="small")
    fig.suptitle(f"Δ F1 from fine-tuning against training-set size ({selection} selection)")
    _write_figure(fig, path, dpi)
    return path


# --------------------------------------------------------------------------------------------
# Everything


def output_paths(out_dir: str | os.PathLike, *, sizes: bool) -> dict[str, Path]:
    """Every file :func:`write_results` writes under ``out_dir``, keyed by a name a rule can use
    as a named output. The size table and figure exist only with a size axis (``sizes``)."""
    out = Path(out_dir)
    tables, figures = out / "tables", out / "figures"
    paths: dict[str, Path] = {}
    for s in SELECTIONS:
        for stem in ("transfer", "families") + (("sizes",) if sizes else ()):
            paths[f"{stem}_{s}_csv"] = tables / f"{stem}_{s}.csv"
            paths[f"{stem}_{s}_md"] = tables / f"{stem}_{s}.md"
        paths[f"gain_heatmap_{s}"] = figures / f"gain_heatmap_{s}.png"
        if sizes:
            paths[f"size_curve_{s}"] = figures / f"size_curve_{s}.png"
    paths["convergence_csv"] = tables / "convergence.csv"
    paths["convergence_md"] = tables / "convergence.md"
    paths["claims"] = out / "claims.md"
    return paths


def write_results(jobs: Sequence[Mapping[str, object]], out_dir: str | os.PathLike, *,
                  families: Mapping[str, str], arch_order: Sequence[str] = (), n_boot: int,
                  seed: int, level: float, dpi: int) -> dict[str, Path]:
    """Read every job, compute every table once and write tables, figures and claims.md.

    ``jobs`` are the training jobs (see :func:`load_runs`); ``families`` maps each architecture
    to "CNN" or "RNN"; ``n_boot``, ``seed`` and ``level`` go to every bootstrap, so a rerun with
    the same inputs writes the same files. Returns :func:`output_paths` (sizes included when any
    job has a ``size``); every file is written atomically, all of them even where a selection
    has no rows (its Markdown and figure say why), so a rule can declare them all.
    """
    _check_dpi(dpi)
    runs = load_runs(jobs)
    if not runs:
        raise ValueError("no scratch or fine-tuning job given; the results compare the two")
    tables = compute_tables(runs, families=families, n_boot=n_boot, seed=seed, level=level,
                            arch_order=arch_order)
    paths = output_paths(out_dir, sizes=bool(tables.sizes))
    upstreams = _upstreams(runs)
    for s in SELECTIONS:
        write_table(tables.transfer[s], transfer_markdown(tables.transfer[s], s, runs=runs),
                    paths[f"transfer_{s}_csv"], paths[f"transfer_{s}_md"])
        write_table(tables.families[s], family_markdown(tables.families[s], s),
                    paths[f"families_{s}_csv"], paths[f"families_{s}_md"])
        plot_gain_heatmap(tables.transfer[s], paths[f"gain_heatmap_{s}"], dpi=dpi, selection=s,
                          arch_order=arch_order, upstreams=upstreams)
        if tables.sizes:
            write_table(tables.sizes[s], size_markdown(tables.sizes[s], s, runs=runs),
                        paths[f"sizes_{s}_csv"], paths[f"sizes_{s}_md"])
            plot_size_curve(tables.sizes[s], paths[f"size_curve_{s}"], dpi=dpi, selection=s,
                            arch_order=arch_order, upstreams=upstreams)
    write_table(tables.convergence, convergence_markdown(tables.convergence),
                paths["convergence_csv"], paths["convergence_md"])
    claims = evaluate_claims(runs, tables, families=families, n_boot=n_boot, seed=seed,
                             level=level)
    _atomic_write_bytes(paths["claims"], claims_markdown(claims, runs).encode())
    return paths
