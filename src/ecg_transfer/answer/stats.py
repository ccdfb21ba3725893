"""How sure is "fine-tuning beats training from scratch"? Paired bootstrap intervals and more.

The study's claim is a difference: Δ = F1(b) - F1(a), where **b is the fine-tuned model and a
the same architecture trained from scratch**, both scored on the same downstream test records.
The uncertainty of Δ comes from which records happened to land in the test set, and a record
that is hard for one model tends to be hard for the other. Resampling the records once per
bootstrap replicate and scoring *both* models on that same resample keeps this correlation;
resampling each model on its own would ignore it and give intervals too wide (about 1.5 times
in the synthetic setting of tests/test_stats.py, whose coverage check such intervals fail).

Intervals are plain percentile intervals of the bootstrap replicates: they need no variance
formula for the weighted F1 (a ratio of counts with data-dependent weights) and are what the
results layer can explain in one sentence. A resample with duplicates is scored by weighting
each record by how often it was drawn (exactly what scoring the duplicated rows would give), so
thousands of replicates cost a few matrix products instead of thousands of F1 calls.

With several training seeds per model, seeds are resampled too (with replacement, then the
records). Seeds of a and b are resampled **independently** (unpaired): seed s of a scratch run
and seed s of a fine-tuning run start from different weights, so nothing couples them, and
pairing them by index would let a chance correlation between seed s of each shrink or widen the
interval; unpaired resampling also allows a different number of seeds for a and b.

Everything here works on arrays already in memory (numpy, scipy); reading the saved
probabilities and writing tables belong to the caller.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import rankdata

from ecg_transfer.metrics import _labels

__all__ = [
    "Convergence",
    "MacroAuroc",
    "MeanDelta",
    "PairedDelta",
    "bootstrap_mean_delta",
    "convergence",
    "crossover",
    "epochs_to_reach",
    "macro_auroc",
    "paired_bootstrap_delta",
    "weighted_f1_many",
]

#: Resample counts are held as float32 so the matrix products run at float32 BLAS speed; they
#: are small integers, and sums of integers stay exact in float32 below 2**24.
_MAX_RECORDS_FLOAT32 = 2**24
#: Replicates drawn at once are capped so that one chunk's (replicates x records) count matrix
#: stays near this many entries (~16 MB of float32, 32 MB of int64 indices).
_CHUNK_ENTRIES = 4_000_000


# --------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class PairedDelta:
    """Δ = F1(b, fine-tuned) - F1(a, scratch) on one test set, with its bootstrap interval.

    ``delta`` is ``f1_b - f1_a``, each the mean over that model's seeds of its F1 on the full
    test set. ``sd_a``/``sd_b`` are the sample standard deviations (ddof=1) of the per-seed F1,
    NaN with a single seed (one run says nothing about the spread between runs).
    """

    delta: float
    low: float
    high: float
    n_boot: int
    level: float
    f1_a: float
    f1_b: float
    sd_a: float
    sd_b: float
    n_seeds_a: int
    n_seeds_b: int

    @property
    def interval(self) -> tuple[float, float]:
        return (self.low, self.high)


@dataclass(frozen=True)
class MeanDelta:
    """Mean Δ over several (scratch, fine-tuned) pairs, each pair weighing the same."""

    delta: float
    low: float
    high: float
    n_boot: int
    level: float
    n_pairs: int
    n_groups: int

    @property
    def interval(self) -> tuple[float, float]:
        return (self.low, self.high)


@dataclass(frozen=True)
class MacroAuroc:
    """Macro ROC AUC over the classes where it is defined, and how many it had to leave out.

    A class with no positives (or no negatives) in ``y_true`` has no ROC curve; scikit-learn
    warns (UndefinedMetricWarning) and returns NaN for it, which would turn the macro mean into
    NaN on a small test split. Those classes are skipped and
    counted so a table can say "AUROC over 8 of 9 classes". ``value`` is NaN when no class has
    both.
    """

    value: float
    n_used: int
    n_skipped: int


@dataclass(frozen=True)
class Convergence:
    """How many epochs each regime needs to come within ``tolerance`` of the scratch best.

    ``epochs_saved`` is ``scratch_epoch - finetune_epoch``: positive means fine-tuning got
    there sooner; None when either curve never reaches ``target``.
    """

    target: float
    scratch_epoch: int | None
    finetune_epoch: int | None
    epochs_saved: int | None


# --------------------------------------------------------------------------------------------
# Input checks


def _probs(probs: ArrayLike, name: str) -> np.ndarray:
    """Probabilities as float64, with the same checks as metrics.weighted_f1."""
    p = np.asarray(probs, dtype=np.float64)
    if np.isnan(p).any():
        raise ValueError(f"{name} contains NaN")
    if p.size and (p.min() < 0.0 or p.max() > 1.0):
        raise ValueError(
            f"{name} must be probabilities in [0, 1] (apply a sigmoid to logits first), "
            f"got range [{p.min():.3g}, {p.max():.3g}]"
        )
    return p


def _seeded_probs(probs: ArrayLike, name: str, shape: tuple[int, int]) -> np.ndarray:
    """(records, classes) or (seeds, records, classes) probabilities, returned as the latter."""
    p = _probs(probs, name)
    given = p.shape
    if p.ndim == 2:
        p = p[np.newaxis]
    if p.ndim != 3 or p.shape[1:] != shape or p.shape[0] == 0:
        raise ValueError(
            f"{name} has shape {given}, expected (records, classes) = {shape} or "
            f"(seeds, records, classes) = (S, {shape[0]}, {shape[1]}) with S >= 1"
        )
    return p


def _test_labels(y_true: ArrayLike, name: str) -> np.ndarray:
    y = _labels(np.asarray(y_true), name)
    if y.shape[0] == 0:
        raise ValueError(f"{name} has no records; there is nothing to resample")
    return y


def _check_bootstrap_args(n_boot: int, seed: int, level: float) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be an integer >= 1, got {n_boot!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer (for a reproducible "
                         f"interval), got {seed!r}")
    if not (isinstance(level, (int, float)) and 0.0 < level < 1.0):
        raise ValueError(f"level must lie strictly between 0 and 1 (e.g. 0.95), got {level!r}")


def _curve(curve: ArrayLike, name: str) -> np.ndarray:
    c = np.asarray(curve, dtype=np.float64)
    if c.ndim != 1:
        raise ValueError(f"{name} must be a 1-D per-epoch curve, got shape {c.shape}")
    if np.isnan(c).any():
        raise ValueError(f"{name} contains NaN (an epoch without a score?); pass a curve with "
                         "one score per epoch")
    return c


# --------------------------------------------------------------------------------------------
# Weighted F1 of many resamples at once


def _f1_from_counts(tp: np.ndarray, support: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """metrics._weighted_f1_score over the last axis, for any leading shape."""
    denom = support + predicted
    f1 = np.divide(2.0 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    total = support.sum(axis=-1)
    return np.divide((f1 * support).sum(axis=-1), total, out=np.zeros_like(total),
                     where=total > 0)


def _design(y: np.ndarray, models: Sequence[np.ndarray], threshold: float) -> np.ndarray:
    """Columns [y | pred_1, tp_1 | pred_2, tp_2 | ...]: a count matrix times this gives every
    model's per-class support, predicted and true-positive counts in one product."""
    blocks = [y]
    for p in models:
        pred = (p >= threshold).astype(np.int8)
        blocks += [pred, pred & y]
    dtype = np.float32 if y.shape[0] < _MAX_RECORDS_FLOAT32 else np.float64
    return np.concatenate(blocks, axis=1).astype(dtype)


def _f1_of_counts(counts: np.ndarray, design: np.ndarray, n_classes: int) -> np.ndarray:
    """(replicates, records) counts -> (replicates, models) weighted F1."""
    sums = (counts.astype(design.dtype) @ design).astype(np.float64)
    support = sums[:, :n_classes]
    per_model = sums[:, n_classes:].reshape(len(sums), -1, 2, n_classes)
    tp, predicted = per_model[:, :, 1], per_model[:, :, 0]
    return _f1_from_counts(tp, np.broadcast_to(support[:, np.newaxis], tp.shape), predicted)


def _counts_of(indices: np.ndarray, n: int) -> np.ndarray:
    """(replicates, draws) indices -> (replicates, n) number of times each record was drawn."""
    rows = len(indices)
    flat = (indices + (np.arange(rows, dtype=indices.dtype) * n)[:, np.newaxis]).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n)


def _chunk_rows(n_records: int) -> int:
    return max(1, _CHUNK_ENTRIES // n_records)


def _resample_counts(rng: np.random.Generator, rows: int, n: int) -> np.ndarray:
    """``rows`` bootstrap resamples of ``n`` records (n draws with replacement), as counts."""
    dtype = np.int32 if rows * n < 2**31 else np.int64  # int32 draws are twice as fast
    return _counts_of(rng.integers(0, n, size=(rows, n), dtype=dtype), n)


def weighted_f1_many(y_true: ArrayLike, probs: ArrayLike, indices: ArrayLike,
                     threshold: float = 0.5) -> np.ndarray:
    """metrics.weighted_f1 of ``y_true[idx]``, ``probs[idx]`` for every row ``idx`` of ``indices``.

    ``indices`` is a (resamples, draws) integer array of record indices (duplicates allowed:
    a bootstrap resample). Rather than scoring thousands of copied arrays, each resample becomes
    a count per record and one matrix product gives every resample's per-class counts; the
    result equals the one-at-a-time score up to float rounding. Returns shape (resamples,).
    """
    y = _test_labels(y_true, "y_true")
    p = _probs(probs, "probs")
    if p.shape != y.shape:
        raise ValueError(f"probs has shape {p.shape}, y_true has shape {y.shape}")
    idx = np.asarray(indices)
    if idx.ndim != 2 or idx.shape[1] == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"indices must be a 2-D (resamples, draws) integer array with at "
                         f"least one draw, got shape {idx.shape} and dtype {idx.dtype}")
    n = len(y)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"indices must lie in [0, {n}) (y_true has {n} records), got range "
                         f"[{idx.min()}, {idx.max()}]")
    idx = idx.astype(np.int64)  # the flat offsets of _counts_of overflow small int types
    design = _design(y, [p], threshold)
    step = _chunk_rows(n)
    out = [_f1_of_counts(_counts_of(idx[i:i + step], n), design, y.shape[1])[:, 0]
           for i in range(0, len(idx), step)]
    return np.concatenate(out) if out else np.zeros(0)


# --------------------------------------------------------------------------------------------
# Paired bootstrap


@dataclass(frozen=True)
class _Pair:
    probs_a: np.ndarray  # (seeds, records, classes)
    probs_b: np.ndarray


@dataclass(frozen=True)
class _PairStats:
    f1_a: np.ndarray  # per seed, full test set
    f1_b: np.ndarray
    deltas: np.ndarray  # (n_boot,) replicate Δ: seed-resampled mean F1(b) - mean F1(a)


def _seed_mean(replicates: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, seeds) replicate F1 -> (n_boot,) mean over seeds drawn with replacement."""
    n_boot, n_seeds = replicates.shape
    if n_seeds == 1:
        return replicates[:, 0]
    draws = _counts_of(rng.integers(0, n_seeds, size=(n_boot, n_seeds)), n_seeds)
    return (replicates * draws).sum(axis=1) / n_seeds


def _bootstrap_pairs(groups: Sequence[tuple[np.ndarray, Sequence[_Pair]]], n_boot: int,
                     seed: int, threshold: float) -> list[_PairStats]:
    """Replicate Δ of every pair: one record resample per replicate and group, shared by all of
    the group's pairs (they were scored on the same test records); groups drawn independently.

    The record draws of group g come from their own stream (spawned from ``seed``) and seed
    draws from another, so adding seeds or groups does not change the records drawn for a group.
    """
    record_ss, seed_ss = np.random.SeedSequence(seed).spawn(2)
    seed_rng = np.random.default_rng(seed_ss)
    stats = []
    for (y, pairs), group_ss in zip(groups, record_ss.spawn(len(groups)), strict=True):
        rng = np.random.default_rng(group_ss)
        models = [m for pair in pairs for probs in (pair.probs_a, pair.probs_b) for m in probs]
        design = _design(y, models, threshold)
        n, n_classes = y.shape
        full = _f1_of_counts(np.ones((1, n), dtype=np.int64), design, n_classes)[0]
        step = _chunk_rows(n)
        replicates = np.concatenate([
            _f1_of_counts(_resample_counts(rng, min(step, n_boot - i), n), design, n_classes)
            for i in range(0, n_boot, step)
        ])
        start = 0
        for pair in pairs:
            s_a, s_b = len(pair.probs_a), len(pair.probs_b)
            cols_a = slice(start, start + s_a)
            cols_b = slice(start + s_a, start + s_a + s_b)
            start += s_a + s_b
            deltas = (_seed_mean(replicates[:, cols_b], seed_rng)
                      - _seed_mean(replicates[:, cols_a], seed_rng))
            stats.append(_PairStats(full[cols_a], full[cols_b], deltas))
    return stats


def _percentile_interval(replicates: np.ndarray, level: float) -> tuple[float, float]:
    alpha = 1.0 - level
    low, high = np.quantile(replicates, [alpha / 2, 1.0 - alpha / 2])
    return float(low), float(high)


def _sd(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


def paired_bootstrap_delta(y_true: ArrayLike, probs_a: ArrayLike, probs_b: ArrayLike, *,
                           n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                           threshold: float = 0.5) -> PairedDelta:
    """Δ = F1(b) - F1(a), b fine-tuned and a from scratch, with a paired percentile interval.

    Both models are scored on the same resample of test records in every replicate, because
    their errors are correlated across records (see the module docstring). ``probs_a`` and
    ``probs_b`` are (records, classes) for one run each, or (seeds, records, classes) for
    several runs; then Δ is the difference of the seed means and each replicate also resamples
    each model's seeds with replacement, independently for a and b (the two may have different
    seed counts). A single seed given as (records, classes) or (1, records, classes) gives the
    same result.
    """
    _check_bootstrap_args(n_boot, seed, level)
    y = _test_labels(y_true, "y_true")
    pair = _Pair(_seeded_probs(probs_a, "probs_a", y.shape),
                 _seeded_probs(probs_b, "probs_b", y.shape))
    (stats,) = _bootstrap_pairs([(y, [pair])], int(n_boot), int(seed), threshold)
    low, high = _percentile_interval(stats.deltas, level)
    f1_a, f1_b = float(stats.f1_a.mean()), float(stats.f1_b.mean())
    return PairedDelta(
        delta=f1_b - f1_a, low=low, high=high, n_boot=int(n_boot), level=float(level),
        f1_a=f1_a, f1_b=f1_b, sd_a=_sd(stats.f1_a), sd_b=_sd(stats.f1_b),
        n_seeds_a=len(stats.f1_a), n_seeds_b=len(stats.f1_b),
    )


def bootstrap_mean_delta(
    groups: Mapping[str, tuple[ArrayLike, Sequence[tuple[ArrayLike, ArrayLike]]]], *,
    n_boot: int = 1000, seed: int = 0, level: float = 0.95, threshold: float = 0.5,
) -> MeanDelta:
    """Mean Δ over many (scratch, fine-tuned) pairs, e.g. all CNN pairs, with its interval.

    ``groups`` maps a test-set name (the downstream dataset) to ``(y_true, pairs)``, each pair
    ``(probs_a, probs_b)`` shaped as for :func:`paired_bootstrap_delta`. Pairs scored on the
    same test set share each replicate's record resample, since their Δs rise and fall together
    with the records drawn; different test sets hold different records and are resampled
    independently. Every pair weighs the same in the mean, whatever its test set's size.
    """
    _check_bootstrap_args(n_boot, seed, level)
    if not groups:
        raise ValueError("groups is empty; give at least one test set with one pair")
    checked = []
    for name, group in groups.items():
        if not (isinstance(group, Sequence) and len(group) == 2):
            raise ValueError(f"group {name!r}: expected a (y_true, pairs) tuple")
        y = _test_labels(group[0], f"group {name!r}: y_true")
        pairs = []
        for i, pair in enumerate(group[1]):
            if not (isinstance(pair, Sequence) and len(pair) == 2):
                raise ValueError(f"group {name!r}, pair {i}: expected (probs_a, probs_b)")
            pairs.append(_Pair(
                _seeded_probs(pair[0], f"group {name!r}, pair {i}: probs_a", y.shape),
                _seeded_probs(pair[1], f"group {name!r}, pair {i}: probs_b", y.shape),
            ))
        if not pairs:
            raise ValueError(f"group {name!r} has no pairs")
        checked.append((y, pairs))
    stats = _bootstrap_pairs(checked, int(n_boot), int(seed), threshold)
    delta = float(np.mean([s.f1_b.mean() - s.f1_a.mean() for s in stats]))
    low, high = _percentile_interval(np.mean([s.deltas for s in stats], axis=0), level)
    return MeanDelta(delta=delta, low=low, high=high, n_boot=int(n_boot), level=float(level),
                     n_pairs=len(stats), n_groups=len(checked))


# --------------------------------------------------------------------------------------------
# AUROC


def macro_auroc(y_true: ArrayLike, probs: ArrayLike) -> MacroAuroc:
    """Unweighted mean over classes of ROC AUC, a threshold-free companion to the weighted F1.

    Computed from average ranks (the Mann-Whitney statistic, ties counted one half), which is
    what scikit-learn's ``roc_auc_score`` computes, without its NaN on a class that has no
    positives or no negatives: such classes are skipped and counted (see :class:`MacroAuroc`).
    Pass float32 probabilities or better: float16 rounds confident probabilities near 1 into
    ties (predictions.npz stores the selections' probabilities as float32 for this).
    """
    y = _test_labels(y_true, "y_true")
    p = _probs(probs, "probs")
    if p.shape != y.shape:
        raise ValueError(f"probs has shape {p.shape}, y_true has shape {y.shape}")
    n_pos = y.sum(axis=0, dtype=np.float64)
    n_neg = len(y) - n_pos
    usable = (n_pos > 0) & (n_neg > 0)
    n_used = int(usable.sum())
    n_skipped = y.shape[1] - n_used
    if n_used == 0:
        return MacroAuroc(math.nan, 0, n_skipped)
    ranks = rankdata(p[:, usable], axis=0)
    pos, neg = n_pos[usable], n_neg[usable]
    auc = ((ranks * y[:, usable]).sum(axis=0) - pos * (pos + 1) / 2) / (pos * neg)
    return MacroAuroc(float(auc.mean()), n_used, n_skipped)


# --------------------------------------------------------------------------------------------
# Learning curves


def epochs_to_reach(curve: ArrayLike, target: float) -> int | None:
    """First epoch (1-based, like metrics.csv's ``epoch``) with ``curve >= target``, else None.

    None means "not reached within the epochs trained", not "never could": a job that stopped
    early may have got there later.
    """
    c = _curve(curve, "curve")
    if not math.isfinite(target):
        raise ValueError(f"target must be a finite number, got {target!r}")
    reached = np.flatnonzero(c >= target)
    return int(reached[0]) + 1 if reached.size else None


def convergence(scratch_curve: ArrayLike, finetune_curve: ArrayLike,
                tolerance: float = 0.01) -> Convergence:
    """Epochs each regime needs to come within ``tolerance`` of the best scratch F1.

    "Fine-tuning converges faster" is only meaningful against a level scratch training does
    reach, so the target is ``max(scratch_curve) - tolerance``; the tolerance keeps the answer
    from hinging on scratch's last noisy peak.
    """
    scratch = _curve(scratch_curve, "scratch_curve")
    finetune = _curve(finetune_curve, "finetune_curve")
    if scratch.size == 0:
        raise ValueError("scratch_curve is empty; its best F1 sets the target")
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    target = float(scratch.max()) - tolerance
    e_scratch = epochs_to_reach(scratch, target)
    e_finetune = epochs_to_reach(finetune, target)
    saved = None if e_scratch is None or e_finetune is None else e_scratch - e_finetune
    return Convergence(target, e_scratch, e_finetune, saved)


def crossover(sizes: Sequence[int | float],
              intervals: Sequence[tuple[float, float]]) -> int | float | None:
    """Smallest training-set size whose Δ interval includes 0 (transfer no longer shown to
    matter), or None if every interval excludes 0.

    It is the first such size, not "from here on": if a larger size excludes 0 again the
    curve is not monotone and the caller should say so rather than quote one number.
    """
    if len(sizes) != len(intervals):
        raise ValueError(f"sizes has {len(sizes)} entries, intervals has {len(intervals)}")
    s = np.asarray(sizes, dtype=np.float64)
    if np.isnan(s).any() or (np.diff(s) <= 0).any():
        raise ValueError(f"sizes must be strictly ascending numbers, got {list(sizes)}")
    for size, interval in zip(sizes, intervals, strict=True):
        low, high = interval
        if math.isnan(low) or math.isnan(high) or low > high:
            raise ValueError(f"interval at size {size} is ({low}, {high}); expected "
                             "low <= high, neither NaN")
    for size, (low, high) in zip(sizes, intervals, strict=True):
        if low <= 0.0 <= high:
            return size
    return None
