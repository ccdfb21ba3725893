"""The paper's claims, each judged on the question it states: which numbers, which rule.

Every claim here is a small function from the run's :class:`Evidence` (each model's F1 with its
bootstrap replicates, the pairings, the test splits) and the :class:`~.rules.Plan` to a
:class:`Claim`: the estimate, its interval, the rule of :mod:`.rules` that decides, and what the
claim rests on (sets, family, models, seeds). Reading the run and writing Markdown and JSON
belong elsewhere; the simulation of ``bench/verdicts.py`` calls these same functions on runs
whose truth it knows.

The smallest and largest downstream sets are the run's, whatever the selection (``Evidence.
n_train`` holds every set with a full-split pairing in any selection): the validation selection
cannot move claim 1 to another set because only PTB-XL has a validation split; where a
selection cannot be made on the set a claim needs, the claim is *not testable* and says why.
Gains are the CNNs' (the paper's headline numbers are ResNets'), and pairings where both arms
sit at or below the constant predictor (training failed) are kept out and counted.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ecg_transfer.answer import rules
from ecg_transfer.answer.bootstrap import Estimate, cluster_mean, resample_units, slope
from ecg_transfer.answer.rules import NOT_TESTABLE, Plan
from ecg_transfer.answer.runs import FAMILIES

__all__ = [
    "Claim",
    "ConvergencePair",
    "Evidence",
    "FamilyEvidence",
    "Pairing",
    "Reach",
    "TestSplit",
    "convergence_claims",
    "families_claim",
    "family_evidence",
    "first_reach",
    "gain_trend_claim",
    "judge_selection",
    "plateau_target",
    "reach",
    "small_set_claim",
    "vanishes_largest_claim",
    "vanishes_near_paper_claim",
]

#: The family whose gains the paper's gain claims quote.
GAIN_FAMILY = "CNN"


@dataclass(frozen=True)
class Pairing:
    """A fine-tuned model and the scratch model of the same architecture on one training set.

    ``scratch``/``finetune`` are keys of :attr:`Evidence.models`; ``size`` is None for the full
    training split; ``constant_f1`` is the best constant predictor's F1 on the test split.
    """

    downstream: str
    arch: str
    family: str
    upstream: str
    size: int | float | None
    n_train: int
    scratch: Hashable
    finetune: Hashable
    constant_f1: float


@dataclass(frozen=True)
class TestSplit:
    """What :func:`rules.split_too_small` reads of a downstream test split."""

    records: int
    positives: tuple[int, ...]


@dataclass(frozen=True)
class Evidence:
    """Everything the selection-dependent claims read, for one model selection.

    ``n_train`` maps every downstream set with a full-split pairing *in any selection* to its
    training records; ``pairings`` are this selection's; ``seeds`` counts each model's seeds.
    """

    selection: str
    models: Mapping[Hashable, Estimate]
    seeds: Mapping[Hashable, int]
    pairings: Sequence[Pairing]
    splits: Mapping[str, TestSplit]
    n_train: Mapping[str, int]
    n_boot: int
    seed: int

    def delta(self, p: Pairing) -> Estimate:
        return self.models[p.finetune] - self.models[p.scratch]


@dataclass(frozen=True)
class Claim:
    """One claim, its verdict and what it rests on (``claims.json`` writes every field)."""

    key: str
    title: str
    selection: str | None
    verdict: str
    rule: str
    evidence: str
    estimate: float | None = None
    low: float | None = None
    high: float | None = None
    margin: float | None = None
    unit: str = "F1"
    sets: tuple[str, ...] = ()
    family: str | None = None
    models: int = 0
    seeds: tuple[int, ...] = ()
    pairings: int = 0
    excluded: int = 0
    n_tests: int = 1
    extra: Mapping[str, object] = field(default_factory=dict)
    #: the upstreams whose fine-tuned models it compares: datasets the workflow pretrained on,
    #: and models given by file (config key pretrained_models)
    upstreams: tuple[str, ...] = ()

    def seeds_words(self) -> str:
        """How much training randomness the interval carries."""
        if not self.seeds:
            return ""
        lo, hi = min(self.seeds), max(self.seeds)
        count = f"{lo}" if lo == hi else f"{lo}-{hi}"
        words = f"Rests on {self.models} model(s) with {count} seed(s) each"
        if hi == 1:
            return words + ": training randomness (another seed) is outside the interval."
        return words + ": seeds resampled in every replicate, one draw per model."


# --------------------------------------------------------------------------------------------
# Helpers shared by the claims


def _f(x: float) -> str:
    return f"{x:+.3f}"


def _iv(low: float, high: float, digits: int = 3) -> str:
    return f"[{low:+.{digits}f}, {high:+.{digits}f}]"


def _pct(level: float) -> str:
    return f"{100 * level:g} %"


def _transfer(ev: Evidence, sets: Sequence[str], size: object = None,
              family: str | None = GAIN_FAMILY) -> tuple[list[Pairing], int]:
    """The pairings of ``sets`` at ``size`` (None: full split) of ``family``, without those
    whose both arms sit at or below the constant predictor (how many: second value)."""
    chosen = [p for p in ev.pairings if p.downstream in sets and p.size == size
              and (family is None or p.family == family)]
    kept = [p for p in chosen if not rules.at_or_below_constant(
        ev.models[p.scratch].point, ev.models[p.finetune].point, p.constant_f1)]
    return kept, len(chosen) - len(kept)


def _tied(n_train: Mapping[str, int], n: int) -> list[str]:
    return sorted(d for d, m in n_train.items() if m == n)


def _not_testable(key: str, title: str, ev: Evidence | None, rule: str, why: str,
                  sets: Sequence[str] = (), family: str | None = None) -> Claim:
    return Claim(key, title, None if ev is None else ev.selection, NOT_TESTABLE, rule, why,
                 sets=tuple(sets), family=family, n_tests=0)


def _split_problem(ev: Evidence, sets: Sequence[str], plan: Plan) -> str | None:
    for d in sets:
        split = ev.splits.get(d)
        problem = (None if split is None
                   else rules.split_too_small(split.records, split.positives, plan))
        if problem:
            return f"{d}: {problem}."
    return None


def _rests_on(ev: Evidence, pairings: Sequence[Pairing]) -> dict[str, object]:
    models = {m for p in pairings for m in (p.scratch, p.finetune)}
    return {"models": len(models), "seeds": tuple(sorted({ev.seeds[m] for m in models})),
            "pairings": len(pairings),
            "upstreams": tuple(sorted({p.upstream for p in pairings}))}


def _excluded_words(n: int) -> str:
    return (f" {n} pairing(s) where both arms sit at or below the constant predictor (failed "
            "training) are left out." if n else "")


def _mean_delta(ev: Evidence, pairings: Sequence[Pairing]) -> Estimate:
    return Estimate.mean([ev.delta(p) for p in pairings])


def _sets_words(sets: Sequence[str], n_train: Mapping[str, int]) -> str:
    return " and ".join(sets) + f" ({n_train[sets[0]]} training records)"


def _gain_set(ev: Evidence, plan: Plan, key: str, sets: list[str], title: str, rule: str,
              decide: str) -> Claim:
    """A claim on the mean CNN Δ over the pairings of ``sets`` (full split)."""
    problem = _split_problem(ev, sets, plan)
    if problem:
        return _not_testable(key, title, ev, rule, problem, sets, GAIN_FAMILY)
    pairings, excluded = _transfer(ev, sets)
    if not pairings:
        why = (f"No {GAIN_FAMILY} pairing on {', '.join(sets)} makes the {ev.selection} "
               "selection" + (" (no validation split there)" if ev.selection == "validation"
                              else "") + "." + _excluded_words(excluded))
        return _not_testable(key, title, ev, rule, why, sets, GAIN_FAMILY)
    est = _mean_delta(ev, pairings)
    low, high = est.interval(plan.level)
    decider = rules.gain if decide == "gain" else rules.equivalent
    verdict = decider(low, high, plan.margin_f1)
    best = max(pairings, key=lambda p: ev.delta(p).point)
    b_low, b_high = ev.delta(best).interval(plan.level)
    evidence = (f"Mean Δ F1 (fine-tuned - scratch) over {len(pairings)} {GAIN_FAMILY} "
                f"pairing(s) on {_sets_words(sets, ev.n_train)}: **{_f(est.point)}**, "
                f"{_pct(plan.level)} interval {_iv(low, high)}; margin ±{plan.margin_f1:g}. "
                f"Largest single pairing: {best.arch} from {best.upstream}, "
                f"{_f(ev.delta(best).point)} {_iv(b_low, b_high)}."
                + _excluded_words(excluded))
    return Claim(key, title, ev.selection, verdict, rule, evidence, est.point, low, high,
                 plan.margin_f1, sets=tuple(sets), family=GAIN_FAMILY, excluded=excluded,
                 **_rests_on(ev, pairings))


# --------------------------------------------------------------------------------------------
# The claims


def small_set_claim(ev: Evidence, plan: Plan) -> Claim:
    """Claim 1: fine-tuning helps CNNs on the run's smallest downstream set."""
    key = "small_set_gain"
    rule = ("supported if the interval's low end > 0; not supported if its high end < "
            f"+{plan.margin_f1:g} (results.margin_f1); otherwise inconclusive.")
    if not ev.n_train:
        return _not_testable(key, "Fine-tuning helps on the smallest downstream set", ev,
                             rule, "No downstream set has a scratch/fine-tuned pairing.")
    sets = _tied(ev.n_train, min(ev.n_train.values()))
    title = (f"Fine-tuning helps CNNs on the smallest downstream set, {', '.join(sets)} "
             f"(paper: up to +{rules.PAPER_SMALL_GAIN} F1 at {rules.PAPER_SMALL_SET} "
             "samples)")
    return _gain_set(ev, plan, key, sets, title, rule, "gain")


def vanishes_largest_claim(ev: Evidence, plan: Plan) -> Claim:
    """Claim 2a: the CNN gain is practically zero on the run's largest downstream set."""
    key = "vanishes_largest"
    rule = (f"equivalence (TOST): supported if the interval lies inside ±{plan.margin_f1:g} "
            "(results.margin_f1); contradicted if it lies wholly outside; otherwise "
            "inconclusive. An interval that includes 0 is not enough.")
    title = "The CNN gain vanishes on the largest downstream set"
    if len(ev.n_train) < 2:
        return _not_testable(key, title, ev, rule, "Fewer than two downstream sets: no "
                             "largest set distinct from the smallest.")
    sets = _tied(ev.n_train, max(ev.n_train.values()))
    title = f"The CNN gain vanishes on the largest downstream set, {', '.join(sets)}"
    return _gain_set(ev, plan, key, sets, title, rule, "equivalent")


def _points(ev: Evidence) -> dict[tuple[str, object], int]:
    """Every (downstream, size) with a pairing, and its training records."""
    return {(p.downstream, p.size): p.n_train for p in ev.pairings}


def vanishes_near_paper_claim(ev: Evidence, plan: Plan) -> Claim:
    """Claim 2b: the CNN gain is practically zero near the paper's 6000 training records."""
    key = "vanishes_near_6000"
    rule = (f"equivalence (TOST) at the training-set size closest to {rules.PAPER_VANISH_SIZE} "
            f"within a factor {rules.NEAR_FACTOR:g} (a downstream set or a size-axis point): "
            f"supported if the interval lies inside ±{plan.margin_f1:g}; contradicted if "
            "wholly outside; otherwise inconclusive.")
    title = f"The CNN gain vanishes near {rules.PAPER_VANISH_SIZE} training records"
    points = _points(ev)
    near = rules.near_paper_size(sorted(set(points.values())))
    curves = _crossovers(ev, plan)
    if near is None:
        return _not_testable(key, title, ev, rule, "No training set of "
                             f"{rules.PAPER_VANISH_SIZE / rules.NEAR_FACTOR:.0f}-"
                             f"{rules.PAPER_VANISH_SIZE * rules.NEAR_FACTOR:.0f} records in this "
                             "run (config.yaml's size axis reaches it on PTB-XL)." + curves)
    where = sorted(k for k, n in points.items() if n == near)
    sets = sorted({d for d, _ in where})
    problem = _split_problem(ev, sets, plan)
    if problem:
        return _not_testable(key, title, ev, rule, problem + curves, sets, GAIN_FAMILY)
    pairings, excluded = [], 0
    for d, size in where:
        kept, dropped = _transfer(ev, [d], size)
        pairings += kept
        excluded += dropped
    if not pairings:
        return _not_testable(key, title, ev, rule, f"No {GAIN_FAMILY} pairing at {near} "
                             "training records." + _excluded_words(excluded) + curves, sets,
                             GAIN_FAMILY)
    est = _mean_delta(ev, pairings)
    low, high = est.interval(plan.level)
    evidence = (f"Mean Δ F1 over {len(pairings)} {GAIN_FAMILY} pairing(s) at {near} training "
                f"records ({', '.join(sets)}): **{_f(est.point)}**, {_pct(plan.level)} "
                f"interval {_iv(low, high)}; margin ±{plan.margin_f1:g}."
                + _excluded_words(excluded) + curves)
    return Claim(key, title, ev.selection, rules.equivalent(low, high, plan.margin_f1), rule,
                 evidence, est.point, low, high, plan.margin_f1, sets=tuple(sets),
                 family=GAIN_FAMILY, excluded=excluded, extra={"n_train": near},
                 **_rests_on(ev, pairings))


def crossover_of(ev: Evidence, curve: Sequence[Pairing], plan: Plan) -> int | None:
    """rules.crossover of one size curve (pairings of one downstream, arch, upstream)."""
    ordered = sorted(curve, key=lambda p: p.n_train)
    return rules.crossover([p.n_train for p in ordered],
                           [ev.delta(p).interval(plan.level) for p in ordered], plan.margin_f1)


def _curves(ev: Evidence) -> dict[tuple[str, str, str], list[Pairing]]:
    curves: dict[tuple[str, str, str], list[Pairing]] = {}
    for p in ev.pairings:
        curves.setdefault((p.downstream, p.arch, p.upstream), []).append(p)
    return {k: v for k, v in curves.items() if any(p.size is not None for p in v)}


def _crossovers(ev: Evidence, plan: Plan) -> str:
    lines = []
    for (d, arch, up), curve in _curves(ev).items():
        if curve[0].family != GAIN_FAMILY:
            continue
        cross = crossover_of(ev, curve, plan)
        lines.append(f"{arch} from {up} on {d}: "
                     + ("not reached" if cross is None else f"{cross} records"))
    if not lines:
        return ""
    return ("\n\nCrossover of each size curve (smallest size from which Δ is equivalent to 0 "
            f"within ±{plan.margin_f1:g} at every larger size; reported, not a verdict): "
            + "; ".join(lines) + ".")


def gain_trend_claim(ev: Evidence, plan: Plan) -> Claim:
    """Claim 3: fine-tuning helps CNNs *more* on the smallest set than on the largest.

    Decided on Δ_small - Δ_large from one joint bootstrap; the slope of the mean CNN Δ against
    log10(training records), over every downstream set and size-axis point, is reported beside.
    """
    key = "gain_trend"
    rule = ("supported if the interval of Δ(smallest) - Δ(largest) has its low end > 0; not "
            f"supported if its high end < +{plan.margin_f1:g}; otherwise inconclusive.")
    title = "Fine-tuning helps CNNs most on small sets (paper: the gain shrinks with size)"
    if len(ev.n_train) < 2:
        return _not_testable(key, title, ev, rule, "Fewer than two downstream sets.")
    small = _tied(ev.n_train, min(ev.n_train.values()))
    large = _tied(ev.n_train, max(ev.n_train.values()))
    title = (f"Fine-tuning helps CNNs more on the smallest set ({', '.join(small)}) than on "
             f"the largest ({', '.join(large)})")
    problem = _split_problem(ev, small + large, plan)
    if problem:
        return _not_testable(key, title, ev, rule, problem, small + large, GAIN_FAMILY)
    p_small, x_small = _transfer(ev, small)
    p_large, x_large = _transfer(ev, large)
    if not p_small or not p_large:
        return _not_testable(key, title, ev, rule, f"No {GAIN_FAMILY} pairing on "
                             f"{', '.join(small if not p_small else large)} makes the "
                             f"{ev.selection} selection.", small + large, GAIN_FAMILY)
    est = _mean_delta(ev, p_small) - _mean_delta(ev, p_large)
    low, high = est.interval(plan.level)
    evidence = (f"Δ(smallest) - Δ(largest), mean CNN Δ F1 on each: **{_f(est.point)}**, "
                f"{_pct(plan.level)} interval {_iv(low, high)} (both sets resampled in the same "
                "replicates)." + _excluded_words(x_small + x_large))
    extra: dict[str, object] = {}
    xs, ys = [], []
    for (d, size), n in sorted(_points(ev).items(), key=lambda kv: kv[1]):
        kept, _ = _transfer(ev, [d], size)
        if kept:
            xs.append(math.log10(n))
            ys.append(_mean_delta(ev, kept))
    if len(set(xs)) >= 2:
        s = slope(xs, ys)
        s_low, s_high = s.interval(plan.level)
        extra = {"slope": s.point, "slope_low": s_low, "slope_high": s_high,
                 "slope_points": len(xs)}
        evidence += (f" Slope of the mean CNN Δ against log10(training records) over "
                     f"{len(xs)} point(s) (downstream sets and size-axis points): "
                     f"{_f(s.point)} per tenfold, interval {_iv(s_low, s_high)} (reported; "
                     "negative: the gain shrinks with size).")
    return Claim(key, title, ev.selection, rules.gain(low, high, plan.margin_f1), rule,
                 evidence, est.point, low, high, plan.margin_f1, sets=tuple(small + large),
                 family=GAIN_FAMILY, excluded=x_small + x_large, extra=extra,
                 **_rests_on(ev, p_small + p_large))


@dataclass(frozen=True)
class FamilyEvidence:
    """The CNN/RNN comparison of one selection: mean Δ per architecture over its full-split
    pairings, and per family the mean over its architectures with the architectures drawn with
    replacement in each replicate (:func:`.bootstrap.resample_units`). Pairings where both arms
    sit at or below the constant predictor are left out (``excluded`` counts them)."""

    arch_means: Mapping[str, Estimate]
    arch_pairings: Mapping[str, int]
    family_of: Mapping[str, str]
    archs: Mapping[str, Sequence[str]]
    family: Mapping[str, Estimate]
    kept: Sequence[Pairing]
    excluded: int
    sets: Sequence[str]

    def difference(self) -> Estimate | None:
        """mean Δ(CNN) - mean Δ(RNN), None unless both families have an architecture."""
        if not all(f in self.family for f in FAMILIES):
            return None
        return self.family["CNN"] - self.family["RNN"]


def family_evidence(ev: Evidence) -> FamilyEvidence:
    """The numbers of the family table and of :func:`families_claim`, computed once."""
    full = [p for p in ev.pairings if p.size is None]
    sets = sorted({p.downstream for p in full})
    kept, excluded = _transfer(ev, sets, None, family=None)
    by_arch: dict[str, list[Pairing]] = {}
    for p in kept:
        by_arch.setdefault(p.arch, []).append(p)
    family_of = {p.arch: p.family for p in kept}
    archs = {f: [a for a in by_arch if family_of[a] == f] for f in FAMILIES}
    arch_means = {a: _mean_delta(ev, ps) for a, ps in by_arch.items()}
    family = {f: resample_units([arch_means[a] for a in archs[f]], seed=ev.seed,
                                name=(ev.selection, "family", f))
              for f in FAMILIES if archs[f]}
    return FamilyEvidence(arch_means, {a: len(ps) for a, ps in by_arch.items()}, family_of,
                          archs, family, kept, excluded, sets)


def families_claim(ev: Evidence, plan: Plan) -> Claim:
    """Claim 4: CNNs gain more from fine-tuning than RNNs.

    Per architecture the mean Δ over its full-split pairings; per family the mean over its
    architectures, the architectures drawn with replacement in each replicate (the claim is
    about CNNs and RNNs, not about these six networks), on top of records and seeds.
    """
    key = "families"
    rule = ("supported if the interval of mean Δ(CNN) - mean Δ(RNN) (architectures resampled "
            f"within each family) has its low end > 0; not supported if its high end < "
            f"+{plan.margin_f1:g}; otherwise inconclusive. Not testable with fewer than two "
            "architectures in a family.")
    title = "CNNs transfer better than RNNs"
    fe = family_evidence(ev)
    sets, excluded, archs = fe.sets, fe.excluded, fe.archs
    short = [f for f in FAMILIES if len(archs[f]) < 2]
    per_arch = "; ".join(f"{a} ({fe.family_of[a]}) {_f(e.point)}"
                         for a, e in fe.arch_means.items())
    if short:
        listed = "; ".join(f"{f}: " + (", ".join(a) or "none") for f, a in archs.items())
        return Claim(key, title, ev.selection, NOT_TESTABLE, rule,
                     f"{' and '.join(short)}: fewer than two architectures with a pairing "
                     f"({listed}). Mean Δ per architecture: "
                     f"{per_arch or 'none'}." + _excluded_words(excluded), sets=tuple(sets),
                     excluded=excluded, n_tests=0)
    fam = fe.family
    est = fe.difference()
    assert est is not None
    low, high = est.interval(plan.level)
    perm = _label_permutation_p(fe.arch_means, archs)
    evidence = (f"Mean Δ F1 per architecture over its full-split pairings: {per_arch}. "
                f"Family means: CNN {_f(fam['CNN'].point)}, RNN {_f(fam['RNN'].point)}; "
                f"difference **{_f(est.point)}**, {_pct(plan.level)} interval "
                f"{_iv(low, high)} (records, seeds and architectures resampled). Exact "
                f"permutation of the family labels over the {len(fe.arch_means)} "
                f"architectures: one-sided p = {perm:.3f} (reported)."
                + _excluded_words(excluded))
    return Claim(key, title, ev.selection, rules.gain(low, high, plan.margin_f1), rule,
                 evidence, est.point, low, high, plan.margin_f1, sets=tuple(sets),
                 excluded=excluded, extra={"arch_delta": {a: e.point for a, e in
                                                          fe.arch_means.items()},
                                           "permutation_p": perm},
                 **_rests_on(ev, fe.kept))


def _label_permutation_p(arch_means: Mapping[str, Estimate],
                         archs: Mapping[str, Sequence[str]]) -> float:
    """P(difference of family means >= observed) over every relabelling of the architectures
    with the same family sizes (exact)."""
    from itertools import combinations

    names = list(arch_means)
    values = np.array([arch_means[a].point for a in names])
    k = len(archs["CNN"])
    observed = (np.mean([arch_means[a].point for a in archs["CNN"]])
                - np.mean([arch_means[a].point for a in archs["RNN"]]))
    diffs = []
    for chosen in combinations(range(len(names)), k):
        mask = np.zeros(len(names), dtype=bool)
        mask[list(chosen)] = True
        diffs.append(values[mask].mean() - values[~mask].mean())
    return float(np.mean(np.array(diffs) >= observed - 1e-12))


def judge_selection(ev: Evidence, plan: Plan) -> list[Claim]:
    """Every selection-dependent claim of the paper, in claims.md's order."""
    return [small_set_claim(ev, plan), gain_trend_claim(ev, plan),
            vanishes_largest_claim(ev, plan), vanishes_near_paper_claim(ev, plan),
            families_claim(ev, plan)]


# --------------------------------------------------------------------------------------------
# Convergence: whole curves, independent of the selection


@dataclass(frozen=True)
class ConvergencePair:
    """Per-epoch test F1 (mean over seeds) of a scratch and a fine-tuned model."""

    downstream: str
    arch: str
    upstream: str
    scratch: np.ndarray
    finetune: np.ndarray
    seeds: int = 1


def plateau_target(scratch: np.ndarray, tolerance: float, window: int = 3) -> float:
    """The F1 scratch training settles at, less ``tolerance``: the best mean of ``window``
    consecutive epochs, not its single luckiest epoch (which fine-tuning could miss by chance
    alone)."""
    w = min(window, len(scratch))
    smooth = np.convolve(scratch, np.ones(w) / w, mode="valid")
    return float(smooth.max()) - tolerance


def first_reach(curve: np.ndarray, target: float) -> int | None:
    hit = np.flatnonzero(curve >= target)
    return int(hit[0]) + 1 if hit.size else None


@dataclass(frozen=True)
class Reach:
    """Where a pairing's curves reach :func:`plateau_target` of scratch's (epochs from 1).

    A fine-tuning run that never reaches it is ``censored`` at its epochs trained + 1, the
    earliest it could: ``saved`` is then an upper bound on its saving.
    """

    target: float
    scratch_epoch: int
    finetune_epoch: int
    censored: bool

    @property
    def saved(self) -> int:
        return self.scratch_epoch - self.finetune_epoch


def reach(p: ConvergencePair, tolerance: float) -> Reach:
    """The convergence table's row and the convergence claims' value of one pairing."""
    target = plateau_target(p.scratch, tolerance)
    e_scratch = first_reach(p.scratch, target)
    assert e_scratch is not None  # the target is at most a mean of scratch's own epochs
    e_ft = first_reach(p.finetune, target)
    if e_ft is None:
        return Reach(target, e_scratch, len(p.finetune) + 1, True)
    return Reach(target, e_scratch, e_ft, False)


def convergence_claims(pairs: Sequence[ConvergencePair], plan: Plan, *, n_boot: int,
                       seed: int) -> list[Claim]:
    """Claims 5a (fine-tuning reaches scratch's level sooner) and 5b (by the paper's 30-35).

    Target per pairing: :func:`plateau_target` of scratch's curve. Fine-tuning runs that never
    reach it *stay in*, censored at the epochs trained + 1, the earliest they could reach it:
    their saving is then an upper bound, so censoring can only favour fine-tuning, never make a
    "not supported" out of a true saving (the direction of the bias is against the claim's
    rejection, and the verdict says how many are censored). Pairings are resampled by
    (downstream, architecture), whose pairings share a scratch run.
    """
    key, key_mag = "faster", "faster_by_paper"
    rule = ("supported if the interval of the mean epochs saved has its low end > 0; not "
            f"supported if its high end < +{plan.margin_epochs:g} (results.margin_epochs); "
            "otherwise inconclusive. Needs more than margin_epochs + 1 epochs trained.")
    lo, hi = rules.PAPER_EPOCHS_SAVED
    rule_mag = (f"supported if the interval lies inside [{lo - plan.margin_epochs:g}, "
                f"{hi + plan.margin_epochs:g}] (the paper's {lo:g}-{hi:g} ± margin_epochs); "
                "contradicted if wholly outside; otherwise inconclusive. Needs at least "
                f"{rules.MIN_EPOCHS_FOR_MAGNITUDE} epochs trained.")
    title = "Fine-tuning reaches the scratch level sooner"
    title_mag = f"Fine-tuning reaches it {lo:g}-{hi:g} epochs sooner (the paper's magnitude)"
    if not pairs:
        why = "No scratch/fine-tuned pairing."
        return [_not_testable(key, title, None, rule, why),
                _not_testable(key_mag, title_mag, None, rule_mag, why)]
    epochs = min(min(len(p.scratch), len(p.finetune)) for p in pairs)
    reached = [reach(p, plan.convergence_tolerance) for p in pairs]
    saved = [float(r.saved) for r in reached]
    censored = sum(r.censored for r in reached)
    clusters = [(p.downstream, p.arch) for p in pairs]
    est = cluster_mean(saved, clusters, n_boot=n_boot, seed=seed, name="convergence")
    low, high = est.interval(plan.level)
    seeds = tuple(sorted({p.seeds for p in pairs}))
    evidence = (f"Target per pairing: the best 3-epoch mean of scratch's test F1 (mean over "
                f"seeds) minus {plan.convergence_tolerance:g}. Mean epochs saved over "
                f"{len(pairs)} pairing(s): **{est.point:+.1f}**, {_pct(plan.level)} interval "
                f"[{low:+.1f}, {high:+.1f}] (pairings resampled by downstream set and "
                f"architecture, {len(set(clusters))} cluster(s)). {censored} pairing(s) where "
                "fine-tuning never reached the target are kept, censored at the epochs trained "
                "+ 1 (an upper bound on their saving). Shortest run: "
                f"{epochs} epoch(s).")
    common = {"unit": "epochs", "margin": plan.margin_epochs, "seeds": seeds,
              "models": len(pairs) + len({(p.downstream, p.arch) for p in pairs}),
              "pairings": len(pairs),
              "sets": tuple(sorted({p.downstream for p in pairs})),
              "upstreams": tuple(sorted({p.upstream for p in pairs})),
              "extra": {"censored": censored, "epochs": epochs}}
    if len(set(clusters)) < rules.MIN_UNITS:
        why = (f"{len(set(clusters))} (downstream, architecture) cluster(s); a bootstrap over "
               f"clusters needs at least {rules.MIN_UNITS}. " + evidence)
        return [Claim(key, title, None, NOT_TESTABLE, rule, why, est.point, low, high,
                      n_tests=0, **common),
                Claim(key_mag, title_mag, None, NOT_TESTABLE, rule_mag, why, n_tests=0,
                      **common)]
    if epochs - 1 <= plan.margin_epochs:
        first = Claim(key, title, None, NOT_TESTABLE, rule,
                      f"{epochs} epoch(s) trained: a saving of the margin "
                      f"({plan.margin_epochs:g} epochs) could not be observed. " + evidence,
                      est.point, low, high, n_tests=0,
                      **{k: v for k, v in common.items()})
    else:
        first = Claim(key, title, None, rules.faster(low, high, plan.margin_epochs), rule,
                      evidence, est.point, low, high, **common)
    if epochs < rules.MIN_EPOCHS_FOR_MAGNITUDE:
        second = Claim(key_mag, title_mag, None, NOT_TESTABLE, rule_mag,
                       f"{epochs} epoch(s) trained: a saving of {lo:g}-{hi:g} epochs could not "
                       "be observed.", n_tests=0, **{k: v for k, v in common.items()})
    else:
        second = Claim(key_mag, title_mag, None,
                       rules.in_paper_range(low, high, plan.margin_epochs), rule_mag, evidence,
                       est.point, low, high, **common)
    return [first, second]
