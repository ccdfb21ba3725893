"""Unit tests of answer/stats.py: macro AUROC against scikit-learn, and the record-resample
engine of the robustness study (F1 of a resample from counts) against scoring each resample."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from ecg_transfer.answer.stats import (
    _check_bootstrap_args,
    _counts_of,
    _design,
    _f1_of_counts,
    macro_auroc,
)
from ecg_transfer.metrics import weighted_f1

# --------------------------------------------------------------------------------------------
# F1 of resamples from counts (the robustness study's engine)


def test_f1_from_resample_counts_equals_scoring_each_resample_alone_and_sklearn() -> None:
    rng = np.random.default_rng(1)
    for case in range(40):
        n, c = int(rng.integers(1, 60)), int(rng.integers(1, 7))
        y = (rng.random((n, c)) < rng.random(c)).astype(np.int8)
        if case % 5 == 0:
            y[:, 0] = 0  # a class without positives: weight 0
        probs = rng.random((n, c))
        threshold = float(rng.choice([0.3, 0.5, 0.7]))
        idx = rng.integers(0, n, size=(25, int(rng.integers(1, 2 * n + 1))))
        design = _design(y, [probs], threshold)
        many = _f1_of_counts(_counts_of(idx, n), design, c)[:, 0]
        assert many.shape == (25,)
        for row, score in zip(idx, many, strict=True):
            pred = (probs[row] >= threshold).astype(int)
            assert score == pytest.approx(weighted_f1(y[row], probs[row], threshold), abs=1e-6)
            if c > 1:  # sklearn reads a single column as binary, not multi-label
                assert score == pytest.approx(
                    f1_score(y[row], pred, average="weighted", zero_division=0), abs=1e-6)


# --------------------------------------------------------------------------------------------
# macro_auroc


def test_macro_auroc_equals_sklearn_when_every_class_has_both_labels() -> None:
    rng = np.random.default_rng(13)
    for _ in range(30):
        n, c = int(rng.integers(4, 80)), int(rng.integers(1, 6))
        y = (rng.random((n, c)) < 0.4).astype(np.int8)
        y[0], y[1] = 1, 0
        probs = np.round(rng.random((n, c)), 1)  # rounding makes ties, counted one half
        r = macro_auroc(y, probs)
        assert (r.n_used, r.n_skipped) == (c, 0)
        assert r.value == pytest.approx(roc_auc_score(y, probs, average="macro"), abs=1e-12)


def test_macro_auroc_skips_and_counts_classes_without_positives_or_negatives() -> None:
    rng = np.random.default_rng(14)
    y = (rng.random((50, 4)) < 0.5).astype(np.int8)
    y[0, :2], y[1, :2] = 1, 0
    y[:, 2] = 0  # no positives
    y[:, 3] = 1  # no negatives
    probs = rng.random((50, 4))
    r = macro_auroc(y, probs)
    assert (r.n_used, r.n_skipped) == (2, 2)
    assert r.value == pytest.approx(roc_auc_score(y[:, :2], probs[:, :2], average="macro"))
    none = macro_auroc(np.zeros((5, 2), dtype=np.int8), rng.random((5, 2)))
    assert math.isnan(none.value) and (none.n_used, none.n_skipped) == (0, 2)


_Y = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.int8)
_P = np.array([[0.9, 0.2], [0.3, 0.8], [0.6, 0.4]])


@pytest.mark.parametrize(("call", "message"), [
    (lambda: macro_auroc(_Y, _P[:2]), "probs has shape"),
    (lambda: macro_auroc(_Y, _P - 1), "probabilities in"),
    (lambda: macro_auroc(_Y, np.full_like(_P, np.nan)), "probs contains NaN"),
    (lambda: macro_auroc(_Y * 2, _P), "0/1"),
    (lambda: _check_bootstrap_args(0, 0, 0.95), "n_boot must be an integer >= 1"),
    (lambda: _check_bootstrap_args(1.5, 0, 0.95), "n_boot"),
    (lambda: _check_bootstrap_args(10, 0, 1.0), "level must lie strictly"),
    (lambda: _check_bootstrap_args(10, -1, 0.95), "seed"),
])
def test_bad_input_raises_a_value_error_that_says_what_was_wrong(call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_float16_probabilities_tie_near_one_and_move_the_auroc() -> None:
    """Why predictions.npz keeps the selections' probabilities in float32: near 1, float16
    rounds distinct confident probabilities onto the same value (0.971 -> 0.967 in one run)."""
    y = np.array([[1], [0], [1], [0]])
    p = np.array([[0.9991], [0.9993], [0.9995], [0.9990]], dtype=np.float32)
    assert macro_auroc(y, p).value == pytest.approx(roc_auc_score(y[:, 0], p[:, 0])) == 0.75
    assert macro_auroc(y, p.astype(np.float16).astype(np.float32)).value == 0.5
