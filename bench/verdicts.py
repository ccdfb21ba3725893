"""How often does each claim rule say "supported" when it should not, and how often when it should?

    OMP_NUM_THREADS=1 .venv/bin/python bench/verdicts.py [--quick] [--jobs 2]

The rules of :mod:`ecg_transfer.answer.rules` promise one-sided tests at alpha = (1 - level) / 2
(2.5 % at the default 95 %). Whether the claims keep that promise depends on everything between
the predictions and the interval: the hierarchical bootstrap, how pairings share models, how
few seeds, sets and architectures there are. This bench builds studies whose truth it knows
and runs them through the same code as the workflow (``bootstrap.model_replicates`` ->
``verdicts.Evidence`` -> the claim functions; ``permutation.within_set_correlation`` ->
``rules.melep_ranks``), many times, and counts the verdicts.

**The simulated predictions.** A test set has multi-label ``y`` (five classes, prevalences
0.1-0.4, independent). Each record and class has a *difficulty* shared by every model scored on
the set, so models err on the same records (their errors correlate, as real models' do and as
the bootstrap's shared record resample assumes). A model has a *skill*; each training seed
shifts it (training randomness, scaled so that the seed-to-seed SD of weighted F1 is
``seed_sd``) and adds its own per-record noise. The probability is
``sigmoid((2y - 1)(skill + seed shift + difficulty) + noise)``, thresholded at 0.5 as the study
does. A scenario's **true delta** is a difference of *expected* weighted F1 over seeds on an
infinite test set: the fine-tuned skill is solved for so that this difference is the target
(Gauss-Hermite quadrature over the seed shift), and is checked by Monte Carlo on 20,000 records
and 200 seeds (the calibration table). Convergence curves and MELEP tables are simulated
directly (see their scenarios).

Prints a calibration table, a Markdown table (one row per scenario and claim: the share of
runs with each verdict, ± its simulation SE) and one summary line per claim. Exit status 1
when a false-support rate that is checked exceeds alpha + 3 simulation SE (SE at alpha and the row's
runs), so a regression shows; rows marked *reported* are known limitations the claims state
themselves (one seed) and old rules shown for contrast, which are not checked. Each null row
sits at the edge of its claim's null, where a test is most often wrong: no gain for "fine-tuning
helps", equal gains or equal families for the one-sided comparisons, a gain of exactly the
margin for "the gain vanishes" (equivalence). ``--quick`` runs few studies with a small
bootstrap (seconds; its rates are too noisy to judge); ``--only PREFIX`` runs the scenarios
whose name starts with PREFIX (e.g. ``--only 3.``).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cache, partial

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit, ndtr
from scipy.stats import rankdata

from ecg_transfer.answer import rules
from ecg_transfer.answer.bootstrap import ModelInput, model_replicates
from ecg_transfer.answer.permutation import within_set_correlation
from ecg_transfer.answer.rules import (
    CONTRADICTED,
    INCONCLUSIVE,
    NOT_SUPPORTED,
    NOT_TESTABLE,
    SUPPORTED,
    Plan,
)
from ecg_transfer.answer.verdicts import (
    Claim,
    ConvergencePair,
    Evidence,
    Pairing,
    TestSplit,
    convergence_claims,
    families_claim,
    first_reach,
    gain_trend_claim,
    plateau_target,
    small_set_claim,
    vanishes_largest_claim,
    vanishes_near_paper_claim,
)

#: The plan's defaults (config.yaml ``results:`` as shipped).
PLAN = Plan(level=0.95, margin_f1=0.02, margin_epochs=5,
            margin_retention=0.05, min_test_records=30, min_class_positives=5,
            convergence_tolerance=0.01)
ALPHA = PLAN.alpha
#: The paper's small-set gain and a gain a third of it.
PAPER_GAIN = rules.PAPER_SMALL_GAIN
SMALL_GAIN = 0.044
#: What a row is for: its supported rate must stay <= alpha (+ 3 SE); is power; or is reported
#: only (a limitation the claim states, or an old rule for contrast).
NULL, POWER, REPORTED = "null", "power", "reported"


# --------------------------------------------------------------------------------------------
# The simulated world: skill -> expected weighted F1


@dataclass(frozen=True)
class World:
    """How predictions are simulated (module docstring)."""

    prevalence: tuple[float, ...] = (0.1, 0.15, 0.2, 0.3, 0.4)
    difficulty_sd: float = 1.0  # per record and class, shared by every model of the set
    noise_sd: float = 0.7  # per model, seed, record and class
    seed_sd: float = 0.03  # SD of weighted F1 across training seeds (expected, large test set)
    ref_skill: float = 1.2  # the skill at which the seed shift is scaled to ``seed_sd``

    @property
    def spread(self) -> float:
        return math.hypot(self.difficulty_sd, self.noise_sd)


_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(48)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def population_f1(world: World, skill: np.ndarray | float) -> np.ndarray:
    """Weighted F1 on an infinite test set of a model of ``skill`` (no seed shift)."""
    p = np.asarray(world.prevalence)
    tpr = ndtr(np.asarray(skill, dtype=np.float64)[..., None] / world.spread)
    f1 = 2 * p * tpr / (p + p * tpr + (1 - p) * (1 - tpr))
    return f1 @ (p / p.sum())


@cache
def seed_shift_sd(world: World) -> float:
    """The SD of the seed's skill shift that gives ``world.seed_sd`` of F1 across seeds."""
    if world.seed_sd == 0:
        return 0.0

    def sd_of_f1(s: float) -> float:
        f1 = population_f1(world, world.ref_skill + s * _NODES)
        mean = _WEIGHTS @ f1
        return float(np.sqrt(_WEIGHTS @ (f1 - mean) ** 2)) - world.seed_sd

    return float(brentq(sd_of_f1, 1e-6, 5.0))


def expected_f1(world: World, skill: float) -> float:
    """Weighted F1 on an infinite test set, averaged over training seeds."""
    return float(_WEIGHTS @ population_f1(world, skill + seed_shift_sd(world) * _NODES))


@cache
def skill_for_gain(world: World, scratch_skill: float, delta: float) -> float:
    """The fine-tuned skill whose expected F1 exceeds the scratch model's by ``delta``."""
    if delta == 0:
        return scratch_skill
    target = expected_f1(world, scratch_skill) + delta
    return float(brentq(lambda a: expected_f1(world, a) - target, scratch_skill - 6.0,
                        scratch_skill + 12.0, xtol=1e-10))


def draw_test_set(rng: np.random.Generator, world: World, n: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(labels, signed difficulty): the records of one test set."""
    y = (rng.random((n, len(world.prevalence))) < np.asarray(world.prevalence)).astype(np.int8)
    return y, rng.normal(0.0, world.difficulty_sd, y.shape)


def draw_probs(rng: np.random.Generator, world: World, y: np.ndarray, difficulty: np.ndarray,
               skill: float, n_seeds: int) -> list[np.ndarray]:
    """Each seed's test probabilities (records, classes) of a model of ``skill``."""
    sign = 2.0 * y - 1.0
    out = []
    for _ in range(n_seeds):
        shift = rng.normal(0.0, seed_shift_sd(world))
        logit = sign * (skill + shift + difficulty) + rng.normal(0.0, world.noise_sd, y.shape)
        out.append(expit(logit))
    return out


def monte_carlo_delta(world: World, scratch_skill: float, ft_skill: float, *,
                      records: int = 20_000, seeds: int = 200, seed: int = 0
                      ) -> tuple[float, float, float]:
    """(mean delta F1, its SE, seed SD of the scratch model's F1) on one large test set, with
    the same seed draws for both models (common random numbers)."""
    from ecg_transfer.metrics import weighted_f1

    rng = np.random.default_rng(seed)
    y, difficulty = draw_test_set(rng, world, records)
    sign = 2.0 * y - 1.0
    diffs, scratch = [], []
    for _ in range(seeds):
        shift = rng.normal(0.0, seed_shift_sd(world))
        noise = rng.normal(0.0, world.noise_sd, y.shape)
        f = [weighted_f1(y, expit(sign * (a + shift + difficulty) + noise))
             for a in (scratch_skill, ft_skill)]
        diffs.append(f[1] - f[0])
        scratch.append(f[0])
    d = np.asarray(diffs)
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(seeds)), float(np.std(scratch,
                                                                                   ddof=1))


# --------------------------------------------------------------------------------------------
# A simulated study -> Evidence


#: Scratch skills of the CNNs and RNNs (expected weighted F1 about 0.62-0.68).
CNN_SKILL = {"resnet1d18": 1.15, "resnet1d50": 1.3, "resnet1d101": 1.25}
RNN_SKILL = {"lstm": 1.05, "bilstm": 1.2, "gru": 1.1}
UPSTREAMS = ("ptbxl", "cpsc2018", "georgia")


@dataclass(frozen=True)
class SetSpec:
    """One downstream set of a simulated study: its size and every pairing's true delta."""

    name: str
    n_train: int
    records: int
    deltas: Mapping[tuple[str, str], float]  # (arch, upstream) -> true delta F1
    upstreams: tuple[str, ...] = UPSTREAMS


def _family(arch: str) -> str:
    return "CNN" if arch in CNN_SKILL else "RNN"


def constant_f1(y: np.ndarray) -> float:
    """Weighted F1 of the best constant predictor (every class always positive)."""
    p = y.mean(axis=0)
    f1 = 2 * p / (1 + p)
    return float(f1 @ p / p.sum()) if p.sum() else 0.0


def simulate_evidence(rng: np.random.Generator, world: World, sets: Sequence[SetSpec], *,
                      n_seeds: int, n_boot: int, boot_seed: int) -> Evidence:
    """One study: every set's test records, every model's seeds, the bootstrap, the Evidence.

    Sets listed with ``records=0`` enter ``n_train`` only (a claim that never looks at them
    still needs to know they exist, e.g. which set is the smallest).
    """
    test_sets, models, pairings, splits = {}, {}, [], {}
    for spec in sets:
        if not spec.records:
            continue
        y, difficulty = draw_test_set(rng, world, spec.records)
        test_sets[spec.name] = y
        splits[spec.name] = TestSplit(spec.records, tuple(int(c) for c in y.sum(axis=0)))
        const = constant_f1(y)
        for arch in dict.fromkeys(a for a, _ in spec.deltas):
            base = {**CNN_SKILL, **RNN_SKILL}[arch]
            scratch = (spec.name, arch, "scratch")
            models[scratch] = ModelInput(spec.name, draw_probs(rng, world, y, difficulty, base,
                                                               n_seeds))
            for (a, up), delta in spec.deltas.items():
                if a != arch:
                    continue
                ft = (spec.name, arch, up)
                skill = skill_for_gain(world, base, round(delta, 12))
                models[ft] = ModelInput(spec.name, draw_probs(rng, world, y, difficulty, skill,
                                                              n_seeds))
                pairings.append(Pairing(spec.name, arch, _family(arch), up, None, spec.n_train,
                                        scratch, ft, const))
    estimates = model_replicates(test_sets, models, n_boot=n_boot, seed=boot_seed)
    return Evidence("validation", estimates,
                    {k: n_seeds for k in models}, pairings, splits,
                    {s.name: s.n_train for s in sets}, n_boot, boot_seed)


def cnn_deltas(delta: float, upstreams: Sequence[str] = UPSTREAMS
               ) -> dict[tuple[str, str], float]:
    return {(a, u): delta for a in CNN_SKILL for u in upstreams}


# --------------------------------------------------------------------------------------------
# The studies of each scenario: run index -> {claim label: (verdict, estimate)}

#: Old rules, applied beside the current ones for contrast.
OLD_MEAN = "old: interval includes 0"
OLD_ONE = "old: includes 0, one pairing"
OLD_POOLED = "old: pooled Spearman"

Outcome = dict[str, tuple[str, float]]


def _judged(claim: Claim) -> Outcome:
    return {claim.key: (claim.verdict, math.nan if claim.estimate is None else claim.estimate)}


def _includes_zero(low: float, high: float) -> str:
    """The rule before TOST: "the gain vanished" when the interval includes 0."""
    return SUPPORTED if low <= 0.0 <= high else NOT_SUPPORTED


def _rng(seed: int, run: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, run]))


def _boot_seed(seed: int, run: int) -> int:
    return seed * 1_000_003 + run


def small_set_study(run: int, *, delta: float, records: int, n_seeds: int, n_boot: int,
                    seed: int, world: World = World()) -> Outcome:
    """Claim 1 on one downstream set (827 training records), 3 CNNs x 3 upstreams."""
    ev = simulate_evidence(_rng(seed, run), world,
                           [SetSpec("ribeiro", 827, records, cnn_deltas(delta))],
                           n_seeds=n_seeds, n_boot=n_boot, boot_seed=_boot_seed(seed, run))
    return _judged(small_set_claim(ev, PLAN))


def vanishes_study(run: int, *, delta: float, records: int, n_seeds: int, n_boot: int,
                   seed: int, world: World = World()) -> Outcome:
    """Claim 2a on the largest set (6000 training records, so claim 2b judges the same
    pairings), 3 CNNs x 2 upstreams; beside it the old rule "the interval includes 0"."""
    sets = [SetSpec("ribeiro", 827, 0, {}),
            SetSpec("georgia", 6000, records, cnn_deltas(delta, UPSTREAMS[:2]))]
    ev = simulate_evidence(_rng(seed, run), world, sets, n_seeds=n_seeds, n_boot=n_boot,
                           boot_seed=_boot_seed(seed, run))
    claim = vanishes_largest_claim(ev, PLAN)
    near = vanishes_near_paper_claim(ev, PLAN)
    if near.verdict != claim.verdict:
        raise AssertionError(f"run {run}: vanishes_near_6000 says {near.verdict!r} on the same "
                             f"pairings where vanishes_largest says {claim.verdict!r}")
    one = ev.delta(ev.pairings[0])
    return {**_judged(claim),
            OLD_MEAN: (_includes_zero(claim.low, claim.high), claim.estimate),
            OLD_ONE: (_includes_zero(*one.interval(PLAN.level)), one.point)}


def trend_study(run: int, *, delta_small: float, delta_large: float, records: tuple[int, int],
                n_seeds: int, n_boot: int, seed: int, world: World = World()
                ) -> Outcome:
    """Claim 3: the smallest (827) and largest (17,000 training records) set, 3 CNNs each."""
    sets = [SetSpec("ribeiro", 827, records[0], cnn_deltas(delta_small)),
            SetSpec("ptbxl", 17_000, records[1], cnn_deltas(delta_large, UPSTREAMS[1:]))]
    ev = simulate_evidence(_rng(seed, run), world, sets, n_seeds=n_seeds, n_boot=n_boot,
                           boot_seed=_boot_seed(seed, run))
    return _judged(gain_trend_claim(ev, PLAN))


def families_study(run: int, *, family_gain: float, arch_sd: float, records: int,
                   n_seeds: int, n_boot: int, seed: int, cnn_extra: float = 0.0,
                   world: World = World()) -> Outcome:
    """Claim 4: 3 CNNs and 3 RNNs x 3 upstreams on one set. Each architecture's true delta is
    ``family_gain`` (CNNs: plus ``cnn_extra``) plus an architecture effect N(0, ``arch_sd``)
    drawn anew in every study (the claim is about the families, of which these networks are
    a draw), the same for every upstream of the architecture; with ``cnn_extra`` 0 the two
    families' means are equal."""
    rng = _rng(seed, run)
    effect = {a: float(np.round(family_gain + (cnn_extra if a in CNN_SKILL else 0.0)
                                + rng.normal(0.0, arch_sd), 4))
              for a in (*CNN_SKILL, *RNN_SKILL)}
    deltas = {(a, u): effect[a] for a in effect for u in UPSTREAMS}
    ev = simulate_evidence(rng, world, [SetSpec("georgia", 6000, records, deltas)],
                           n_seeds=n_seeds, n_boot=n_boot, boot_seed=_boot_seed(seed, run))
    return _judged(families_claim(ev, PLAN))


#: The shape of a learning curve: F1 = plateau - RISE * exp(-epoch / tau).
RISE = 0.35


def _tau(reach: float, tolerance: float) -> float:
    """tau of a noise-free curve that first comes within ``tolerance`` of its plateau at epoch
    ``reach``."""
    return reach / math.log(RISE / tolerance)


def _curve(rng: np.random.Generator, plateau: float, reach: float, epochs: int, n_seeds: int,
           seed_sd: float, epoch_sd: float, tolerance: float) -> np.ndarray:
    """Mean over seeds of per-epoch test F1: each seed's plateau shifted by N(0, seed_sd),
    every epoch's F1 by N(0, epoch_sd)."""
    t = np.arange(1, epochs + 1)
    base = plateau - RISE * np.exp(-t / _tau(reach, tolerance))
    shifts = rng.normal(0.0, seed_sd, (n_seeds, 1))
    return (base + shifts + rng.normal(0.0, epoch_sd, (n_seeds, epochs))).mean(axis=0)


def convergence_truth(saving: float, gap: float, *, scratch_reach: float = 50.0,
                      epochs: int = 100) -> float:
    """Epochs saved by the noise-free curves, under the claim's own rule (censored at
    epochs + 1 where fine-tuning never reaches the target)."""
    plateau = 0.7
    tol = PLAN.convergence_tolerance
    pair = ConvergencePair("d", "a", "u",
                           _curve(_rng(0, 0), plateau, scratch_reach, epochs, 1, 0, 0, tol),
                           _curve(_rng(0, 0), plateau - gap, scratch_reach - saving, epochs, 1,
                                  0, 0, tol))
    target = plateau_target(pair.scratch, tol)
    ft = first_reach(pair.finetune, target)
    return float(first_reach(pair.scratch, target) - (epochs + 1 if ft is None else ft))


def convergence_study(run: int, *, saving: float, gap: float, clusters: tuple[int, int],
                      upstreams: int, n_seeds: int, seed_sd: float, epoch_sd: float,
                      n_boot: int, seed: int, epochs: int = 100, scratch_reach: float = 50.0
                      ) -> Outcome:
    """Claims 5a/5b: (downstream x arch) clusters, each one scratch curve and ``upstreams``
    fine-tuned curves. Scratch comes within the tolerance of its plateau (drawn from
    U(0.55, 0.8) per cluster) at ``scratch_reach`` epochs; fine-tuning ``saving`` epochs
    sooner, at a plateau ``gap`` lower."""
    rng = _rng(seed, run)
    tol = PLAN.convergence_tolerance
    pairs = []
    for d in range(clusters[0]):
        for a in range(clusters[1]):
            plateau = rng.uniform(0.55, 0.8)
            scratch = _curve(rng, plateau, scratch_reach, epochs, n_seeds, seed_sd, epoch_sd, tol)
            for u in range(upstreams):
                ft = _curve(rng, plateau - gap, scratch_reach - saving, epochs, n_seeds,
                            seed_sd, epoch_sd, tol)
                pairs.append(ConvergencePair(f"d{d}", f"a{a}", f"u{u}", scratch, ft, n_seeds))
    faster, by_paper = convergence_claims(pairs, PLAN, n_boot=n_boot,
                                          seed=_boot_seed(seed, run))
    return {**_judged(faster), **_judged(by_paper)}


#: The study's MELEP design: each downstream set and the upstreams fine-tuned onto it.
MELEP_SETS = {"ptbxl": ("cpsc2018", "georgia"), "cpsc2018": ("ptbxl", "georgia"),
              "georgia": ("ptbxl", "cpsc2018"), "ptb": UPSTREAMS, "ribeiro": UPSTREAMS}
MELEP_ARCHS = (*CNN_SKILL, *RNN_SKILL)


def melep_table(rng: np.random.Generator, within: float) -> dict[str, list]:
    """One study's (downstream, arch, upstream, MELEP, delta) rows.

    Between sets, MELEP levels (label entropy) and delta levels differ and are strongly related
    (lower-MELEP sets gain more), as in the study. Within a set, each upstream has a MELEP
    effect and a delta effect shared by every architecture (an upstream that suits a set suits
    all its networks), correlated ``within`` (0: MELEP says nothing about which upstream to
    pick), plus per-architecture noise on both.
    """
    levels = rng.permutation(np.linspace(0.4, 1.6, len(MELEP_SETS)))
    rows: dict[str, list] = {c: [] for c in ("downstream", "arch", "upstream", "score", "delta")}
    for (down, ups), level in zip(MELEP_SETS.items(), levels, strict=True):
        gain = 0.12 - 0.08 * level + rng.normal(0.0, 0.01)
        z = rng.normal(size=len(ups))
        w = within * z + math.sqrt(1 - within**2) * rng.normal(size=len(ups))
        for arch in MELEP_ARCHS:
            for u, zu, wu in zip(ups, z, w, strict=True):
                rows["downstream"].append(down)
                rows["arch"].append(arch)
                rows["upstream"].append(u)
                rows["score"].append(level + 0.1 * zu + 0.03 * rng.normal())
                rows["delta"].append(gain - 0.02 * wu + 0.015 * rng.normal())
    return rows


def pooled_spearman_rule(score: np.ndarray, delta: np.ndarray, n_boot: int, seed: int
                         ) -> tuple[str, float]:
    """The old rule: Spearman r of MELEP with delta pooled over every row, percentile interval from
    resampling the rows; "supported" when the interval lies below 0. (verdict, r)"""
    r_all = float(np.corrcoef(rankdata(score), rankdata(delta))[0, 1])
    idx = np.random.default_rng(seed).integers(0, len(score), size=(n_boot, len(score)))
    rs, rd = rankdata(score[idx], axis=1), rankdata(delta[idx], axis=1)
    rs -= rs.mean(axis=1, keepdims=True)
    rd -= rd.mean(axis=1, keepdims=True)
    den = np.sqrt((rs**2).sum(axis=1) * (rd**2).sum(axis=1))
    r = (rs * rd).sum(axis=1)[den > 0] / den[den > 0]
    low, high = np.quantile(r, [ALPHA, 1 - ALPHA])
    return SUPPORTED if high < 0 else NOT_SUPPORTED if low > 0 else INCONCLUSIVE, r_all


def melep_study(run: int, *, within: float, n_boot: int, seed: int) -> Outcome:
    """Claim "lower MELEP, larger gain, within a downstream set" and the old pooled rule."""
    table = melep_table(_rng(seed, run), within)
    test = within_set_correlation(table)
    verdict = rules.melep_ranks(test.p_less, test.p_greater, test.min_p, ALPHA)
    old, r = pooled_spearman_rule(np.asarray(table["score"]), np.asarray(table["delta"]),
                                  n_boot, _boot_seed(seed, run))
    return {"melep_ranks": (verdict, test.statistic), OLD_POOLED: (old, r)}


# --------------------------------------------------------------------------------------------
# Scenarios and their tallies


@dataclass(frozen=True)
class Scenario:
    """One group of rows of the table: a study to repeat and what each claim's rate means."""

    name: str
    truth: str
    records: str
    seeds: str
    study: Callable[[int], Outcome]
    roles: Mapping[str, str]  # claim label shown -> NULL | POWER | REPORTED
    runs: int
    note: Mapping[str, str] = field(default_factory=dict)  # claim label -> why reported

    def where(self) -> str:
        """The row in words, for the summary lines."""
        records = (f"{self.records} test records" if self.records.replace(" / ", "").isdigit()
                   else self.records)
        return "; ".join([self.truth, records] + ([f"{self.seeds} seed(s)"]
                                                  if self.seeds != "-" else []))


@dataclass
class Tally:
    """Verdict counts and the sum of the estimates per claim label over ``runs`` studies."""

    runs: int
    counts: dict[str, Counter] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=dict)

    def add(self, outcome: Outcome) -> None:
        for label, (verdict, estimate) in outcome.items():
            self.counts.setdefault(label, Counter())[verdict] += 1
            self.sums[label] = self.sums.get(label, 0.0) + estimate

    def merge(self, other: Tally) -> None:
        for label, c in other.counts.items():
            self.counts.setdefault(label, Counter()).update(c)
            self.sums[label] = self.sums.get(label, 0.0) + other.sums[label]

    def rate(self, label: str, verdict: str = SUPPORTED) -> float:
        return self.counts[label][verdict] / self.runs

    def se(self, label: str, verdict: str = SUPPORTED) -> float:
        p = self.rate(label, verdict)
        return math.sqrt(p * (1 - p) / self.runs)

    def mean_estimate(self, label: str) -> float:
        return self.sums[label] / self.runs


def null_limit(runs: int, alpha: float = ALPHA) -> float:
    """The largest false-support rate still alpha within simulation error (3 SE at alpha)."""
    return alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


def tally(study: Callable[[int], Outcome], runs: int | range) -> Tally:
    """Run ``study`` for run indices 0..runs-1 (or the range given) in this process."""
    indices = range(runs) if isinstance(runs, int) else runs
    out = Tally(len(indices))
    for run in indices:
        out.add(study(run))
    return out


def tally_all(scenarios: Sequence[Scenario], jobs: int, chunk: int = 25) -> list[Tally]:
    """Every scenario's tally, the runs spread over ``jobs`` processes. Each run draws from
    its own seed, so the counts do not depend on ``jobs`` or on the order of completion."""
    pieces = [(i, range(a, min(a + chunk, s.runs)))
              for i, s in enumerate(scenarios) for a in range(0, s.runs, chunk)]
    studies = [scenarios[i].study for i, _ in pieces]
    ranges = [r for _, r in pieces]
    if jobs <= 1:
        results = list(map(tally, studies, ranges))
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(tally, studies, ranges))
    out = [Tally(s.runs) for s in scenarios]
    for (i, _), part in zip(pieces, results, strict=True):
        out[i].merge(part)
    return out


def scenarios(*, quick: bool) -> list[Scenario]:
    """The rows of the table. Full: 1000 runs where a rate must stay below alpha, fewer for power
    and for the rows that are only reported; ``quick``: a handful, to see that all runs."""
    n_boot = 100 if quick else 500
    null_runs, power_runs, report_runs, cheap_runs = ((40, 20, 20, 200) if quick
                                                      else (1000, 300, 500, 2000))
    out: list[Scenario] = []

    def add(name, truth, records, seeds, study, roles, runs, note=None):
        out.append(Scenario(name, truth, str(records), str(seeds), study, roles, runs,
                            note or {}))

    one_seed = "one seed: training randomness is outside the interval (the claim says so)"
    for records in (38, 100, 300, 1000):
        for n_seeds in (1, 3):
            add("1. no gain", "delta = 0", records, n_seeds,
                partial(small_set_study, delta=0.0, records=records, n_seeds=n_seeds,
                        n_boot=n_boot, seed=11),
                {"small_set_gain": REPORTED if n_seeds == 1 else NULL},
                report_runs if n_seeds == 1 else null_runs, {"small_set_gain": one_seed})
    add("1. no gain", "delta = 0", 300, 10,
        partial(small_set_study, delta=0.0, records=300, n_seeds=10, n_boot=n_boot, seed=11),
        {"small_set_gain": NULL}, null_runs)
    for delta in (PAPER_GAIN, SMALL_GAIN):
        for records in (38, 100, 300):
            add("2. gain", f"delta = +{delta:g}", records, 3,
                partial(small_set_study, delta=delta, records=records, n_seeds=3,
                        n_boot=n_boot, seed=12), {"small_set_gain": POWER}, power_runs)
    old_note = {OLD_MEAN: "the rule before TOST (same interval), for contrast",
                OLD_ONE: "the rule before TOST on one pairing (ResNet1d18, one upstream), "
                         "for contrast",
                "vanishes_largest": one_seed}
    old = {OLD_MEAN: REPORTED, OLD_ONE: REPORTED}
    for records, n_seeds in ((100, 3), (300, 3), (1000, 3), (300, 10), (1000, 10)):
        add("3. gain vanished", "delta = 0", records, n_seeds,
            partial(vanishes_study, delta=0.0, records=records, n_seeds=n_seeds,
                    n_boot=n_boot, seed=13),
            {"vanishes_largest": POWER} | (old if n_seeds == 3 else {}), power_runs, old_note)
    # The least favourable truth for an equivalence test: a gain of exactly the margin.
    for records, n_seeds in ((1000, 3), (300, 10), (1000, 10)):
        add("3. gain at the margin", f"delta = +{PLAN.margin_f1:g} (the margin)", records,
            n_seeds, partial(vanishes_study, delta=PLAN.margin_f1, records=records,
                             n_seeds=n_seeds, n_boot=n_boot, seed=19),
            {"vanishes_largest": NULL} | (old if n_seeds == 3 else {}), null_runs, old_note)
    for n_seeds in (3, 1):
        for records in (38, 100, 300, 1000):
            add("3. gain not vanished", f"delta = +{SMALL_GAIN:g}", records, n_seeds,
                partial(vanishes_study, delta=SMALL_GAIN, records=records, n_seeds=n_seeds,
                        n_boot=n_boot, seed=14),
                {"vanishes_largest": NULL if n_seeds > 1 else REPORTED, **old},
                null_runs if n_seeds > 1 else report_runs, old_note)
    for small, large, role in ((PAPER_GAIN, 0.0, POWER), (SMALL_GAIN, 0.0, POWER),
                               (SMALL_GAIN, SMALL_GAIN, NULL), (PAPER_GAIN, PAPER_GAIN, NULL)):
        add("4. gain shrinks with size" if role == POWER else "4. gain equal at both sizes",
            f"delta small {small:+g}, large {large:+g}", "100 / 300", 3,
            partial(trend_study, delta_small=small, delta_large=large, records=(100, 300),
                    n_seeds=3, n_boot=n_boot, seed=15),
            {"gain_trend": role}, power_runs if role == POWER else null_runs)
    conv = {"clusters": (3, 3), "upstreams": 2, "n_seeds": 3, "epoch_sd": 0.015,
            "n_boot": n_boot}
    for saving, gap, seed_sd, roles in (
            (30.0, 0.03, 0.03, {"faster": NULL, "faster_by_paper": NULL}),
            (30.0, 0.02, 0.03, {"faster": NULL, "faster_by_paper": NULL}),
            (0.0, 0.0, 0.03, {"faster": NULL, "faster_by_paper": NULL}),
            (24.0, 0.0, 0.03, {"faster": POWER, "faster_by_paper": NULL}),
            (24.0, 0.0, 0.0, {"faster": POWER, "faster_by_paper": NULL}),
            (30.0, 0.0, 0.03, {"faster": POWER, "faster_by_paper": POWER}),
            (30.0, 0.0, 0.0, {"faster": POWER, "faster_by_paper": POWER})):
        truth = convergence_truth(saving, gap)
        what = (f"fine-tuning plateaus {gap:g} below scratch" if gap
                else f"fine-tuning {saving:g} epochs sooner, same plateau")
        add("5. convergence", f"{what}; seed SD {seed_sd:g} (epochs saved, noise-free: "
            f"{truth:+g})", "9 clusters x 2 pairings, 100 epochs", 3,
            partial(convergence_study, saving=saving, gap=gap, seed_sd=seed_sd, seed=16,
                    **conv), roles, cheap_runs)
    for within, role in ((0.0, NULL), (0.9, POWER)):
        add("6. MELEP", "no within-set relation" if within == 0 else
            f"upstream effects correlated {-within:g} within sets",
            "5 sets x 6 archs x 2-3 upstreams", "-",
            partial(melep_study, within=within, n_boot=n_boot, seed=17),
            {"melep_ranks": role, OLD_POOLED: REPORTED}, cheap_runs,
            {OLD_POOLED: "the rule before the permutation test, for contrast"})
    for arch_sd in (0.0, 0.03):
        add("7. CNN vs RNN", f"no family difference; architecture SD {arch_sd:g}", 300, 3,
            partial(families_study, family_gain=0.04, arch_sd=arch_sd, records=300, n_seeds=3,
                    n_boot=n_boot, seed=18), {"families": NULL}, null_runs)
    add("7. CNN vs RNN", f"CNN gain +{PAPER_GAIN:g}, RNN +{SMALL_GAIN:g}; architecture SD 0.03",
        300, 3, partial(families_study, family_gain=SMALL_GAIN, cnn_extra=PAPER_GAIN - SMALL_GAIN,
                        arch_sd=0.03, records=300, n_seeds=3, n_boot=n_boot, seed=18),
        {"families": POWER}, power_runs)
    return out


# --------------------------------------------------------------------------------------------
# Report


def calibration_rows(world: World, *, quick: bool) -> list[str]:
    """The skills behind each target delta and a Monte Carlo check of the delta they give."""
    records, seeds = (2000, 40) if quick else (20_000, 200)
    lines = ["| scratch skill (arch, expected F1) | target delta | fine-tuned skill "
             f"| delta by quadrature | delta by Monte Carlo ({records:,} records, {seeds} seeds) "
             "| seed SD of F1 |",
             "|---|---|---|---|---|---|"]
    for arch in ("resnet1d18", "resnet1d50"):
        base = CNN_SKILL[arch]
        for delta in (0.0, SMALL_GAIN, PAPER_GAIN):
            skill = skill_for_gain(world, base, delta)
            exact = expected_f1(world, skill) - expected_f1(world, base)
            mc, se, sd = monte_carlo_delta(world, base, skill, records=records, seeds=seeds)
            lines.append(f"| {base:g} ({arch}, {expected_f1(world, base):.3f}) | {delta:+.3f} "
                         f"| {skill:.3f} | {exact:+.4f} | {mc:+.4f} ± {se:.4f} | {sd:.3f} |")
    return lines


_COLUMNS = [(SUPPORTED,), (NOT_SUPPORTED, CONTRADICTED), (INCONCLUSIVE,), (NOT_TESTABLE,)]


def _pct(p: float) -> str:
    return f"{100 * p:.1f} %"


def table_rows(scen: Sequence[Scenario], tallies: Sequence[Tally]
               ) -> tuple[list[str], list[str]]:
    """(Markdown lines, the checked rows whose false-support rate exceeds alpha + 3 SE)."""
    lines = ["| scenario | claim | truth | test records | seeds | runs | mean estimate | "
             "supported ± SE | not supported / contradicted | inconclusive | not testable | "
             "reading |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    failures = []
    for s, t in zip(scen, tallies, strict=True):
        for label, role in s.roles.items():
            rates = [sum(t.rate(label, v) for v in col) for col in _COLUMNS]
            if role == NULL:
                limit = null_limit(t.runs)
                ok = rates[0] <= limit
                reading = f"false support (limit {_pct(limit)}): " + ("ok" if ok else
                                                                     "**EXCEEDS**")
                if not ok:
                    failures.append(f"{s.name}, {label}, {s.truth}, {s.records} records, "
                                    f"{s.seeds} seed(s): {_pct(rates[0])} > {_pct(limit)}")
            elif role == POWER:
                reading = "power"
            else:
                reading = f"reported: {s.note.get(label, '')}"
            lines.append(f"| {s.name} | {label} | {s.truth} | {s.records} | {s.seeds} | "
                         f"{t.runs} | {t.mean_estimate(label):+.3f} | {_pct(rates[0])} ± "
                         f"{100 * t.se(label):.1f} | {_pct(rates[1])} | {_pct(rates[2])} | "
                         f"{_pct(rates[3])} | {reading} |")
    return lines, failures


def summary_lines(scen: Sequence[Scenario], tallies: Sequence[Tally]) -> list[str]:
    """Per claim: the worst checked false-support rate, the power range, the reported range."""
    by: dict[str, dict[str, list[tuple[float, str]]]] = {}
    for s, t in zip(scen, tallies, strict=True):
        for label, role in s.roles.items():
            by.setdefault(label, {}).setdefault(role, []).append((t.rate(label), s.where()))
    out = []
    for label, roles in by.items():
        parts = []
        if NULL in roles:
            worst = max(roles[NULL])
            parts.append(f"worst false support {_pct(worst[0])} ({worst[1]}) against alpha = "
                         f"{_pct(ALPHA)}")
        if POWER in roles:
            rates = [r for r, _ in roles[POWER]]
            parts.append(f"power {_pct(min(rates))}-{_pct(max(rates))}")
        if REPORTED in roles:
            rates = [r for r, _ in roles[REPORTED]]
            parts.append(f"rows only reported: supported {_pct(min(rates))}-"
                         f"{_pct(max(rates))}")
        out.append(f"- **{label}**: " + "; ".join(parts) + ".")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few runs, small bootstrap")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", default="", help="run the scenarios whose name starts so")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    world = World()
    print(f"Plan: {PLAN.as_dict()}; alpha = {ALPHA:g} per one-sided test.\n")
    print(f"World: {world}; seed shift SD (logit) {seed_shift_sd(world):.3f}.\n")
    print("\n".join(calibration_rows(world, quick=args.quick)) + "\n")
    scen = [s for s in scenarios(quick=args.quick) if s.name.startswith(args.only)]
    tallies = tally_all(scen, args.jobs)
    lines, failures = table_rows(scen, tallies)
    print("\n".join(lines) + "\n")
    print("\n".join(summary_lines(scen, tallies)))
    print(f"\n{sum(s.runs for s in scen)} studies in {time.perf_counter() - start:.0f} s "
          f"with {args.jobs} process(es).")
    if failures:
        print("\nFalse-support rates above alpha + 3 SE:\n" + "\n".join(f"- {f}" for f in failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
