"""Unit tests of the F1 score and the constant-predictor baseline, on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from ecg_transfer.metrics import constant_baseline_f1, macro_f1, weighted_f1

# 4 records x 3 classes.
Y_TRUE = np.array([[1, 1, 0],
                   [1, 0, 0],
                   [0, 1, 0],
                   [0, 0, 1]], dtype=np.uint8)
Y_PROB = np.array([[0.9, 0.5, 0.2],
                   [0.4, 0.1, 0.6],
                   [0.7, 0.5, 0.0],
                   [0.1, 0.8, 0.3]])


def test_weighted_f1_hand_computed() -> None:
    # predictions (p >= 0.5; 0.5 itself is positive):
    #   class 0: pred 1,0,1,0 vs true 1,1,0,0 -> TP 1, FP 1, FN 1 -> F1 = 2/(2+1+1) = 0.5, support 2
    #   class 1: pred 1,0,1,1 vs true 1,0,1,0 -> TP 2, FP 1, FN 0 -> F1 = 4/(4+1) = 0.8, support 2
    #   class 2: pred 0,1,0,0 vs true 0,0,0,1 -> TP 0, FP 1, FN 1 -> F1 = 0,            support 1
    # weighted by support: (2*0.5 + 2*0.8 + 1*0) / 5 = 2.6 / 5 = 0.52
    assert weighted_f1(Y_TRUE, Y_PROB) == pytest.approx(0.52)
    assert weighted_f1(Y_TRUE.astype(bool), Y_PROB) == pytest.approx(0.52)


def test_weighted_f1_threshold() -> None:
    # threshold 0.55: class 0 unchanged (0.5); class 1 pred 0,0,0,1 -> TP 0 -> 0; class 2 -> 0
    # (2*0.5 + 0 + 0) / 5 = 0.2
    assert weighted_f1(Y_TRUE, Y_PROB, threshold=0.55) == pytest.approx(0.2)


def test_weighted_f1_perfect_and_empty_class() -> None:
    y = np.array([[1, 0], [0, 0], [1, 0]])
    # class 1 has no positives and none predicted: weight 0, so the score is class 0's, i.e. 1
    assert weighted_f1(y, y.astype(float)) == pytest.approx(1.0)


def test_weighted_f1_rejects_logits_and_bad_shapes() -> None:
    with pytest.raises(ValueError, match="sigmoid"):
        weighted_f1(Y_TRUE, Y_PROB * 4 - 2)
    with pytest.raises(ValueError, match="shape"):
        weighted_f1(Y_TRUE, Y_PROB[:, :2])
    with pytest.raises(ValueError, match="0/1"):
        weighted_f1(Y_TRUE * 2, Y_PROB)
    with pytest.raises(ValueError, match="NaN"):
        weighted_f1(Y_TRUE, np.full(Y_PROB.shape, np.nan))


def test_constant_baseline_hand_computed() -> None:
    # train prevalence: class 0 3/4 (majority positive), class 1 1/4, class 2 2/4 (a tie: not a
    # majority) -> majority predictor = [1, 0, 0]
    y_train = np.array([[1, 0, 1],
                        [1, 0, 0],
                        [1, 1, 1],
                        [0, 0, 0]], dtype=np.uint8)
    # test positives: class 0 3/5, class 1 1/5, class 2 4/5 (supports 3, 1, 4; total 8)
    y_test = np.array([[1, 1, 0],
                       [1, 0, 1],
                       [1, 0, 1],
                       [0, 0, 1],
                       [0, 0, 1]], dtype=np.uint8)
    # all-negative: every F1 is 0 -> 0
    # all-positive: F1 = 2p/(1+p): 1.2/1.6 = 3/4, 0.4/1.2 = 1/3, 1.6/1.8 = 8/9
    #   weighted: (3*3/4 + 1*1/3 + 4*8/9) / 8 = (81/36 + 12/36 + 128/36) / 8 = 221/288 ~ 0.76736
    # majority [1, 0, 0]: (3*3/4 + 0 + 0) / 8 = 0.28125
    assert constant_baseline_f1(y_train, y_test) == pytest.approx(221 / 288)
    assert weighted_f1(y_test, np.tile([1.0, 0.0, 0.0], (5, 1))) == pytest.approx(0.28125)


def test_constant_baseline_checks_inputs() -> None:
    with pytest.raises(ValueError, match="classes"):
        constant_baseline_f1(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="no records"):
        constant_baseline_f1(np.zeros((0, 2)), np.zeros((3, 2)))


def test_weighted_f1_equals_sklearn_on_random_cases():
    """The numpy implementation is exactly sklearn's weighted F1 (the paper's definition)."""
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    for trial in range(400):
        # c >= 2: sklearn reads a single column as a binary (not multi-label) problem
        n, c = rng.integers(1, 40), rng.integers(2, 10)
        y_true = (rng.random((n, c)) < rng.random()).astype(np.uint8)
        y_prob = rng.random((n, c))
        if trial % 7 == 0:
            y_prob[:] = 0.0  # no predictions at all
        ours = weighted_f1(y_true, y_prob)
        ref = f1_score(y_true, (y_prob >= 0.5).astype(int), average="weighted", zero_division=0)
        assert ours == pytest.approx(ref, abs=1e-12), (trial, y_true, y_prob)


def test_macro_f1_is_sklearn_macro_f1_the_papers_pretraining_criterion():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(1)
    for _ in range(300):
        n, c = rng.integers(1, 40), rng.integers(2, 8)
        y_true = (rng.random((n, c)) < rng.random()).astype(int)
        y_prob = rng.random((n, c))
        ref = f1_score(y_true, (y_prob >= 0.5).astype(int), average="macro", zero_division=0)
        assert macro_f1(y_true, y_prob) == pytest.approx(ref, abs=1e-12)


def test_macro_f1_weighs_a_rare_class_as_much_as_a_common_one():
    y_true = np.array([[1, 0], [1, 0], [1, 0], [1, 1]])
    y_prob = np.array([[1, 0], [1, 0], [1, 0], [1, 0]], dtype=float)  # misses the rare class
    assert macro_f1(y_true, y_prob) == pytest.approx(0.5)
    assert weighted_f1(y_true, y_prob) == pytest.approx(0.8)
