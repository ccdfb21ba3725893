"""Robustness to perturbed ECGs (beyond the paper): do fine-tuned models stand noise and lost
leads better than models trained from scratch?

Every fine-tuned and scratch model of a downstream set is scored (evaluate.robustness) on
perturbed copies of its test set. The *degradation* of a model is F1(perturbed) - F1(clean);
for a fine-tuned model and the scratch model of the same architecture, the *difference*
degradation(fine-tuned) - degradation(scratch) is positive where the fine-tuned one loses less.
Its interval is a paired bootstrap over the test records in the manner of stats.py: each
replicate draws one resample of a downstream set's records and scores all four numbers
(fine-tuned and scratch, clean and perturbed) on it, so the pairing is kept where it matters (a
record that noise makes hard is hard for every model); seeds are resampled per model, the same
seed draw serving clean and perturbed (they are one trained model) and every level.

An absolute drop is a poor measure of robustness on its own: a scratch model that sits at the
constant predictor (it learnt nothing) cannot drop, so a fine-tuned model that stays better at
every level "degrades more". Each arm's *retention* is therefore reported beside it,
r = (F1(perturbed) - F1(constant)) / (F1(clean) - F1(constant)), the share of its skill above
the best constant predictor (metrics.constant_baseline_f1) that it keeps, and the claims of
:func:`robustness_claims` are judged on the retention difference and on the perturbed-F1
difference (fine-tuned - scratch), each in the same paired bootstrap: the constant predictor
is rescored on every replicate's record resample too.

The robustness files are checked record by record against the predictions the transfer tables
came from (runs.load_runs: same test records, order, labels). evaluate.py, which writes them,
imports torch, so they are read here with numpy.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ecg_transfer.aggregate import _arch_order
from ecg_transfer.answer import rules
from ecg_transfer.answer.bootstrap import Estimate, spread_units
from ecg_transfer.answer.formatting import interval, markdown_table, nothing, num, percent
from ecg_transfer.answer.paths import check_kinds, robustness_model_id
from ecg_transfer.answer.runs import THRESHOLD, Run
from ecg_transfer.answer.stats import (
    MeanDelta,
    _check_bootstrap_args,
    _chunk_rows,
    _counts_of,
    _design,
    _f1_of_counts,
    _percentile_interval,
    _resample_counts,
    _sd,
    macro_auroc,
)
from ecg_transfer.answer.verdicts import Claim
from ecg_transfer.fileio import read_npz
from ecg_transfer.metrics import constant_baseline_f1
from ecg_transfer.perturb import LEVELS

__all__ = [
    "CLEAN",
    "LEAD_KINDS",
    "PAIR_COLUMNS",
    "ROBUSTNESS_COLUMNS",
    "SUMMARY_MEASURES",
    "RobustnessSet",
    "RobustnessTables",
    "check_kinds",
    "is_lead_kind",
    "level_label",
    "load_robustness",
    "mild_to_harsh",
    "robustness_claims",
    "robustness_markdown",
    "robustness_model_id",
    "robustness_tables",
]


#: The ``kind`` of the unperturbed test set in the robustness tables (level empty).
CLEAN = "clean"
#: Perturbation kinds whose level counts leads zeroed (harsher = more); every other kind's level
#: is an SNR in dB (harsher = lower).
LEAD_KINDS = ("lead_dropout",)
#: Columns of the robustness model table (:class:`RobustnessTables`); ``upstream`` is empty for
#: scratch, ``level`` for the clean rows; ``f1_low``/``f1_high`` bootstrap the seed-mean F1.
ROBUSTNESS_COLUMNS = ("downstream", "arch", "regime", "upstream", "kind", "level", "seeds",
                      "n_test", "f1", "f1_sd", "f1_low", "f1_high", "auroc", "auroc_classes",
                      "n_classes", "clean_f1", "degradation", "n_boot", "coverage")
#: Columns of the robustness pair table: ``difference`` = finetune_degradation -
#: scratch_degradation (positive: the fine-tuned model degrades less); ``harshest`` marks each
#: kind's harshest level, the one the claims read. ``constant_f1``: the best constant
#: predictor's weighted F1 on the test set; ``*_retention`` = (F1 - constant_f1) /
#: (clean F1 - constant_f1), NaN where that arm has no demonstrable skill to keep (its clean F1
#: not above the constant, or the interval of the excess reaching 0: _has_skill);
#: ``retention_defined``: both arms' retention is defined, so is
#: the pair's ``retention_difference`` (NaN otherwise) = finetune_retention -
#: scratch_retention (positive: the fine-tuned model keeps more of its skill);
#: ``f1_difference`` = finetune_f1 - scratch_f1 at the level; each difference with its interval
#: (``*_low``, ``*_high``). ``retention_unstable`` counts the replicates in which an arm's clean
#: F1 is at or below that replicate's constant (its retention there is extreme: the
#: denominator is floored at 1e-9).
PAIR_COLUMNS = ("downstream", "arch", "upstream", "kind", "level", "harshest", "seeds_finetune",
                "seeds_scratch", "n_test", "finetune_clean_f1", "finetune_f1",
                "finetune_degradation", "scratch_clean_f1", "scratch_f1", "scratch_degradation",
                "difference", "low", "high", "excludes_zero", "constant_f1",
                "retention_defined", "finetune_retention", "scratch_retention",
                "retention_difference", "retention_difference_low",
                "retention_difference_high", "retention_unstable", "f1_difference",
                "f1_difference_low", "f1_difference_high", "n_boot", "coverage")
#: An arm whose clean F1 is within this of the constant predictor's (or below) has no skill to
#: keep: its retention is undefined (the tolerance of rules.at_or_below_constant).
_AT_CONSTANT = 1e-9
#: The measures of :attr:`RobustnessTables.summary`: mean retention difference, mean perturbed
#: F1 difference, mean difference of degradations.
SUMMARY_MEASURES = ("retention", "f1", "degradation")
_CURVE_COLUMNS = ("downstream", "regime", "upstream", "kind", "level", "f1", "low", "high",
                  "archs")


def is_lead_kind(kind: str) -> bool:
    return kind in LEAD_KINDS


def mild_to_harsh(kind: str, levels: Sequence[float]) -> list[float]:
    """Levels from the mildest to the harshest: SNR descending, leads zeroed ascending."""
    return sorted(levels, reverse=not is_lead_kind(kind))


_SEED = re.compile(r"seed(\d+)")


@dataclass(frozen=True, eq=False)
class RobustnessSet:
    """One downstream set's robustness file, checked.

    ``conditions`` are (kind, level) pairs: (:data:`CLEAN`, NaN) first, then each kind in
    perturb.LEVELS order with its levels from mildest to harshest. ``probs`` maps a model
    (regime, upstream or "" for scratch, arch, seed) to its (conditions, records, classes)
    float16 probabilities in that order.
    """

    downstream: str
    path: Path
    record_ids: np.ndarray = field(repr=False)
    y_true: np.ndarray = field(repr=False)
    classes: tuple[str, ...] = field(repr=False)
    conditions: tuple[tuple[str, float], ...] = field(repr=False)
    probs: Mapping[tuple[str, str, str, int], np.ndarray] = field(repr=False)

    @property
    def kinds(self) -> list[str]:
        return list(dict.fromkeys(k for k, _ in self.conditions if k != CLEAN))


def _parse_model_id(model_id: str, path: Path) -> tuple[str, str, str, int]:
    parts = model_id.split("/")
    if len(parts) == 4 and parts[0] == "finetune":
        regime, upstream, arch, seed = parts
    elif len(parts) == 3 and parts[0] == "scratch":
        (regime, arch, seed), upstream = parts, ""
    else:
        regime = seed = ""
    match = _SEED.fullmatch(seed)
    if not match or not arch or (regime == "finetune" and not upstream):
        raise ValueError(f"{path}: model id {model_id!r} is neither finetune/<upstream>/<arch>/"
                         "seed<s> nor scratch/<arch>/seed<s>")
    return regime, upstream, arch, int(match.group(1))


def _parse_condition(name: str, path: Path, array: str) -> tuple[str, float]:
    if name == CLEAN:
        return CLEAN, math.nan
    kind, at, level = name.partition("@")
    try:
        value = float(level)
    except ValueError:
        value = math.nan
    if not at or kind not in LEVELS or not math.isfinite(value):
        raise ValueError(f"{path}: array {array!r}: condition {name!r} is neither 'clean' nor "
                         f"<kind>@<level> with a kind of {list(LEVELS)} and a finite level")
    return kind, value


def _read_robustness_file(path: Path, downstream: str) -> RobustnessSet:
    arrays = read_npz(path, f"robustness file of {downstream!r}",
                      ("record_ids", "y_true", "classes", "models"), "evaluate.robustness",
                      "record_ids, y_true, classes, models and <model id>|<condition> per model "
                      "(evaluate.robustness)")
    y = arrays.pop("y_true")
    if y.ndim != 2 or len(y) == 0 or not np.isin(y, (0, 1)).all():
        raise ValueError(f"{path}: y_true must be a non-empty 2-D (records, classes) array of "
                         f"0/1, got shape {y.shape}")
    ids, classes = arrays.pop("record_ids"), arrays.pop("classes")
    if ids.shape != (len(y),) or len(np.unique(ids)) != len(ids):
        raise ValueError(f"{path}: record_ids must hold {len(y)} distinct ids (one per y_true "
                         f"row), got shape {ids.shape}")
    if classes.shape != (y.shape[1],):
        raise ValueError(f"{path}: classes has shape {classes.shape}, y_true has {y.shape[1]} "
                         "classes")
    model_ids = [str(m) for m in arrays.pop("models").reshape(-1)]
    if not model_ids or len(set(model_ids)) != len(model_ids):
        raise ValueError(f"{path}: models must list at least one model id, each once, got "
                         f"{model_ids}")
    keys = {m: _parse_model_id(m, path) for m in model_ids}
    if len(set(keys.values())) != len(keys):
        raise ValueError(f"{path}: two model ids in models name the same model")
    by_model: dict[str, dict[tuple[str, float], np.ndarray]] = {m: {} for m in model_ids}
    for name, p in arrays.items():
        model_id, bar, condition = name.rpartition("|")
        if not bar or model_id not in by_model:
            raise ValueError(f"{path}: array {name!r} is not <model id>|<condition> of a model "
                             "listed in models")
        if p.shape != y.shape:
            raise ValueError(f"{path}: array {name!r} has shape {p.shape}, y_true has {y.shape}")
        if not np.isfinite(p).all() or (p.size and (p.min() < 0 or p.max() > 1)):
            raise ValueError(f"{path}: array {name!r} must hold finite probabilities in [0, 1]")
        parsed = _parse_condition(condition, path, name)
        if any(c[0] == parsed[0] and (c[0] == CLEAN or c[1] == parsed[1])
               for c in by_model[model_id]):  # "emg@6" and "emg@6.0"
            raise ValueError(f"{path}: array {name!r} repeats a condition of model "
                             f"{model_id!r} under another spelling")
        by_model[model_id][parsed] = p
    reference = None
    for model_id, found in by_model.items():
        if not any(k == CLEAN for k, _ in found):
            raise ValueError(f"{path}: model {model_id!r} has no {model_id}|clean array; every "
                             "model needs its clean test-set probabilities")
        conds = {(k, lv) for k, lv in found if k != CLEAN}
        if reference is None:
            reference = (model_id, conds)
        elif conds != reference[1]:
            lacks = sorted(f"{k}@{lv:g}" for k, lv in reference[1] - conds)
            extra = sorted(f"{k}@{lv:g}" for k, lv in conds - reference[1])
            raise ValueError(f"{path}: model {model_id!r} lacks condition(s) {lacks} and has "
                             f"extra {extra} compared with {reference[0]!r}; every model is "
                             "scored under the same perturbations")
    assert reference is not None
    kinds = [k for k in LEVELS if any(c[0] == k for c in reference[1])]
    conditions = [(CLEAN, math.nan)] + [
        (k, lv) for k in kinds
        for lv in mild_to_harsh(k, [lv for kk, lv in reference[1] if kk == k])]
    probs = {}
    for model_id, found in by_model.items():
        clean = next(p for (k, _), p in found.items() if k == CLEAN)
        probs[keys[model_id]] = np.stack([clean] + [found[c] for c in conditions[1:]])
    return RobustnessSet(downstream, path, ids.astype(str), y.astype(np.int8),
                         tuple(str(c) for c in classes), tuple(conditions), probs)


def _check_against_runs(rs: RobustnessSet, runs: Sequence[Run]) -> None:
    """The robustness test set must be the one the transfer jobs were scored on."""
    run = next((r for r in runs if r.downstream == rs.downstream), None)
    if run is None:
        return
    both = (f"{rs.path} (robustness of {rs.downstream!r}) and {run.predictions} (test "
            f"predictions of {run.describe()})")
    if not np.array_equal(rs.record_ids, run.record_ids):
        if len(rs.record_ids) != len(run.record_ids):
            detail = f"{len(rs.record_ids)} vs {len(run.record_ids)} records"
        else:
            i = int(np.flatnonzero(rs.record_ids != run.record_ids)[0])
            detail = (f"first difference at position {i}: {rs.record_ids[i]!r} vs "
                      f"{run.record_ids[i]!r}")
        raise ValueError(f"{both}: record_ids differ ({detail}); the robustness file must score "
                         "the downstream set's test records in the order its jobs did (a "
                         "stale file from another shard?)")
    if rs.classes != run.classes:
        raise ValueError(f"{both}: classes differ ({list(rs.classes)} vs {list(run.classes)})")
    if not np.array_equal(rs.y_true, run.y_true):
        i = int(np.flatnonzero((rs.y_true != run.y_true).any(axis=1))[0])
        raise ValueError(f"{both}: y_true differs at record {rs.record_ids[i]!r} although the "
                         "record_ids agree")


def load_robustness(files: Mapping[str, str | os.PathLike], runs: Sequence[Run] = ()
                    ) -> list[RobustnessSet]:
    """Read and check every robustness file (downstream set -> evaluate.robustness's .npz).

    Every defect raises ValueError naming the file: a missing array, a model id that is not
    ``finetune/<upstream>/<arch>/seed<s>`` or ``scratch/<arch>/seed<s>``, a model without its
    ``<id>|clean`` array or with other conditions than the rest, an array of no listed model,
    probabilities of the wrong shape or outside [0, 1], and, given ``runs`` (runs.load_runs),
    a test set other than the one that downstream set's jobs were scored on.
    """
    sets = [_read_robustness_file(Path(str(files[d])), str(d)) for d in sorted(files)]
    for rs in sets:
        _check_against_runs(rs, runs)
    return sets


@dataclass(frozen=True)
class RobustnessTables:
    """What the robustness study reports.

    ``models``: :data:`ROBUSTNESS_COLUMNS`; ``pairs``: :data:`PAIR_COLUMNS`; ``curves``: per
    downstream set, fine-tuned upstream (or scratch) and condition, the F1 averaged over
    architectures with its interval (the figures); ``harshest``: the mean over every pair and
    kind of the difference at the kind's harshest level, and ``by_kind`` the same per kind
    (stats.MeanDelta; its ``n_pairs`` counts (pair, kind) values), None without a pair.
    ``unpaired`` lists models with no counterpart of the other regime in their file.

    ``summary`` holds, per measure of :data:`SUMMARY_MEASURES`, the difference (fine-tuned -
    scratch) at each kind's harshest level averaged so that **every downstream set weighs the
    same**: the mean over a set's (pair, kind) values (every pair of a file has the same kinds,
    so each pair weighs the same within its set), then the mean over sets. It is a
    bootstrap.Estimate (point and replicates), so an interval at any coverage comes from the
    same replicates; ``summary_by_kind`` is the same per kind. The retention mean leaves out the
    pairs whose retention is undefined (``retention_excluded`` names them); a measure with no
    pair to average is absent. ``level``: the coverage of the tables' intervals.
    """

    models: pd.DataFrame
    pairs: pd.DataFrame
    curves: pd.DataFrame
    harshest: MeanDelta | None
    by_kind: dict[str, MeanDelta]
    unpaired: tuple[str, ...] = ()
    level: float | None = None
    summary: Mapping[str, Estimate] = field(default_factory=dict)
    summary_by_kind: Mapping[str, Mapping[str, Estimate]] = field(default_factory=dict)
    retention_excluded: tuple[str, ...] = ()
    #: per downstream set, its test split's records and positives per class: what
    #: rules.split_too_small reads, as the paper's claims read it of theirs
    splits: Mapping[str, tuple[int, tuple[int, ...]]] = field(default_factory=dict)


@dataclass
class _Group:
    """One architecture x regime x upstream of a downstream set: its seeds' F1 on the full test
    set (seeds, conditions), replicates (n_boot, seeds, conditions) and seed draws."""

    full: np.ndarray
    reps: np.ndarray
    draws: np.ndarray

    def mean(self) -> np.ndarray:
        """Replicate seed means (n_boot, conditions), seed deviations rescaled as in
        bootstrap.spread_units."""
        return (np.einsum("bs,bsc->bc", self.draws, spread_units(self.reps, 1))
                / self.draws.shape[1])


def _set_replicates(rs: RobustnessSet, n_boot: int, rng: np.random.Generator
                    ) -> tuple[dict[tuple, tuple[np.ndarray, np.ndarray]], Estimate]:
    """Every model's F1 under every condition: full test set (conditions,) and replicates
    (n_boot, conditions), all models and conditions scored on the same record resamples; and
    the best constant predictor's F1 on the full set and on those same resamples.

    The best constant predictor of a weighted F1 is the all-positive one (every class's F1 is
    highest when it predicts the class everywhere; metrics.constant_baseline_f1), whatever the
    training labels, so it is rescored on each resample as the all-positive prediction. The
    full-set value is metrics.constant_baseline_f1 itself, given the test labels as the
    training labels its majority candidate reads (that candidate never wins).
    """
    y = rs.y_true
    n, n_classes = y.shape
    keys = sorted(rs.probs)
    ones = np.ones((1, n), dtype=np.int64)
    full: dict[tuple, np.ndarray] = {}
    reps: dict[tuple, list[np.ndarray]] = {k: [] for k in keys}
    constant_design = _design(y, [np.ones(y.shape)], THRESHOLD)
    constant_reps = []
    step = _chunk_rows(n)
    for start in range(0, n_boot, step):
        counts = _resample_counts(rng, min(step, n_boot - start), n)
        constant_reps.append(_f1_of_counts(counts, constant_design, n_classes)[:, 0])
        for k in keys:
            # one model's design at a time: all of them at once can take gigabytes
            design = _design(y, list(rs.probs[k]), THRESHOLD)
            if k not in full:
                full[k] = _f1_of_counts(ones, design, n_classes)[0]
            reps[k].append(_f1_of_counts(counts, design, n_classes))
    constant = Estimate(constant_baseline_f1(y, y), np.concatenate(constant_reps))
    return {k: (full[k], np.concatenate(reps[k])) for k in keys}, constant


def _groups(rs: RobustnessSet, scored: Mapping[tuple, tuple[np.ndarray, np.ndarray]],
            n_boot: int, seed_rng: np.random.Generator) -> dict[tuple[str, str, str], _Group]:
    seeds: dict[tuple[str, str, str], list[int]] = {}
    for regime, upstream, arch, seed in sorted(scored):
        seeds.setdefault((arch, regime, upstream), []).append(seed)
    groups = {}
    for (arch, regime, upstream), ss in sorted(seeds.items()):
        members = [scored[(regime, upstream, arch, s)] for s in ss]
        if len(ss) == 1:
            draws = np.ones((n_boot, 1))
        else:
            draws = _counts_of(seed_rng.integers(0, len(ss), size=(n_boot, len(ss))),
                               len(ss)).astype(np.float64)
        groups[arch, regime, upstream] = _Group(
            np.stack([m[0] for m in members]), np.stack([m[1] for m in members], axis=1), draws)
    return groups


def robustness_tables(sets: Sequence[RobustnessSet], *, n_boot: int, seed: int, level: float,
                      arch_order: Sequence[str] = ()) -> RobustnessTables:
    """F1 and AUROC of every model under every condition, the degradations and their paired
    differences, the curves of the figures and the harshest-level summary of the claim.

    One record resample per replicate and downstream set (independent streams per set,
    spawned from ``seed`` as in stats.py) scores every model and condition of the set; seeds
    are drawn from another stream, once per replicate and model group, and serve every
    condition. F1 is metrics.weighted_f1 at 0.5, AUROC stats.macro_auroc (mean over seeds,
    on the full test set). A model is paired with the scratch model of its architecture in
    the same file; every pair weighs the same in the harshest-level means.
    """
    _check_bootstrap_args(n_boot, seed, level)
    record_ss, seed_ss = np.random.SeedSequence(seed).spawn(2)
    seed_rng = np.random.default_rng(seed_ss)
    model_rows, pair_rows, curve_rows, unpaired = [], [], [], []
    for rs, ss in zip(sets, record_ss.spawn(len(sets)), strict=True):
        scored, constant = _set_replicates(rs, n_boot, np.random.default_rng(ss))
        groups = _groups(rs, scored, n_boot, seed_rng)
        means = {g: grp.mean() for g, grp in groups.items()}
        model_rows += _model_rows(rs, groups, means, n_boot, level)
        rows, lone = _pair_rows(rs, groups, means, constant, n_boot, level)
        pair_rows += rows
        unpaired += lone
        curve_rows += _curve_rows(rs, groups, means, level)
    # the claim's numbers: each (pair, kind) at the kind's harshest level, weighing the same
    harsh = [r for r in pair_rows if r["harshest"]]
    by_kind = {k: _mean_of([r for r in harsh if r["kind"] == k], n_boot, level)
               for k in LEVELS if any(r["kind"] == k for r in harsh)}
    overall = _mean_of(harsh, n_boot, level) if harsh else None
    summary, summary_by_kind = _summaries(harsh)
    excluded = tuple(dict.fromkeys(_pair_name(r) for r in harsh if not r["retention_defined"]))
    return RobustnessTables(
        _sorted(pd.DataFrame(model_rows, columns=list(ROBUSTNESS_COLUMNS)), arch_order),
        _sorted(pd.DataFrame(pair_rows, columns=list(PAIR_COLUMNS)), arch_order),
        pd.DataFrame(curve_rows, columns=list(_CURVE_COLUMNS)), overall, by_kind,
        tuple(unpaired), float(level), summary, summary_by_kind, excluded,
        {rs.downstream: (len(rs.y_true), tuple(int(n) for n in rs.y_true.sum(axis=0)))
         for rs in sets})


#: Per measure of SUMMARY_MEASURES: the pair-row keys of its point value and replicates, and
#: whether a row enters its mean.
_MEASURES = {
    "retention": ("retention_difference", "_retention_reps", lambda r: r["retention_defined"]),
    "f1": ("f1_difference", "_f1_reps", lambda r: True),
    "degradation": ("difference", "_reps", lambda r: True),
}


def _set_weighted(rows: Sequence[Mapping[str, object]], value: str, reps: str) -> Estimate:
    """Mean over downstream sets of each set's mean over its rows: every set weighs the same,
    whatever its number of architectures and upstreams. Rows of one set share its record
    resamples, sets are independent, so the mean is taken replicate by replicate."""
    by_set: dict[object, list[Estimate]] = {}
    for r in rows:
        by_set.setdefault(r["downstream"], []).append(Estimate(float(r[value]), r[reps]))
    return Estimate.mean([Estimate.mean(v) for v in by_set.values()])


def _summaries(harsh: Sequence[Mapping[str, object]]
               ) -> tuple[dict[str, Estimate], dict[str, dict[str, Estimate]]]:
    summary: dict[str, Estimate] = {}
    by_kind: dict[str, dict[str, Estimate]] = {}
    for measure, (value, reps, enters) in _MEASURES.items():
        rows = [r for r in harsh if enters(r)]
        if not rows:
            continue
        summary[measure] = _set_weighted(rows, value, reps)
        by_kind[measure] = {k: _set_weighted([r for r in rows if r["kind"] == k], value, reps)
                            for k in LEVELS if any(r["kind"] == k for r in rows)}
    return summary, by_kind


def _pair_name(row: Mapping[str, object]) -> str:
    return f"{row['arch']} from {row['upstream']} on {row['downstream']}"


def _has_skill(clean: float, clean_reps: np.ndarray, constant: float,
               constant_reps: np.ndarray, level: float) -> bool:
    """Whether an arm has skill to keep: its clean F1 above the constant predictor's, and the
    interval of that excess (same replicates, same level) above 0. Retention divides by the
    excess, so an arm whose excess may be 0 gives a ratio without bounds (the demo's first run:
    an interval of [-3.7e7, +6.7e7]); such arms are left out of the retention claim, counted,
    and judged by the perturbed-F1 difference only."""
    if clean - constant <= _AT_CONSTANT:
        return False
    low, _ = _percentile_interval(clean_reps - constant_reps, level)
    return low > 0.0


def _retention(f1: np.ndarray, clean: np.ndarray, constant: np.ndarray) -> np.ndarray:
    """(F1 - constant) / (clean F1 - constant), the denominator floored at :data:`_AT_CONSTANT`
    so that a replicate where the arm has no skill left gives an extreme, finite value (a
    percentile interval ignores such replicates while they are rarer than its tails)."""
    return (f1 - constant) / np.maximum(clean - constant, _AT_CONSTANT)


def _pair_rows(rs: RobustnessSet, groups: Mapping[tuple[str, str, str], _Group],
               means: Mapping[tuple[str, str, str], np.ndarray], constant: Estimate,
               n_boot: int, level: float) -> tuple[list[dict[str, object]], list[str]]:
    """Each fine-tuned model group against the scratch group of its architecture, at every
    perturbed condition, and the fine-tuned groups without a scratch counterpart.

    Rows keep their replicates: ``_reps`` (difference of degradations), ``_retention_reps``,
    ``_f1_reps``. Retention is that of the seed-mean F1 (clean and perturbed of one seed draw),
    against the constant predictor on the same record resample."""
    const, const_reps = constant.point, constant.reps[:, np.newaxis]
    harshest = {k: max(i for i, c in enumerate(rs.conditions) if c[0] == k) for k in rs.kinds}
    rows, unpaired = [], []
    for (arch, regime, upstream), grp in groups.items():
        if regime != "finetune":
            continue
        scratch = groups.get((arch, "scratch", ""))
        if scratch is None:
            unpaired.append(f"{arch} fine-tuned from {upstream} on {rs.downstream} "
                            f"(`{rs.path}`)")
            continue
        pts_b, pts_a = grp.full.mean(axis=0), scratch.full.mean(axis=0)
        mb, ma = means[arch, regime, upstream], means[arch, "scratch", ""]
        reps = (mb - mb[:, :1]) - (ma - ma[:, :1])
        skill_b = _has_skill(pts_b[0], mb[:, 0], const, const_reps[:, 0], level)
        skill_a = _has_skill(pts_a[0], ma[:, 0], const, const_reps[:, 0], level)
        defined = bool(skill_b and skill_a)
        keep_b, keep_a = _retention(pts_b, pts_b[0], const), _retention(pts_a, pts_a[0], const)
        keep_reps = (_retention(mb, mb[:, :1], const_reps)
                     - _retention(ma, ma[:, :1], const_reps))
        unstable = int(np.count_nonzero((mb[:, :1] - const_reps <= _AT_CONSTANT)
                                        | (ma[:, :1] - const_reps <= _AT_CONSTANT)))
        f1_reps = mb - ma
        for i, (kind, lv) in enumerate(rs.conditions):
            if kind == CLEAN:
                continue
            low, high = _percentile_interval(reps[:, i], level)
            r_low, r_high = (_percentile_interval(keep_reps[:, i], level) if defined
                             else (math.nan, math.nan))
            f_low, f_high = _percentile_interval(f1_reps[:, i], level)
            rows.append({
                "downstream": rs.downstream, "arch": arch, "upstream": upstream,
                "kind": kind, "level": lv, "harshest": i == harshest[kind],
                "seeds_finetune": len(grp.full), "seeds_scratch": len(scratch.full),
                "n_test": len(rs.y_true), "finetune_clean_f1": float(pts_b[0]),
                "finetune_f1": float(pts_b[i]),
                "finetune_degradation": float(pts_b[i] - pts_b[0]),
                "scratch_clean_f1": float(pts_a[0]), "scratch_f1": float(pts_a[i]),
                "scratch_degradation": float(pts_a[i] - pts_a[0]),
                "difference": float((pts_b[i] - pts_b[0]) - (pts_a[i] - pts_a[0])),
                "low": low, "high": high, "excludes_zero": not low <= 0.0 <= high,
                "constant_f1": const, "retention_defined": defined,
                "finetune_retention": float(keep_b[i]) if skill_b else math.nan,
                "scratch_retention": float(keep_a[i]) if skill_a else math.nan,
                "retention_difference": (float(keep_b[i] - keep_a[i]) if defined
                                         else math.nan),
                "retention_difference_low": r_low, "retention_difference_high": r_high,
                "retention_unstable": unstable,
                "f1_difference": float(pts_b[i] - pts_a[i]),
                "f1_difference_low": f_low, "f1_difference_high": f_high,
                "n_boot": n_boot, "coverage": level, "_reps": reps[:, i],
                "_retention_reps": keep_reps[:, i], "_f1_reps": f1_reps[:, i]})
    return rows, unpaired


def _curve_rows(rs: RobustnessSet, groups: Mapping[tuple[str, str, str], _Group],
                means: Mapping[tuple[str, str, str], np.ndarray],
                level: float) -> list[dict[str, object]]:
    """The figures' lines: per upstream (or scratch), the F1 averaged over architectures."""
    rows = []
    for regime, upstream in sorted({(r, u) for _, r, u in groups}):
        members = [g for g in groups if g[1:] == (regime, upstream)]
        point = np.mean([groups[g].full.mean(axis=0) for g in members], axis=0)
        reps = np.mean([means[g] for g in members], axis=0)
        for i, (kind, lv) in enumerate(rs.conditions):
            low, high = _percentile_interval(reps[:, i], level)
            rows.append({"downstream": rs.downstream, "regime": regime, "upstream": upstream,
                         "kind": kind, "level": lv, "f1": float(point[i]), "low": low,
                         "high": high, "archs": len(members)})
    return rows


def _mean_of(rows: Sequence[Mapping[str, object]], n_boot: int, level: float) -> MeanDelta:
    """Mean difference over pair rows, each weighing the same; rows of one downstream set share
    its record resamples, sets are independent."""
    low, high = _percentile_interval(np.mean([r["_reps"] for r in rows], axis=0), level)
    return MeanDelta(float(np.mean([r["difference"] for r in rows])), low, high, n_boot, level,
                     len(rows), len({r["downstream"] for r in rows}))


def _model_rows(rs: RobustnessSet, groups: Mapping[tuple[str, str, str], _Group],
                means: Mapping[tuple[str, str, str], np.ndarray], n_boot: int,
                level: float) -> list[dict[str, object]]:
    rows = []
    for (arch, regime, upstream), grp in groups.items():
        keys = sorted(k for k in rs.probs if (k[2], k[0], k[1]) == (arch, regime, upstream))
        point = grp.full.mean(axis=0)
        for i, (kind, lv) in enumerate(rs.conditions):
            aurocs = [macro_auroc(rs.y_true, rs.probs[k][i].astype(np.float32)) for k in keys]
            low, high = _percentile_interval(means[arch, regime, upstream][:, i], level)
            rows.append({
                "downstream": rs.downstream, "arch": arch, "regime": regime,
                "upstream": upstream, "kind": kind, "level": lv, "seeds": len(keys),
                "n_test": len(rs.y_true), "f1": float(point[i]), "f1_sd": _sd(grp.full[:, i]),
                "f1_low": low, "f1_high": high,
                "auroc": float(np.mean([a.value for a in aurocs])),
                "auroc_classes": aurocs[0].n_used, "n_classes": rs.y_true.shape[1],
                "clean_f1": float(point[0]), "degradation": float(point[i] - point[0]),
                "n_boot": n_boot, "coverage": level})
    return rows


def _sorted(table: pd.DataFrame, arch_order: Sequence[str]) -> pd.DataFrame:
    """Rows by downstream, architecture (config order), regime (fine-tuned first), upstream,
    kind (perturb.LEVELS order, clean first) and level (mildest first)."""
    if table.empty:
        return table
    order = {a: i for i, a in enumerate(_arch_order(table["arch"].tolist(), arch_order))}
    kinds = {k: i for i, k in enumerate([CLEAN, *LEVELS])}
    severity = np.where(table["kind"].isin(LEAD_KINDS), table["level"], -table["level"])
    keys = {"_o": table["arch"].map(order), "_k": table["kind"].map(kinds),
            "_l": np.nan_to_num(severity, nan=-np.inf)}
    if "regime" in table:
        keys["_r"] = table["regime"].map({"finetune": 0, "scratch": 1})
    by = ["downstream", "_o", *(["_r"] if "_r" in keys else []), "upstream", "_k", "_l"]
    return (table.assign(**keys).sort_values(by, kind="stable").drop(columns=list(keys))
            .reset_index(drop=True))


def level_label(kind: str, level: float) -> str:
    if kind == CLEAN:
        return "clean"
    return f"{level:g} lead(s)" if is_lead_kind(kind) else f"{level:g} dB"


def _model_name(regime: str, upstream: str) -> str:
    return "scratch" if regime == "scratch" else f"ft:{upstream}"


def robustness_markdown(tables: RobustnessTables, *, level: float) -> str:
    """Per perturbation kind: every model's F1 and AUROC per level, then every pair's
    difference of degradations, difference of retentions and difference of perturbed F1,
    each with its interval."""
    pct = percent(level)
    parts = [
        "# Robustness to perturbed ECGs: fine-tuned vs scratch (beyond the paper)\n",
        "Every fine-tuned (`ft:<upstream>`) and scratch model of a downstream set, scored on "
        "copies of its test set perturbed by perturb.py (one seed: every model sees the same "
        "noise). SNR in dB (lower: harsher), or the number of leads zeroed (more: harsher). "
        "Cells: weighted F1 at 0.5 / macro AUROC, means over seeds. The *degradation* of a "
        "model is F1 at the level minus its clean F1; the *difference* is fine-tuned "
        "degradation - scratch degradation, so **positive: the fine-tuned model degrades "
        f"less**. Its {pct} interval is a paired bootstrap over test records (one resample "
        "scores clean and perturbed, fine-tuned and scratch; seeds resampled per model). `*`: "
        "the interval excludes 0.\n",
        "A scratch model at the constant predictor cannot lose F1, so the degradation alone "
        "can favour a model that learnt nothing. The *retention* of a model is (F1 at the "
        "level - F1 constant) / (clean F1 - F1 constant), the share of its skill above the "
        "best constant predictor (weighted F1 of predicting every class everywhere) that it "
        "keeps; **positive retention difference: the fine-tuned model keeps more**. It is "
        "undefined (`undefined`) where an arm's clean F1 is at or below the constant. The "
        "perturbed-F1 difference is fine-tuned F1 - scratch F1 at the level. The claims read "
        "these two, at each kind's harshest level.\n",
    ]
    models, pairs = tables.models, tables.pairs
    if models.empty:
        parts.append(nothing("no robustness result in this run (config key "
                             "robustness.enabled)."))
        return "\n".join(parts)
    if tables.unpaired:
        parts.append("Fine-tuned models without a scratch model of their architecture in the "
                     "same file, so in no pair:\n\n"
                     + "\n".join(f"* {u}" for u in tables.unpaired) + "\n")
    for kind in [k for k in LEVELS if k in set(models["kind"])]:
        sub = models[models["kind"].isin([kind, CLEAN])
                     & models["downstream"].isin(models.loc[models["kind"] == kind,
                                                            "downstream"])]
        levels = mild_to_harsh(kind, sorted(set(sub.loc[sub["kind"] == kind, "level"])))
        header = ["downstream", "arch", "model", "clean",
                  *[level_label(kind, lv) for lv in levels]]
        rows = []
        for (down, arch, regime, up), g in sub.groupby(
                ["downstream", "arch", "regime", "upstream"], sort=False):
            cells = {(r["kind"], r["level"]): f"{r['f1']:.3f} / {num(r['auroc'])}"
                     for r in g.to_dict("records")}
            clean = next(v for (k, _), v in cells.items() if k == CLEAN)
            rows.append([down, arch, _model_name(regime, up), clean,
                         *[cells.get((kind, lv), "—") for lv in levels]])
        parts += [f"## {kind}\n", "### F1 / AUROC\n", markdown_table(header, rows, 3) + "\n"]
        pk = pairs[pairs["kind"] == kind]
        if pk.empty:
            parts += ["### Differences (fine-tuned - scratch)\n",
                      nothing("no fine-tuned model has a scratch counterpart here.")]
            continue
        for what, column in (("degradations", "difference"),
                             ("retentions", "retention_difference"),
                             ("perturbed F1", "f1_difference")):
            parts += [f"### Difference of {what} (fine-tuned - scratch)\n",
                      _difference_table(pk, levels, kind, column) + "\n"]
    return "\n".join(parts)


def _difference_table(pk: pd.DataFrame, levels: Sequence[float], kind: str,
                      column: str) -> str:
    """One pair per row, one level per column: ``column`` with its interval (``*``: the
    interval excludes 0)."""
    low, high = (("low", "high") if column == "difference"
                 else (f"{column}_low", f"{column}_high"))
    header = ["downstream", "arch", "upstream", *[level_label(kind, lv) for lv in levels]]
    rows = []
    for (down, arch, up), g in pk.groupby(["downstream", "arch", "upstream"], sort=False):
        cells = {}
        for r in g.to_dict("records"):
            if pd.isna(r[column]):
                cells[r["level"]] = "undefined"
                continue
            star = "*" if not r[low] <= 0.0 <= r[high] else ""
            cells[r["level"]] = f"{r[column]:+.3f}{star} {interval(r[low], r[high])}"
        rows.append([down, arch, up, *[cells.get(lv, "—") for lv in levels]])
    return markdown_table(header, rows, 3)


# --------------------------------------------------------------------------------------------
# The robustness claims


_NOT_IN_RUN = "Robustness is not part of this run (config key robustness.enabled)."
#: key -> (title, unit, the measure of RobustnessTables.summary it reads, the Plan margin).
_CLAIMS = {
    "robustness_retention": ("Fine-tuned models keep more of their skill under perturbation",
                             "retention", "retention", "margin_retention"),
    "robustness_f1": ("Fine-tuned models score higher on perturbed ECGs", "F1", "f1",
                      "margin_f1"),
}


def _claim_rule(key: str, margin: float, margin_name: str) -> str:
    what = ("the mean retention difference (fine-tuned - scratch; retention = (F1 perturbed - "
            "F1 constant) / (F1 clean - F1 constant))" if key == "robustness_retention" else
            "the mean perturbed-F1 difference (fine-tuned - scratch)")
    return (f"{what} at the harshest level of each perturbation kind, every downstream set "
            f"weighing the same: supported if its interval's low end > 0; not supported if its "
            f"high end < +{margin:g} (results.{margin_name}); otherwise inconclusive. Not "
            "testable without a fine-tuned/scratch pair"
            + (" whose arms both beat the constant predictor on clean ECGs."
               if key == "robustness_retention" else "."))


def _harshest_words(harsh: pd.DataFrame, kind: str) -> str:
    levels = mild_to_harsh(kind, sorted(set(harsh.loc[harsh["kind"] == kind, "level"])))
    return f"{kind} at " + " / ".join(level_label(kind, lv) for lv in levels)


def _estimate_words(est: Estimate, level: float) -> str:
    low, high = est.interval(level)
    return f"{est.point:+.3f} {interval(low, high)}"


def robustness_claims(tables: RobustnessTables | None, plan: rules.Plan) -> list[Claim]:
    """The two robustness claims, judged on what a model keeps rather than on what it loses.

    ``robustness_retention``: the mean retention difference (fine-tuned - scratch), decided by
    rules.gain with ``plan.margin_retention``; ``robustness_f1``: the mean perturbed-F1
    difference, rules.gain with ``plan.margin_f1``. Both read each kind's harshest level and
    :attr:`RobustnessTables.summary` (every downstream set weighing the same). The difference
    of absolute degradations is printed beside them, not judged: a scratch model at the
    constant predictor cannot drop, so it would "degrade less" than any model that learnt
    something.

    Intervals are taken at ``plan.level`` from the tables' bootstrap replicates (the same
    replicates whatever the coverage), so tables computed at another level give the claims'
    interval at the plan's, not the tables'; the evidence says so where the two differ.
    """
    claims = []
    for key, (title, unit, measure, margin_name) in _CLAIMS.items():
        margin = float(getattr(plan, margin_name))
        rule = _claim_rule(key, margin, margin_name)
        why = _untestable(tables, measure, plan)
        if why is not None:
            excluded = (len(tables.retention_excluded)
                        if tables is not None and measure == "retention" else 0)
            claims.append(Claim(key, title, None, rules.NOT_TESTABLE, rule, why, margin=margin,
                                unit=unit, excluded=excluded, n_tests=0))
            continue
        assert tables is not None
        claims.append(_judged_claim(tables, plan, key, title, unit, measure, margin, rule))
    return claims


def _untestable(tables: RobustnessTables | None, measure: str, plan: rules.Plan) -> str | None:
    """Why the claim on ``measure`` cannot be judged, or None. A claim whose every downstream
    set has a test split too small to judge (rules.split_too_small) is not testable; like the
    paper's pooled claims (CNN vs RNN), one pooled over several sets is judged on all of them."""
    if tables is None:
        return _NOT_IN_RUN
    if tables.pairs.empty:
        if tables.models.empty:
            return "No robustness result in this run."
        return ("No fine-tuned model has a scratch model of its architecture in the robustness "
                "results." + (" Unpaired: " + "; ".join(tables.unpaired) + "."
                              if tables.unpaired else ""))
    problems = {d: rules.split_too_small(*tables.splits[d], plan)
                for d in sorted(set(tables.pairs["downstream"])) if d in tables.splits}
    if problems and all(problems.values()):
        return " ".join(f"{d}: {problem}." for d, problem in problems.items())
    if measure not in tables.summary:
        return (f"Every one of the {len(tables.retention_excluded)} fine-tuned/scratch pair(s) "
                "has an arm whose clean F1 is at or below the constant predictor's (no skill "
                "to keep, so no retention): " + "; ".join(tables.retention_excluded) + ".")
    return None


def _judged_claim(tables: RobustnessTables, plan: rules.Plan, key: str, title: str, unit: str,
                  measure: str, margin: float, rule: str) -> Claim:
    harsh = tables.pairs[tables.pairs["harshest"]]
    used = harsh[harsh["retention_defined"]] if measure == "retention" else harsh
    est = tables.summary[measure]
    low, high = est.interval(plan.level)
    pairs = used.drop_duplicates(["downstream", "arch", "upstream"])
    sets = tuple(sorted(set(pairs["downstream"])))
    scratch = pairs.drop_duplicates(["downstream", "arch"])
    seeds = tuple(sorted({int(s) for s in pairs["seeds_finetune"]}
                         | {int(s) for s in scratch["seeds_scratch"]}))
    per_kind = "; ".join(f"{_harshest_words(used, k)}: {_estimate_words(e, plan.level)}"
                         for k, e in tables.summary_by_kind[measure].items())
    if measure == "retention":
        constants = ", ".join(f"{d} {c:.3f}" for d, c in
                              harsh.drop_duplicates("downstream")[["downstream",
                                                                   "constant_f1"]].to_numpy())
        what = ("Retention difference (fine-tuned - scratch); retention = (F1 perturbed - F1 "
                "constant) / (F1 clean - F1 constant), the share of a model's skill above the "
                f"best constant predictor that it keeps (constant weighted F1: {constants})")
        positive = "Positive: fine-tuned models keep more of their skill."
    else:
        what = "Perturbed-F1 difference (F1 fine-tuned - F1 scratch at the level)"
        positive = "Positive: fine-tuned models score higher on the perturbed ECGs."
    excluded = tables.retention_excluded if measure == "retention" else ()
    excluded_words = (f" {len(excluded)} pair(s) left out: an arm's clean F1 at or below the "
                      "constant predictor's, so no skill to keep (" + "; ".join(excluded)
                      + ")." if excluded else "")
    unstable = int((used["retention_unstable"] > 0).sum()) if measure == "retention" else 0
    unstable_words = (f" In {unstable} (pair, kind) value(s) some replicates put an arm's clean "
                      "F1 at or below that replicate's constant (extreme retention there; "
                      "column retention_unstable)." if unstable else "")
    level_words = ("" if tables.level is None or math.isclose(tables.level, plan.level) else
                   f" (the robustness tables print {percent(tables.level)} intervals; the "
                   "claim reads the same replicates at results.level)")
    degradation = tables.summary["degradation"]
    evidence = (
        f"{what} at the harshest level of each kind, averaged over {len(used)} (pair, kind) "
        f"value(s) from {len(pairs)} fine-tuned/scratch pair(s) on {len(sets)} downstream "
        f"set(s) ({', '.join(sets)}), each set weighing the same: **{est.point:+.3f}**, "
        f"{percent(plan.level)} interval {interval(low, high)}{level_words} (paired bootstrap "
        "over test records, one resample per set shared by all its models"
        + (" and the constant predictor" if measure == "retention" else "")
        + f"; seeds resampled per model); margin +{margin:g}. {positive} Per kind: "
        f"{per_kind}.{excluded_words}{unstable_words} Difference of absolute degradations "
        "(F1 at the level - clean F1, fine-tuned - scratch) over the "
        f"{len(harsh.drop_duplicates(['downstream', 'arch', 'upstream']))} pair(s) with the "
        f"same weights, reported, not the verdict: {_estimate_words(degradation, plan.level)}"
        " (a scratch model at the constant predictor cannot drop, so this can favour a model "
        "that learnt nothing).")
    return Claim(key, title, None, rules.gain(low, high, margin), rule, evidence,
                 estimate=est.point, low=low, high=high, margin=margin, unit=unit, sets=sets,
                 models=len(pairs) + len(scratch), seeds=seeds, pairings=len(pairs),
                 excluded=len(excluded), n_tests=1,
                 upstreams=tuple(sorted(set(pairs["upstream"].astype(str)))),
                 extra={"by_kind": {k: e.point
                                    for k, e in tables.summary_by_kind[measure].items()},
                        "degradation_difference": degradation.point,
                        "retention_unstable": unstable})
