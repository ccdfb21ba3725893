"""Helpers the dataset generators share: class quotas, demographics, record synthesis."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from . import _synth


def quota(
    rng: np.random.Generator,
    n: int,
    weights: Mapping[str, float],
    required: Sequence[str] | None = None,
) -> list[str]:
    """n case names in random order, each as often as its weight says (largest remainders).

    Why quotas rather than independent draws: a demo of a few dozen records drawn independently
    often lacks a class altogether, and then a test or a tiny training run has nothing to learn
    or measure for it. Every `required` case (default: every case with a positive weight)
    appears at least once when n allows.
    """
    names = list(weights)
    w = np.array([weights[k] for k in names], dtype=np.float64)
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"case weights must be >= 0 with a positive sum, got {dict(weights)}")
    w = w / w.sum()
    counts = np.floor(w * n).astype(int)
    order = np.argsort(-(w * n - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    must = np.array([(k in required) if required is not None else True for k in names]) & (w > 0)
    if n >= int(must.sum()):
        for i in np.flatnonzero(must & (counts == 0)):
            counts[int(np.argmax(counts))] -= 1
            counts[i] = 1
    out = [name for name, c in zip(names, counts, strict=True) for _ in range(int(c))]
    return [out[i] for i in rng.permutation(len(out))]


def pick(rng: np.random.Generator, options: Sequence[tuple[str, float]]) -> str:
    """One name from (name, weight) pairs."""
    w = np.array([p for _, p in options], dtype=np.float64)
    return options[int(rng.choice(len(options), p=w / w.sum()))][0]


def age(rng: np.random.Generator, mean: float, sd: float, lo: int = 18, hi: int = 95) -> int:
    return int(np.clip(round(rng.normal(mean, sd)), lo, hi))


def synthesize(
    findings: Sequence[str],
    subject: _synth.Subject,
    fs: float,
    n: int,
    rng: np.random.Generator,
    *,
    strength: float = 1.0,
    regions: Mapping[str, str] | None = None,
    frank: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply the named findings to the subject's baseline and render one record (mV).

    The findings are as clear as the subject's `difficulty` says (see `_synth.apply`).
    """
    f = subject.baseline
    for name in findings:
        f = _synth.apply(f, name, rng, strength, (regions or {}).get(name), subject.difficulty)
    return _synth.render(f, subject, fs, n, rng, frank=frank)
