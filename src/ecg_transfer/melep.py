"""How well a pretrained model should transfer, scored before any fine-tuning: MELEP.

MELEP (Nguyen, Duong & Do, "MELEP: A Novel Predictive Measure of Transferability in
Multi-Label ECG Diagnosis", J. Healthc. Inform. Res. 2024, arXiv 2311.04224) needs one forward
pass of the target's training records through the source model's sigmoid head, θ[i, z] for
source label z, and the target's multi-hot labels y. Each source label is read as a binary
"dummy" label, and LEEP (Nguyen et al., ICML 2020) is computed for every (target label y,
source label z) pair:

    P(y, z=1) = (1/N) Σ_{i: y_i=y} θ[i, z]        P(y, z=0) = (1/N) Σ_{i: y_i=y} (1 - θ[i, z])
    P(y | z)  = P(y, z) / P(z)
    LEEP[y, z] = (1/N) Σ_i log( P(y_i | z=0) (1 - θ[i, z]) + P(y_i | z=1) θ[i, z] )
    MELEP[y]  = - mean_z LEEP[y, z]
    MELEP     = Σ_y w_y MELEP[y] / Σ_y w_y,   w_y = (records with y positive) / N

It is the negated log-likelihood, in nats, that a label-to-label lookup built from the source
head gives the target labels, so **lower is better**; a head that says nothing about the
records scores each label's entropy (tests/test_melep.py checks that closed form).

This follows the authors' code, cuongvng/melep-ecg ``melep.py`` (commit 390b19d), step by
step: the joint from ``dummy_probas`` and ``1 - dummy_probas`` summed over the records with
``true_labels[:, y] == 0`` or ``== 1`` and divided by N; ``P_y_given_z = P_yz / P_z``; the mean
of the log over records; ``melep.append(-np.average(melep_this_y))``; and
``np.average(melep, weights=target_weights)`` with ``target_weights = y.sum(axis=0)/N``. So the
weights are each label's prevalence, and ``np.average`` divides by their sum, which is not 1 in
general (a record carries zero, one or several labels). tests/test_melep.py runs a
transcription of that code on random inputs and agrees to float32 precision (their 2 x 2 joint
is a ``torch.zeros`` float32 table; here everything is float64). The paper's own equations
could not be read in full when this was written; its published summary (a score that falls
as transferability rises) matches the sign.

Two degenerate cases:

* a source output that is exactly 0 (or exactly 1) for every record, e.g. a saturated float32
  sigmoid: their ``P_yz / P_z`` is 0/0 and the whole score becomes NaN. Every term that
  conditional multiplies is then 0 as well, so it is set to 0 here and the score is the limit
  of the formula (for a constant head, still the label entropy).
* a target label with no positive record: their code gives it weight 0 and score 0 (every
  record is certainly negative), and so does this; it is kept in ``per_label`` and ``weights``
  so the caller can see it. Only when *no* label has a positive (all weights 0, where their
  ``np.average`` raises ZeroDivisionError) is a ValueError raised.

MELEP averages over *all* source labels, so a head with a few well-matched outputs and many
irrelevant ones is pulled towards the irrelevant ones; that is their definition and is kept.
:func:`leep_argmax` is a simpler reference that reads the head as one multi-class prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ecg_transfer.metrics import _labels

__all__ = ["MelepResult", "leep_argmax", "melep"]

#: Records per block when forming the (records, target labels, source labels) log terms, so a
#: large target set (PTB-XL has ~17k training records) needs a bounded amount of memory.
_BLOCK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class MelepResult:
    """A transferability score, its per-target-label parts and their weights (lower = better).

    ``score == np.average(per_label, weights=weights)``. ``weights`` are the target labels'
    prevalences on the records scored (the authors' ``target_weights``). ``pairwise`` holds
    the LEEP of every (target label, source label) pair (≤ 0, higher = more informative), which
    says *which* source outputs carry a target label; it is None for :func:`leep_argmax`.
    """

    score: float
    per_label: np.ndarray
    weights: np.ndarray
    pairwise: np.ndarray | None = None


def _inputs(theta: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = _labels(y, "y")
    theta = np.asarray(theta, dtype=np.float64)
    if theta.ndim != 2:
        raise ValueError(
            f"theta must be a 2-D (records, source labels) array, got shape {theta.shape}"
        )
    if theta.shape[0] != y.shape[0]:
        raise ValueError(
            f"theta has {theta.shape[0]} records (rows), y has {y.shape[0]}; they must be the "
            "same records in the same order"
        )
    if theta.shape[0] == 0 or theta.shape[1] == 0 or y.shape[1] == 0:
        raise ValueError(
            f"need at least one record, source label and target label; theta has shape "
            f"{theta.shape}, y has shape {y.shape}"
        )
    if np.isnan(theta).any():
        raise ValueError("theta contains NaN")
    if theta.min() < 0.0 or theta.max() > 1.0:
        raise ValueError(
            "theta must be the source head's sigmoid outputs in [0, 1] (apply a sigmoid to "
            f"logits first), got range [{theta.min():.3g}, {theta.max():.3g}]"
        )
    return theta, y.astype(np.float64)


def _weights(y: np.ndarray) -> np.ndarray:
    weights = y.mean(axis=0)
    if weights.sum() == 0:
        raise ValueError(
            "no target label has a positive record; the prevalence-weighted mean is undefined"
        )
    return weights


def melep(theta: ArrayLike, y: ArrayLike) -> MelepResult:
    """MELEP of sigmoid outputs ``theta`` (N, source labels) for multi-hot ``y`` (N, targets).

    ``theta`` comes from the pretrained model before its head is replaced, on the target's
    *training* records (the authors score ``train_data``); lower is better. The module
    docstring gives the formula and the degenerate cases (a source output stuck at 0 or 1:
    the limit here, NaN in the authors' code).
    """
    theta, y = _inputs(theta, y)
    n = theta.shape[0]
    # P(y | z) for y, z in {0, 1}: (target labels, source labels) tables, from the joint
    # summed over the records with y_i = y, as the authors do. A source output that is never
    # (or always) on has P(z) = 0, and every term that multiplies P(y | z) is then 0 as well,
    # so any finite value gives the limit of the formula: take 0 (their code gets NaN).
    cond = {}
    for y_value, rows in ((1, y), (0, 1.0 - y)):
        for z_value, dummy in ((1, theta), (0, 1.0 - theta)):
            joint = rows.T @ dummy / n
            marginal = dummy.mean(axis=0)
            cond[y_value, z_value] = np.divide(joint, marginal, out=np.zeros_like(joint),
                                               where=marginal > 0)
    log_sum = np.zeros_like(cond[1, 1])
    block = max(1, _BLOCK_ELEMENTS // log_sum.size)
    for start in range(0, n, block):
        th = theta[start:start + block, None, :]          # (b, 1, Z)
        pos = y[start:start + block, :, None] > 0.5       # (b, Y, 1)
        # P(y_i | z=0) (1 - θ[i, z]) + P(y_i | z=1) θ[i, z], for every (i, y, z)
        eep = np.where(pos, cond[1, 0] * (1.0 - th) + cond[1, 1] * th,
                       cond[0, 0] * (1.0 - th) + cond[0, 1] * th)
        log_sum += np.log(eep).sum(axis=0)
    pairwise = log_sum / n
    per_label = -pairwise.mean(axis=1)
    weights = _weights(y)
    score = float(np.average(per_label, weights=weights))
    return MelepResult(score=score, per_label=per_label, weights=weights, pairwise=pairwise)


def leep_argmax(theta: ArrayLike, y: ArrayLike) -> MelepResult:
    """A simpler reference: the head's argmax as one hard source label, scored like MELEP.

    Each record gets the single source label its head rates highest (ties to the first), as if
    the source task were multi-class; for each target label, LEEP of that one-hot prediction is
    the empirical -H(y | argmax z), the negative conditional entropy (NCE) of Tran et al.
    (ICCV 2019) — LEEP of hard predictions is exactly NCE. The per-label score is H(y | z) in
    nats, weighted by prevalence as in :func:`melep`, so both sit on one scale: 0 when the
    argmax determines every target label, each label's entropy when it says nothing.

    Why this one: it asks whether a *coarse* reading of the head (which single finding it
    favours) already ranks source models as MELEP does; if it does, MELEP's soft, per-output
    treatment adds little for that target. It is bounded by the label entropy, which makes
    1 - H(y|z)/H(y) a readable fraction of information explained.
    """
    theta, y = _inputs(theta, y)
    n = theta.shape[0]
    onehot = np.zeros_like(theta)
    onehot[np.arange(n), theta.argmax(axis=1)] = 1.0
    count_z = onehot.sum(axis=0)                       # (Z,)
    count_pos = y.T @ onehot                           # (Y, Z): records with y=1 and argmax z
    count_neg = count_z - count_pos

    def plogp(count: np.ndarray) -> np.ndarray:
        # Σ_z n(y,z) log(n(y,z)/n(z)), with 0 log 0 = 0
        p = np.divide(count, count_z, out=np.ones_like(count), where=count_z > 0)
        return count * np.log(np.where(count > 0, p, 1.0))

    per_label = -(plogp(count_pos) + plogp(count_neg)).sum(axis=1) / n
    weights = _weights(y)
    return MelepResult(score=float(np.average(per_label, weights=weights)),
                       per_label=per_label, weights=weights)
