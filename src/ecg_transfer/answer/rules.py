"""The study's decision rules, declared before the data: its statistical analysis plan.

Every verdict in ``claims.md`` comes from one function here, applied to an estimate and its
interval from :mod:`ecg_transfer.answer.bootstrap`. The parameters a verdict depends on — the
interval's coverage, the equivalence margins, the smallest test split worth judging — are
config keys (``results:`` in config.yaml, documented in the README's "Reading the results")
gathered in :class:`Plan`; the paper's own numbers are the constants below. Nothing else
decides: tables, Markdown and figures read the verdicts, they never make them.

**Four outcomes.** A claim is *supported*; or *contradicted* (for a one-sided claim, "X is
larger", *not supported*: the data show it is not larger by a margin that matters); or
*inconclusive* (the data cannot tell); or *not testable* (the run lacks what the claim needs,
and the claim says what). An interval that includes 0 is never read as "no difference": that
takes an **equivalence test** (TOST), whose interval must lie inside ±margin.

**One interval per claim.** Every decision reads the two-sided ``level`` interval printed beside
it. Its ends are two one-sided tests, each at alpha = (1 - level) / 2 (2.5 % at the default 95 %):
"low end > 0" is a one-sided test that the value is above 0; "interval inside ±margin" is TOST
at alpha (the 1 - 2alpha interval of the TOST literature is this interval).

**Margins** (why these values, README "Reading the results"): ``margin_f1`` bounds a difference
in weighted F1 too small to choose a training regime by (twice the ±0.01 that published practice
takes as the region of practical equivalence of AUROC, since F1 at a fixed threshold moves more);
``margin_epochs`` for epochs saved; ``margin_retention`` for the share of skill kept under
perturbation. No claim is decided on AUROC, so it has no margin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

__all__ = [
    "CONTRADICTED",
    "INCONCLUSIVE",
    "NOT_SUPPORTED",
    "NOT_TESTABLE",
    "PAPER_EPOCHS_SAVED",
    "PAPER_SMALL_GAIN",
    "PAPER_SMALL_SET",
    "PAPER_VANISH_SIZE",
    "SUPPORTED",
    "VERDICTS",
    "Plan",
    "at_or_below_constant",
    "crossover",
    "equivalent",
    "faster",
    "gain",
    "in_paper_range",
    "melep_ranks",
    "near_paper_size",
    "split_too_small",
]

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
NOT_SUPPORTED = "not supported"
INCONCLUSIVE = "inconclusive"
NOT_TESTABLE = "not testable"
VERDICTS = (SUPPORTED, CONTRADICTED, NOT_SUPPORTED, INCONCLUSIVE, NOT_TESTABLE)

#: The paper's numbers the claims are tested against (Nguyen & Do, PLOS ONE 2025).
PAPER_SMALL_GAIN = 0.14  # "up to +0.14 F1" ...
PAPER_SMALL_SET = 827  # ... "at 827 samples" (Ribeiro)
PAPER_VANISH_SIZE = 6000  # the gain "vanishes near 6000 samples"
PAPER_EPOCHS_SAVED = (30.0, 35.0)  # fine-tuning reaches the same F1 "30-35 epochs sooner"
#: A training set counts as "near 6000" within this factor either way (4000-9000 records).
NEAR_FACTOR = 1.5
#: Epochs trained below which a saving of the paper's size could not be seen at all.
MIN_EPOCHS_FOR_MAGNITUDE = int(PAPER_EPOCHS_SAVED[1]) + 1
#: Independent units (e.g. (downstream, architecture) clusters of the convergence claim) below
#: which a bootstrap over them is not attempted: with one unit every replicate is the same
#: value and the interval has width 0 ([+1, +1] from a single pairing); from five on, a given
#: unit is missing from about a third of the replicates, so the interval shows the spread.
MIN_UNITS = 5


@dataclass(frozen=True)
class Plan:
    """Every parameter a verdict depends on (config ``results:``), fixed before the data.

    ``alpha`` is the level of each one-sided test: (1 - level) / 2.
    """

    level: float
    margin_f1: float
    margin_epochs: float
    margin_retention: float
    min_test_records: int
    min_class_positives: int
    convergence_tolerance: float

    def __post_init__(self) -> None:
        if not 0.5 < self.level < 1.0:
            raise ValueError(f"results.level must lie in (0.5, 1), got {self.level!r}")
        for name in ("margin_f1", "margin_epochs", "margin_retention",
                     "convergence_tolerance"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"results.{name} must be a finite number >= 0, got {value!r}")
        for name in ("min_test_records", "min_class_positives"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"results.{name} must be an integer >= 1, got {value!r}")

    @property
    def alpha(self) -> float:
        return (1.0 - self.level) / 2.0

    @classmethod
    def from_config(cls, results: Mapping[str, object]) -> Plan:
        """The plan from config ``results:`` (every key filled by the schema's defaults)."""
        names = [f for f in cls.__dataclass_fields__]
        missing = [n for n in names if n not in results]
        if missing:
            raise ValueError(f"config results: missing key(s) {missing}")
        return cls(**{n: results[n] for n in names})  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, float | int]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def _check(low: float, high: float) -> None:
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise ValueError(f"an interval needs finite ends with low <= high, got ({low}, {high})")


# --------------------------------------------------------------------------------------------
# When a claim cannot be judged at all


def split_too_small(n_records: int, positives: Sequence[int], plan: Plan) -> str | None:
    """Why a downstream test split is too small to judge a claim on, or None if it is not.

    A percentile bootstrap of a handful of records gives intervals that are too narrow (one
    record: every replicate identical, interval [Δ, Δ]), so a split needs ``min_test_records``
    records and at least one class with ``min_class_positives`` positives (weighted F1 weighs
    classes by their positives; with none that large, every class's F1 rests on a few records).
    """
    if n_records < plan.min_test_records:
        return (f"its test split has {n_records} record(s); a claim needs at least "
                f"{plan.min_test_records} (results.min_test_records)")
    if not positives or max(positives) < plan.min_class_positives:
        return (f"no class of its test split has {plan.min_class_positives} positives "
                f"(most: {max(positives, default=0)}; results.min_class_positives)")
    return None


def at_or_below_constant(f1_scratch: float, f1_finetune: float, constant: float) -> bool:
    """Both arms of a pairing at or below the best constant predictor: neither model learnt
    anything from the ECG (failed training), so its Δ ≈ 0 says nothing about transfer. Such
    pairings are counted and kept out of the transfer claims."""
    return f1_scratch <= constant + 1e-9 and f1_finetune <= constant + 1e-9


# --------------------------------------------------------------------------------------------
# The rules


def gain(low: float, high: float, margin: float) -> str:
    """One-sided claim "the difference is positive" (fine-tuning helps; the gain is larger on
    small sets; CNNs gain more than RNNs; fine-tuned models keep more skill).

    *supported*: the interval's low end > 0. *not supported*: its high end < ``margin`` (any
    true difference is smaller than the margin, or negative). Otherwise *inconclusive*.
    """
    _check(low, high)
    if low > 0.0:
        return SUPPORTED
    if high < margin:
        return NOT_SUPPORTED
    return INCONCLUSIVE


def equivalent(low: float, high: float, margin: float) -> str:
    """Claim "no difference that matters" (the gain vanishes), by equivalence (TOST).

    *supported*: the interval lies inside (-margin, +margin). *contradicted*: it lies wholly
    outside (low end >= margin or high end <= -margin): a difference of at least the margin.
    Otherwise *inconclusive* — in particular an interval that includes 0 but reaches past the
    margin says only that the test set cannot tell.
    """
    _check(low, high)
    if -margin < low and high < margin:
        return SUPPORTED
    if low >= margin or high <= -margin:
        return CONTRADICTED
    return INCONCLUSIVE


def faster(low: float, high: float, margin_epochs: float) -> str:
    """Claim "fine-tuning reaches the target sooner": :func:`gain` in epochs."""
    return gain(low, high, margin_epochs)


def in_paper_range(low: float, high: float, margin_epochs: float,
                   paper: tuple[float, float] = PAPER_EPOCHS_SAVED) -> str:
    """Claim "about as many epochs sooner as the paper says" (30-35).

    *supported*: the interval lies inside [30 - margin, 35 + margin]. *contradicted*: it lies
    wholly below 30 - margin or wholly above 35 + margin. Otherwise *inconclusive*.
    """
    _check(low, high)
    lo, hi = paper[0] - margin_epochs, paper[1] + margin_epochs
    if lo <= low and high <= hi:
        return SUPPORTED
    if high < lo or low > hi:
        return CONTRADICTED
    return INCONCLUSIVE


def melep_ranks(p_claim: float, p_opposite: float, min_p: float, alpha: float) -> str:
    """Claim "lower MELEP, larger gain, within a downstream set", by a permutation test.

    *not testable* when even a perfect ranking could not reach ``alpha`` (too few upstreams and
    sets for the permutation test). *supported*: p <= alpha for a negative within-set
    correlation; *not supported*: p <= alpha for a positive one (MELEP ranks the wrong way);
    otherwise *inconclusive*.
    """
    if min_p > alpha:
        return NOT_TESTABLE
    if p_claim <= alpha:
        return SUPPORTED
    if p_opposite <= alpha:
        return NOT_SUPPORTED
    return INCONCLUSIVE


# --------------------------------------------------------------------------------------------
# The size axis


def crossover(sizes: Sequence[int], intervals: Sequence[tuple[float, float]],
              margin: float) -> int | None:
    """The smallest training-set size from which Δ is equivalent to 0 (within ±margin) at
    every larger size too, or None ("not reached"): where transfer stops mattering.

    A single interval that includes 0 is not enough (it may only be wide); nor is a size after
    which a larger one shows a gain again.
    """
    if len(sizes) != len(intervals):
        raise ValueError(f"sizes has {len(sizes)} entries, intervals {len(intervals)}")
    if any(b <= a for a, b in pairwise(sizes)):
        raise ValueError(f"sizes must be strictly ascending, got {list(sizes)}")
    found = None
    for size, (low, high) in zip(reversed(sizes), reversed(intervals), strict=True):
        if equivalent(low, high, margin) != SUPPORTED:
            break
        found = size
    return found


def near_paper_size(sizes: Sequence[int]) -> int | None:
    """The training-set size closest to the paper's 6000 (on a log scale) within a factor of
    1.5 either way, or None: where "the gain vanishes near 6000" can be judged."""
    near = [s for s in sizes if PAPER_VANISH_SIZE / NEAR_FACTOR <= s
            <= PAPER_VANISH_SIZE * NEAR_FACTOR]
    if not near:
        return None
    return min(near, key=lambda s: (abs(math.log(s / PAPER_VANISH_SIZE)), s))
