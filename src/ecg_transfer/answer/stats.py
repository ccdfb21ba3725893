"""Macro AUROC, and the record bootstrap of the robustness study (answer/robustness.py).

Every other interval of the answer comes from :mod:`.bootstrap` (records, seeds and the paper
selection's best epoch resampled together); the robustness study scores each model under many
perturbations and keeps its own engine, built from these pieces: a resample with duplicates is
scored by weighting each record by how often it was drawn (exactly what scoring the duplicated
rows would give), so thousands of replicates cost a few matrix products instead of thousands of
F1 calls.

Everything here works on arrays already in memory (numpy, scipy); reading the saved
probabilities and writing tables belong to the caller.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import rankdata

from ecg_transfer.metrics import _labels

__all__ = ["MacroAuroc", "MeanDelta", "macro_auroc"]

#: Resample counts are held as float32 so the matrix products run at float32 BLAS speed; they
#: are small integers, and sums of integers stay exact in float32 below 2**24.
_MAX_RECORDS_FLOAT32 = 2**24
#: Replicates drawn at once are capped so that one chunk's (replicates x records) count matrix
#: stays near this many entries (~16 MB of float32, 32 MB of int64 indices).
_CHUNK_ENTRIES = 4_000_000


# --------------------------------------------------------------------------------------------
# Results


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


# --------------------------------------------------------------------------------------------
# Paired bootstrap


def _percentile_interval(replicates: np.ndarray, level: float) -> tuple[float, float]:
    alpha = 1.0 - level
    low, high = np.quantile(replicates, [alpha / 2, 1.0 - alpha / 2])
    return float(low), float(high)


def _sd(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


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
