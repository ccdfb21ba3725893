"""The paper's score (support-weighted F1 of multi-label predictions) and a floor to compare it to.

The paper's ``pretrain/eval.py`` rounds sigmoid outputs, computes a binary F1 per class and
averages with weights equal to each class's positive count on the test set; that is exactly
scikit-learn's ``f1_score(average="weighted", zero_division=0)``. It is computed here with numpy
because importing scikit-learn costs ~2 s, paid by each of the study's 120+ training jobs;
tests/test_metrics.py checks the two agree on thousands of random cases.
(``np.round`` sends an output of exactly 0.5 to 0, here it counts as positive; only exact ties
differ.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["EPOCH_COLUMNS", "SELECTIONS", "VALIDATION_COLUMNS", "constant_baseline_f1",
           "macro_f1", "select_epochs", "weighted_f1"]

#: The columns of every training job's ``metrics.csv``, one row per epoch, in order.
#: ``test_macro_f1`` is the unweighted mean of per-class F1, the paper's pretraining criterion.
EPOCH_COLUMNS = ("epoch", "train_loss", "val_loss", "val_f1", "test_loss", "test_f1",
                 "test_macro_f1", "seconds", "baseline_f1")
#: Empty where a job had no validation split.
VALIDATION_COLUMNS = ("val_loss", "val_f1")
#: The two model selections the study reports, never mixed: the per-epoch column each maximises,
#: and how tables label it. ``paper`` chooses on the test set itself, so it is optimistic.
SELECTIONS = {
    "paper": ("test_f1", "best test F1 over epochs (the paper's selection, optimistic)"),
    "validation": ("val_f1", "test F1 at the epoch of best validation F1 (held-out selection)"),
}


def _labels(y: np.ndarray, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (records, classes) array, got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"{name} must hold only 0/1 (or bool) labels")
    return y.astype(np.int8)


def weighted_f1(y_true: np.ndarray, y_prob: np.ndarray, threshold: float = 0.5) -> float:
    """Support-weighted F1 of ``y_prob >= threshold`` against multi-hot ``y_true``.

    ``y_prob`` must be probabilities (sigmoid outputs), not logits: thresholding logits at 0.5
    would silently mean a probability threshold of about 0.62, so values outside [0, 1] are
    rejected. Classes with no positives and no predictions score 0 and weigh 0.
    """
    y_true, y_prob = _checked_probs(y_true, y_prob)
    y_pred = (y_prob >= threshold).astype(np.int8)
    return _weighted_f1_score(y_true, y_pred)


def _checked_probs(y_true: np.ndarray, y_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = _labels(y_true, "y_true")
    y_prob = np.asarray(y_prob, dtype=np.float64)
    if y_prob.shape != y_true.shape:
        raise ValueError(f"y_prob has shape {y_prob.shape}, y_true has shape {y_true.shape}")
    if np.isnan(y_prob).any():
        raise ValueError("y_prob contains NaN")
    if y_prob.size and (y_prob.min() < 0.0 or y_prob.max() > 1.0):
        raise ValueError(
            "y_prob must be probabilities in [0, 1] (apply a sigmoid to logits first), "
            f"got range [{y_prob.min():.3g}, {y_prob.max():.3g}]"
        )
    return y_true, y_prob


def macro_f1(y_true: np.ndarray, y_prob: np.ndarray, threshold: float = 0.5) -> float:
    """Unweighted mean over classes of the binary F1 of ``y_prob >= threshold``.

    The paper's pretraining keeps the epoch with the best ``f1_val.mean()`` (pretrain/train.py:
    sklearn's binary ``f1_score`` per class, a class without positives or predictions scoring
    0), not the weighted F1 its tables report; this is that number, i.e. sklearn's
    ``f1_score(average="macro", zero_division=0)``.
    """
    y_true, y_prob = _checked_probs(y_true, y_prob)
    if y_true.shape[1] == 0:
        return 0.0
    return float(_per_class_f1(y_true, (y_prob >= threshold).astype(np.int8)).mean())


def _per_class_f1(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    tp = (y_true & y_pred).sum(axis=0, dtype=np.float64)
    denom = y_true.sum(axis=0, dtype=np.float64) + y_pred.sum(axis=0, dtype=np.float64)
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def _weighted_f1_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """sklearn's f1_score(average="weighted", zero_division=0) for multi-hot arrays."""
    support = y_true.sum(axis=0, dtype=np.float64)
    f1 = _per_class_f1(y_true, y_pred)
    if support.sum() == 0:
        return 0.0
    return float((f1 * support).sum() / support.sum())


def constant_baseline_f1(y_train: np.ndarray, y_test: np.ndarray) -> float:
    """Best weighted F1 on ``y_test`` of a predictor that ignores the ECG.

    Candidates: all-negative, all-positive, and each class's majority label on ``y_train``
    (positive where more than half the training records are). A model that does not beat this
    has learnt nothing from the signal, whatever its F1 looks like; with skewed multi-label sets
    the all-positive predictor alone can reach a weighted F1 well above 0.5.

    Since F1 only rewards positives, all-positive is never beaten per class by another constant;
    the other candidates are kept so the claim "beats every constant predictor" needs no proof.
    """
    y_train = _labels(y_train, "y_train")
    y_test = _labels(y_test, "y_test")
    if y_train.shape[1] != y_test.shape[1]:
        raise ValueError(
            f"y_train has {y_train.shape[1]} classes, y_test has {y_test.shape[1]}"
        )
    if len(y_train) == 0:
        raise ValueError("y_train has no records; the majority predictor is undefined")
    n = len(y_test)
    majority = (y_train.mean(axis=0) > 0.5).astype(np.float64)
    candidates = (
        np.zeros(y_test.shape),
        np.ones(y_test.shape),
        np.broadcast_to(majority, (n, y_test.shape[1])),
    )
    return max(weighted_f1(y_test, c) for c in candidates)


def select_epochs(rows: Sequence[Mapping[str, float]]) -> dict[str, Any]:
    """Both selections' epochs and numbers from a job's per-epoch rows; ties go to the earliest.

    ``best_test_f1``/``best_epoch``: the paper's (maximum test F1, chosen on test itself, so
    optimistic); None without a test split (a model pretrained on all records).
    ``val_selected_*``: the epoch with the best validation F1 and its test F1, an honest
    held-out estimate; None without a validation split. The one definition of
    :data:`SELECTIONS` that the engine (which epoch's predictions to keep) and the tables use.
    """
    out: dict[str, Any] = {"best_test_f1": None, "best_epoch": None,
                           "val_selected_epoch": None, "val_selected_val_f1": None,
                           "val_selected_test_f1": None}
    tested = [r for r in rows if _number(r["test_f1"])]  # none: a job without a test split
    if tested:
        paper = max(tested, key=lambda r: r["test_f1"])  # max() keeps the first of equal keys
        out.update(best_test_f1=paper["test_f1"], best_epoch=int(paper["epoch"]))
    scored = [r for r in rows if _number(r["val_f1"])]
    if scored:
        val = max(scored, key=lambda r: r["val_f1"])
        out.update(val_selected_epoch=int(val["epoch"]), val_selected_val_f1=val["val_f1"],
                   val_selected_test_f1=val["test_f1"] if _number(val["test_f1"]) else None)
    return out


def _number(value: float | None) -> bool:
    return value is not None and not math.isnan(value)
