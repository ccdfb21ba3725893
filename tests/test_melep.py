"""MELEP against its definition, the authors' code, and the cases whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ecg_transfer.melep import leep_argmax, melep


def _random_case(seed: int, n: int = 60, n_target: int = 4, n_source: int = 3):
    rng = np.random.default_rng(seed)
    theta = rng.random((n, n_source))
    y = (rng.random((n, n_target)) < rng.uniform(0.15, 0.6, n_target)).astype(np.int8)
    y[0] = 1  # every target label has a positive
    return theta, y


def _loop_melep(theta: np.ndarray, y: np.ndarray) -> tuple[float, list[float]]:
    """The formula of the module docstring, one record, label and source output at a time."""
    n, n_source = theta.shape
    per_label = []
    for k in range(y.shape[1]):
        leeps = []
        for z in range(n_source):
            joint = {(a, b): 0.0 for a in (0, 1) for b in (0, 1)}
            for i in range(n):
                joint[int(y[i, k]), 1] += theta[i, z] / n
                joint[int(y[i, k]), 0] += (1 - theta[i, z]) / n
            p_z = {b: joint[0, b] + joint[1, b] for b in (0, 1)}
            total = 0.0
            for i in range(n):
                yi = int(y[i, k])
                total += math.log(joint[yi, 0] / p_z[0] * (1 - theta[i, z])
                                  + joint[yi, 1] / p_z[1] * theta[i, z])
            leeps.append(total / n)
        per_label.append(-sum(leeps) / n_source)
    weights = [y[:, k].sum() / n for k in range(y.shape[1])]
    score = sum(w * s for w, s in zip(weights, per_label, strict=True)) / sum(weights)
    return score, per_label


def _their_melep(dummy_probas, true_labels, target_weights) -> float:
    """Steps 2 and 3 of ``compute_melep`` in cuongvng/melep-ecg, melep.py at commit
    390b19d38feb0b71a1f3c92ccee7461ec04fccc5 (CC-BY-4.0), transcribed with only the model's
    forward pass (step 1) taken out: ``dummy_probas`` is what it returns. ``N`` and the loop
    bounds come from the tensors instead of the dataset object; the rest is their code."""
    import torch

    N = len(true_labels)  # noqa: N806 -- their names, kept to read side by side
    melep = []
    for y in range(true_labels.shape[1]):
        melep_this_y = []
        for z in range(dummy_probas.shape[1]):
            # Empirical joint distribution
            P_yz = torch.zeros((2, 2))  # noqa: N806
            z_eq_zero_dist = 1 - dummy_probas[:, z]
            P_yz[0][0] = z_eq_zero_dist[torch.argwhere(true_labels[:, y] == 0)].sum() / N
            P_yz[1][0] = z_eq_zero_dist[torch.argwhere(true_labels[:, y] == 1)].sum() / N
            P_yz[0][1] = dummy_probas[:, z][torch.argwhere(true_labels[:, y] == 0)].sum() / N
            P_yz[1][1] = dummy_probas[:, z][torch.argwhere(true_labels[:, y] == 1)].sum() / N
            # Empirical Marginal distribution
            P_z = P_yz.sum(axis=0)  # noqa: N806
            # Empirical conditional distribution
            P_y_given_z = P_yz / P_z  # noqa: N806
            theta_i_z0 = 1 - dummy_probas[:, z]
            theta_i_z1 = dummy_probas[:, z]
            y_i = true_labels[:, y]
            melep_this_pairs = torch.mean(torch.log(
                P_y_given_z[y_i.long(), 0] * theta_i_z0 + P_y_given_z[y_i.long(), 1] * theta_i_z1
            ))
            melep_this_y.append(melep_this_pairs)
        melep.append(-np.average(melep_this_y))
    return np.average(melep, weights=target_weights)


def _entropy(p: float) -> float:
    return -sum(q * math.log(q) for q in (p, 1 - p) if q > 0)


@pytest.mark.parametrize("seed", range(5))
def test_melep_matches_a_loop_transcription_of_the_formula(seed: int) -> None:
    theta, y = _random_case(seed)
    want_score, want_per_label = _loop_melep(theta, y)
    got = melep(theta, y)
    assert got.score == pytest.approx(want_score, rel=1e-10, abs=1e-10)
    np.testing.assert_allclose(got.per_label, want_per_label, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got.weights, y.mean(axis=0), rtol=1e-12)
    assert got.pairwise.shape == (y.shape[1], theta.shape[1])
    assert (got.pairwise <= 0).all()


@pytest.mark.parametrize("seed", range(3))
def test_melep_agrees_with_the_authors_code(seed: int) -> None:
    torch = pytest.importorskip("torch")
    theta, y = _random_case(seed, n=200, n_target=5, n_source=4)
    theirs = _their_melep(torch.from_numpy(theta), torch.from_numpy(y.astype(np.float64)),
                          y.sum(axis=0) / len(y))
    # their 2 x 2 joint table is float32 (torch.zeros), so agreement is to float32 precision
    assert melep(theta, y).score == pytest.approx(float(theirs), rel=1e-6)


def test_a_head_equal_to_the_target_labels_scores_best() -> None:
    rng = np.random.default_rng(0)
    n, k = 400, 5
    y = (rng.random((n, k)) < [0.1, 0.2, 0.3, 0.4, 0.5]).astype(np.int8)
    identity = y.astype(float)
    noisy = np.clip(0.6 * y + 0.4 * rng.random((n, k)), 0, 1)
    shuffled = identity[rng.permutation(n)]
    scores = {name: melep(head, y).score
              for name, head in (("identity", identity), ("noisy", noisy), ("shuffled", shuffled))}
    assert scores["identity"] < scores["noisy"] < scores["shuffled"], scores
    # per label too: the matching source output carries all of its target label
    np.testing.assert_allclose(np.diag(melep(identity, y).pairwise), 0.0, atol=1e-12)


@pytest.mark.parametrize("value", [0.3, 0.0, 1.0])
def test_a_constant_head_scores_the_label_entropy(value: float) -> None:
    # θ independent of the records: P(y | z) = prevalence p, so LEEP = p log p + (1-p) log(1-p)
    # and MELEP = Σ p H(p) / Σ p. θ = 0 or 1 everywhere is the case where the authors' code
    # divides 0 by 0; the limit is the same entropy.
    rng = np.random.default_rng(1)
    y = (rng.random((300, 4)) < [0.05, 0.2, 0.5, 0.9]).astype(np.int8)
    theta = np.full((300, 3), value)
    theta[:, 1] = 0.7
    p = y.mean(axis=0)
    h = np.array([_entropy(q) for q in p])
    got = melep(theta, y)
    np.testing.assert_allclose(got.per_label, h, rtol=1e-12)
    assert got.score == pytest.approx(float((p * h).sum() / p.sum()), rel=1e-12)
    assert leep_argmax(theta, y).score == pytest.approx(got.score, rel=1e-12)


def test_a_source_output_stuck_at_0_or_1_gives_the_limit_where_the_authors_code_gives_nan(
) -> None:
    torch = pytest.importorskip("torch")
    theta, y = _random_case(4, n=200)
    for stuck, near in ((0.0, 1e-9), (1.0, 1 - 1e-9)):
        exact, close = theta.copy(), theta.copy()
        exact[:, 1], close[:, 1] = stuck, near
        theirs = _their_melep(torch.from_numpy(exact), torch.from_numpy(y.astype(np.float64)),
                              y.sum(axis=0) / len(y))
        assert math.isnan(float(theirs))
        assert melep(exact, y).score == pytest.approx(melep(close, y).score, rel=1e-7)


def test_a_target_label_never_positive_weighs_nothing_as_in_the_authors_code() -> None:
    theta, y = _random_case(3)
    y[:, 2] = 0
    got = melep(theta, y)
    assert got.weights[2] == 0.0
    assert got.per_label[2] == pytest.approx(0.0, abs=1e-15)
    without = melep(theta, np.delete(y, 2, axis=1))
    assert got.score == pytest.approx(without.score, rel=1e-12)


def test_leep_argmax_is_the_conditional_entropy_of_the_labels_given_the_argmax() -> None:
    rng = np.random.default_rng(2)
    n = 500
    z = rng.integers(0, 3, n)
    theta = rng.random((n, 3)) * 0.5
    theta[np.arange(n), z] = 0.9
    y = np.stack([z == 0, rng.random(n) < 0.3], axis=1).astype(np.int8)
    got = leep_argmax(theta, y)
    assert got.per_label[0] == pytest.approx(0.0, abs=1e-12)  # determined by the argmax
    h_given_z = sum((z == v).mean() * _entropy(y[z == v, 1].mean()) for v in range(3))
    assert got.per_label[1] == pytest.approx(h_given_z, rel=1e-12)
    assert got.pairwise is None


@pytest.mark.parametrize("score", [melep, leep_argmax])
def test_bad_input_is_refused_with_a_message_that_names_it(score) -> None:
    theta, y = _random_case(0)
    with pytest.raises(ValueError, match="sigmoid"):
        score(theta * 4 - 2, y)
    with pytest.raises(ValueError, match="NaN"):
        score(np.where(theta > 0.5, np.nan, theta), y)
    with pytest.raises(ValueError, match="records"):
        score(theta[:-1], y)
    with pytest.raises(ValueError, match="2-D"):
        score(theta[:, 0], y)
    with pytest.raises(ValueError, match="0/1"):
        score(theta, y * 2)
    with pytest.raises(ValueError, match="no target label has a positive"):
        score(theta, np.zeros_like(y))
