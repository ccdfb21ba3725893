"""Unit tests of the results layer's statistics: paired bootstrap intervals of Δ F1, AUROC,
convergence epochs and the crossover size, on hand-made and synthetic cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from ecg_transfer.answer.stats import (
    bootstrap_mean_delta,
    convergence,
    crossover,
    epochs_to_reach,
    macro_auroc,
    paired_bootstrap_delta,
    weighted_f1_many,
)
from ecg_transfer.metrics import weighted_f1


def _labels(rng: np.random.Generator, n: int, prevalence: list[float]) -> np.ndarray:
    return (rng.random((n, len(prevalence))) < np.asarray(prevalence)).astype(np.int8)


def _probs_correct_where(y: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """Confident probabilities whose 0.5-thresholded prediction is right exactly where
    ``correct`` is True."""
    pred = np.where(correct, y, 1 - y)
    return np.where(pred == 1, 0.9, 0.1)


def _noisy_probs(rng: np.random.Generator, y: np.ndarray, signal: float) -> np.ndarray:
    return np.clip(y * signal + rng.random(y.shape) * (1 - signal) * 1.4, 0.0, 1.0)


# --------------------------------------------------------------------------------------------
# weighted_f1_many


def test_weighted_f1_many_equals_scoring_each_resample_alone_and_sklearn() -> None:
    rng = np.random.default_rng(1)
    for case in range(40):
        n, c = int(rng.integers(1, 60)), int(rng.integers(1, 7))
        y = (rng.random((n, c)) < rng.random(c)).astype(np.int8)
        if case % 5 == 0:
            y[:, 0] = 0  # a class without positives: weight 0
        probs = rng.random((n, c))
        threshold = float(rng.choice([0.3, 0.5, 0.7]))
        idx = rng.integers(0, n, size=(25, int(rng.integers(1, 2 * n + 1))))
        many = weighted_f1_many(y, probs, idx, threshold=threshold)
        assert many.shape == (25,)
        for row, score in zip(idx, many, strict=True):
            pred = (probs[row] >= threshold).astype(int)
            assert score == pytest.approx(weighted_f1(y[row], probs[row], threshold), abs=1e-12)
            if c > 1:  # sklearn reads a single column as binary, not multi-label
                assert score == pytest.approx(
                    f1_score(y[row], pred, average="weighted", zero_division=0), abs=1e-12)


def test_weighted_f1_many_rejects_indices_outside_the_test_set() -> None:
    y, p = np.eye(3, dtype=np.int8), np.eye(3)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 3\)"):
        weighted_f1_many(y, p, np.array([[0, 3]]))
    with pytest.raises(ValueError, match="2-D"):
        weighted_f1_many(y, p, np.array([0, 1]))
    with pytest.raises(ValueError, match="integer"):
        weighted_f1_many(y, p, np.array([[0.0, 1.0]]))


# --------------------------------------------------------------------------------------------
# paired_bootstrap_delta


def test_identical_predictions_give_zero_delta_and_an_interval_of_width_zero() -> None:
    rng = np.random.default_rng(2)
    y = _labels(rng, 300, [0.2, 0.5, 0.1])
    p = _noisy_probs(rng, y, 0.4)
    r = paired_bootstrap_delta(y, p, p.copy(), n_boot=500)
    assert (r.delta, r.low, r.high) == (0.0, 0.0, 0.0)
    assert r.f1_a == r.f1_b == pytest.approx(weighted_f1(y, p))


def test_a_model_right_on_30_percent_more_records_has_an_interval_above_zero() -> None:
    rng = np.random.default_rng(3)
    y = _labels(rng, 500, [0.3, 0.5, 0.2])
    a_wrong = np.zeros(500, dtype=bool)
    a_wrong[rng.permutation(500)[:150]] = True  # a wrong on every class of 30% of records
    probs_a = _probs_correct_where(y, ~a_wrong[:, np.newaxis])
    probs_b = _probs_correct_where(y, np.ones_like(y, dtype=bool))
    true_delta = 1.0 - weighted_f1(y, probs_a)
    assert true_delta > 0.2
    r = paired_bootstrap_delta(y, probs_a, probs_b, n_boot=1000, seed=4)
    assert r.delta == pytest.approx(true_delta)
    assert (r.f1_a, r.f1_b) == (pytest.approx(1.0 - true_delta), 1.0)
    assert 0.0 < r.low < true_delta < r.high
    # swapping the roles flips the sign: delta is F1(b) - F1(a)
    assert paired_bootstrap_delta(y, probs_b, probs_a, n_boot=10).delta == pytest.approx(
        -true_delta)


def test_the_same_seed_gives_the_same_interval_and_another_seed_a_close_one() -> None:
    rng = np.random.default_rng(5)
    y = _labels(rng, 400, [0.3, 0.4])
    pa, pb = _noisy_probs(rng, y, 0.3), _noisy_probs(rng, y, 0.4)
    first = paired_bootstrap_delta(y, pa, pb, n_boot=2000, seed=11)
    again = paired_bootstrap_delta(y, pa, pb, n_boot=2000, seed=11)
    assert (again.delta, again.low, again.high) == (first.delta, first.low, first.high)
    other = paired_bootstrap_delta(y, pa, pb, n_boot=2000, seed=12)
    assert other.delta == first.delta
    assert (other.low, other.high) != (first.low, first.high)
    width = first.high - first.low
    assert abs(other.low - first.low) < 0.1 * width
    assert abs(other.high - first.high) < 0.1 * width


def _population_f1(prevalence: np.ndarray, q: float) -> float:
    """Weighted F1 of an infinite test set where each (record, class) prediction is right with
    probability q whatever the label: TP = pq, FP + FN = (1-p)(1-q) + p(1-q) = 1-q."""
    f1 = 2 * prevalence * q / (2 * prevalence * q + 1 - q)
    return float((prevalence * f1).sum() / prevalence.sum())


def test_the_95_percent_interval_covers_the_true_delta_about_95_percent_of_the_time() -> None:
    # b is right on 95% of the cells where a is right and on half of those where a is wrong, so
    # the two models' errors are strongly correlated; an interval that ignored the pairing
    # would cover the true delta nearly always (too wide), one that was too narrow far less.
    prevalence = np.array([0.3, 0.5, 0.15])
    q_a, q_b = 0.7, 0.7 * 0.95 + 0.3 * 0.5
    true_delta = _population_f1(prevalence, q_b) - _population_f1(prevalence, q_a)
    rng = np.random.default_rng(6)
    covered, reps = 0, 200
    for rep in range(reps):
        y = _labels(rng, 500, list(prevalence))
        a_right = rng.random(y.shape) < q_a
        b_right = np.where(a_right, rng.random(y.shape) < 0.95, rng.random(y.shape) < 0.5)
        r = paired_bootstrap_delta(y, _probs_correct_where(y, a_right),
                                   _probs_correct_where(y, b_right), n_boot=400, seed=rep)
        covered += r.low <= true_delta <= r.high
    assert 0.90 * reps <= covered <= 0.99 * reps


def test_one_seed_as_a_3d_array_gives_the_single_run_result() -> None:
    rng = np.random.default_rng(7)
    y = _labels(rng, 200, [0.3, 0.4, 0.2])
    pa, pb = _noisy_probs(rng, y, 0.3), _noisy_probs(rng, y, 0.4)
    single = paired_bootstrap_delta(y, pa, pb, n_boot=300, seed=1)
    stacked = paired_bootstrap_delta(y, pa[np.newaxis], pb[np.newaxis], n_boot=300, seed=1)
    fields = ("delta", "low", "high", "f1_a", "f1_b", "n_seeds_a", "n_seeds_b")
    assert [getattr(stacked, f) for f in fields] == [getattr(single, f) for f in fields]
    assert math.isnan(single.sd_a) and math.isnan(stacked.sd_b)


def test_several_seeds_give_the_difference_of_seed_means_and_the_sd_over_seeds() -> None:
    rng = np.random.default_rng(8)
    y = _labels(rng, 300, [0.3, 0.4, 0.2])
    pa = np.stack([_noisy_probs(rng, y, s) for s in (0.25, 0.3, 0.35)])
    pb = np.stack([_noisy_probs(rng, y, s) for s in (0.4, 0.5)])  # seed counts may differ
    f1_a = [weighted_f1(y, p) for p in pa]
    f1_b = [weighted_f1(y, p) for p in pb]
    r = paired_bootstrap_delta(y, pa, pb, n_boot=300)
    assert (r.n_seeds_a, r.n_seeds_b) == (3, 2)
    assert r.f1_a == pytest.approx(np.mean(f1_a))
    assert r.f1_b == pytest.approx(np.mean(f1_b))
    assert r.delta == pytest.approx(np.mean(f1_b) - np.mean(f1_a))
    assert r.sd_a == pytest.approx(np.std(f1_a, ddof=1))
    assert r.sd_b == pytest.approx(abs(f1_b[0] - f1_b[1]) / math.sqrt(2))
    assert r.low < r.delta < r.high


def test_seeds_of_the_two_models_are_resampled_independently() -> None:
    # The same three runs given as a and as b: delta is 0, but since seed s of a is not tied to
    # seed s of b, the interval reflects the spread between runs and is not a single point.
    rng = np.random.default_rng(9)
    y = _labels(rng, 300, [0.3, 0.4])
    runs = np.stack([_noisy_probs(rng, y, s) for s in (0.2, 0.35, 0.5)])
    r = paired_bootstrap_delta(y, runs, runs, n_boot=500)
    assert r.delta == 0.0
    assert r.low < -0.01 and r.high > 0.01


# --------------------------------------------------------------------------------------------
# bootstrap_mean_delta


def test_mean_delta_of_one_pair_equals_the_paired_bootstrap_with_the_same_seed() -> None:
    rng = np.random.default_rng(10)
    y = _labels(rng, 250, [0.3, 0.4, 0.2])
    pa, pb = _noisy_probs(rng, y, 0.3), _noisy_probs(rng, y, 0.4)
    pair = paired_bootstrap_delta(y, pa, pb, n_boot=400, seed=3)
    mean = bootstrap_mean_delta({"ptbxl": (y, [(pa, pb)])}, n_boot=400, seed=3)
    assert (mean.delta, mean.low, mean.high) == (pair.delta, pair.low, pair.high)
    assert (mean.n_pairs, mean.n_groups) == (1, 1)


def test_mean_delta_weighs_every_pair_equally_and_pairs_on_one_test_set_share_resamples() -> None:
    rng = np.random.default_rng(11)
    y = _labels(rng, 250, [0.3, 0.4, 0.2])
    pa, pb, pc = (_noisy_probs(rng, y, s) for s in (0.3, 0.4, 0.5))
    deltas = [paired_bootstrap_delta(y, a, b, n_boot=1).delta for a, b in ((pa, pb), (pa, pc))]
    both = bootstrap_mean_delta({"cpsc": (y, [(pa, pb), (pa, pc)])}, n_boot=300)
    assert both.delta == pytest.approx(np.mean(deltas))
    # the same pair twice on one test set: same resample for both, so the mean's interval is
    # exactly the one pair's interval
    one = bootstrap_mean_delta({"cpsc": (y, [(pa, pb)])}, n_boot=300, seed=2)
    twice = bootstrap_mean_delta({"cpsc": (y, [(pa, pb), (pa, pb)])}, n_boot=300, seed=2)
    assert (twice.delta, twice.low, twice.high) == pytest.approx((one.delta, one.low, one.high))


def test_mean_delta_resamples_different_test_sets_independently() -> None:
    # Two test sets holding the same data: drawn independently, the mean of two equal-variance
    # deltas has about 1/sqrt(2) of the spread; drawn together it would have all of it.
    rng = np.random.default_rng(12)
    y = _labels(rng, 400, [0.3, 0.4, 0.2])
    pa, pb = _noisy_probs(rng, y, 0.3), _noisy_probs(rng, y, 0.4)
    one = bootstrap_mean_delta({"a": (y, [(pa, pb)])}, n_boot=3000, seed=5)
    two = bootstrap_mean_delta({"a": (y, [(pa, pb)]), "b": (y, [(pa, pb)])}, n_boot=3000, seed=5)
    assert two.delta == pytest.approx(one.delta)
    ratio = (two.high - two.low) / (one.high - one.low)
    assert 0.6 < ratio < 0.8
    assert two.n_groups == 2


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


# --------------------------------------------------------------------------------------------
# Learning curves


def test_epochs_to_reach_counts_from_one_and_includes_ties() -> None:
    assert epochs_to_reach([0.8, 0.9], 0.5) == 1
    assert epochs_to_reach([0.2, 0.5, 0.7], 0.5) == 2  # reaching the target exactly counts
    assert epochs_to_reach([0.2, 0.4, 0.3], 0.5) is None
    assert epochs_to_reach([], 0.5) is None


def test_convergence_targets_the_scratch_best_minus_the_tolerance() -> None:
    scratch = [0.30, 0.50, 0.60, 0.69, 0.70, 0.65]
    finetune = [0.55, 0.695, 0.72]
    r = convergence(scratch, finetune, tolerance=0.01)
    assert r.target == pytest.approx(0.69)
    # scratch reaches 0.69 at epoch 4 (a tie with the target), fine-tuning at epoch 2
    assert (r.scratch_epoch, r.finetune_epoch, r.epochs_saved) == (4, 2, 2)


def test_convergence_is_negative_when_fine_tuning_is_slower_and_none_when_never_reached() -> None:
    slower = convergence([0.66, 0.7], [0.1, 0.2, 0.65, 0.7], tolerance=0.05)
    assert (slower.scratch_epoch, slower.finetune_epoch, slower.epochs_saved) == (1, 3, -2)
    never = convergence([0.6, 0.7], [0.1, 0.2, 0.3], tolerance=0.0)
    assert (never.scratch_epoch, never.finetune_epoch, never.epochs_saved) == (2, None, None)


def test_crossover_is_the_smallest_size_whose_interval_includes_zero() -> None:
    sizes = [100, 500, 1000, 5000]
    assert crossover(sizes, [(0.05, 0.1), (0.01, 0.04), (-0.01, 0.02), (-0.02, 0.01)]) == 1000
    assert crossover(sizes, [(0.05, 0.1), (0.0, 0.04), (-0.01, 0.02), (-0.02, 0.01)]) == 500
    assert crossover(sizes, [(0.05, 0.1), (0.01, 0.04), (0.01, 0.02), (0.005, 0.01)]) is None
    assert crossover([0.1, 0.5], [(-0.2, -0.1), (-0.05, 0.03)]) == 0.5


# --------------------------------------------------------------------------------------------
# Bad input

_Y = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.int8)
_P = np.array([[0.9, 0.2], [0.3, 0.8], [0.6, 0.4]])


@pytest.mark.parametrize(("call", "message"), [
    (lambda: paired_bootstrap_delta(_Y, _P, _P[:2]), r"probs_b has shape \(2, 2\)"),
    (lambda: paired_bootstrap_delta(_Y, _P, _P[:, :1]), "expected"),
    (lambda: paired_bootstrap_delta(_Y, _P * 3 - 1, _P), "probs_a must be probabilities"),
    (lambda: paired_bootstrap_delta(_Y, _P, np.full_like(_P, np.nan)), "probs_b contains NaN"),
    (lambda: paired_bootstrap_delta(_Y * 2, _P, _P), "0/1"),
    (lambda: paired_bootstrap_delta(_Y[:0], _P[:0], _P[:0]), "no records"),
    (lambda: paired_bootstrap_delta(_Y, _P, _P, n_boot=0), "n_boot must be an integer >= 1"),
    (lambda: paired_bootstrap_delta(_Y, _P, _P, n_boot=1.5), "n_boot"),
    (lambda: paired_bootstrap_delta(_Y, _P, _P, level=1.0), "level must lie strictly"),
    (lambda: paired_bootstrap_delta(_Y, _P, _P, level=0), "level"),
    (lambda: paired_bootstrap_delta(_Y, _P, _P, seed=-1), "seed"),
    (lambda: bootstrap_mean_delta({}), "groups is empty"),
    (lambda: bootstrap_mean_delta({"chapman": (_Y, [])}), "'chapman' has no pairs"),
    (lambda: bootstrap_mean_delta({"cpsc": (_Y, [(_P, _P[:2])])}),
     r"group 'cpsc', pair 0: probs_b has shape"),
    (lambda: weighted_f1_many(_Y, _P[:, :1], [[0]]), "probs has shape"),
    (lambda: macro_auroc(_Y, _P[:2]), "probs has shape"),
    (lambda: macro_auroc(_Y, _P - 1), "probabilities in"),
    (lambda: epochs_to_reach([0.1, math.nan], 0.5), "curve contains NaN"),
    (lambda: epochs_to_reach([0.1], math.nan), "target must be a finite number"),
    (lambda: convergence([], [0.5]), "scratch_curve is empty"),
    (lambda: convergence([0.5], [0.5], tolerance=-0.1), "tolerance must be"),
    (lambda: crossover([1, 2], [(0.0, 1.0)]), "sizes has 2 entries, intervals has 1"),
    (lambda: crossover([2, 1], [(0.0, 1.0), (0.0, 1.0)]), "strictly ascending"),
    (lambda: crossover([1], [(0.5, -0.5)]), "low <= high"),
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
