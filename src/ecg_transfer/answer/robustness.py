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
from ecg_transfer.answer.formatting import interval, markdown_table, nothing, num, percent
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
from ecg_transfer.fileio import read_npz
from ecg_transfer.perturb import LEVELS

__all__ = [
    "CLEAN",
    "LEAD_KINDS",
    "PAIR_COLUMNS",
    "ROBUSTNESS_COLUMNS",
    "RobustnessSet",
    "RobustnessTables",
    "check_kinds",
    "is_lead_kind",
    "level_label",
    "load_robustness",
    "mild_to_harsh",
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
#: kind's harshest level, the one the claim reads.
PAIR_COLUMNS = ("downstream", "arch", "upstream", "kind", "level", "harshest", "seeds_finetune",
                "seeds_scratch", "n_test", "finetune_clean_f1", "finetune_f1",
                "finetune_degradation", "scratch_clean_f1", "scratch_f1", "scratch_degradation",
                "difference", "low", "high", "excludes_zero", "n_boot", "coverage")
_CURVE_COLUMNS = ("downstream", "regime", "upstream", "kind", "level", "f1", "low", "high",
                  "archs")


def is_lead_kind(kind: str) -> bool:
    return kind in LEAD_KINDS


def mild_to_harsh(kind: str, levels: Sequence[float]) -> list[float]:
    """Levels from the mildest to the harshest: SNR descending, leads zeroed ascending."""
    return sorted(levels, reverse=not is_lead_kind(kind))


def check_kinds(kinds: Sequence[str], where: str) -> list[str]:
    bad = [k for k in kinds if k not in LEVELS]
    if bad:
        raise ValueError(f"{where}: unknown perturbation kind(s) {bad}; expected some of "
                         f"{list(LEVELS)}")
    return list(dict.fromkeys(kinds))


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


def robustness_model_id(regime: str, upstream: str | None, arch: str, seed: int) -> str:
    """A fine-tuned or scratch model's id in its downstream set's robustness file (the workflow
    names the entries with it, :func:`_parse_model_id` reads it back)."""
    if regime == "finetune" and upstream:
        return f"finetune/{upstream}/{arch}/seed{seed}"
    if regime == "scratch" and not upstream:
        return f"scratch/{arch}/seed{seed}"
    raise ValueError(f"no robustness model id for regime {regime!r} with upstream {upstream!r}: "
                     "expected finetune with an upstream, or scratch without one")


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
    """

    models: pd.DataFrame
    pairs: pd.DataFrame
    curves: pd.DataFrame
    harshest: MeanDelta | None
    by_kind: dict[str, MeanDelta]
    unpaired: tuple[str, ...] = ()


@dataclass
class _Group:
    """One architecture x regime x upstream of a downstream set: its seeds' F1 on the full test
    set (seeds, conditions), replicates (n_boot, seeds, conditions) and seed draws."""

    full: np.ndarray
    reps: np.ndarray
    draws: np.ndarray

    def mean(self) -> np.ndarray:
        """Replicate seed means (n_boot, conditions)."""
        return np.einsum("bs,bsc->bc", self.draws, self.reps) / self.draws.shape[1]


def _set_replicates(rs: RobustnessSet, n_boot: int, rng: np.random.Generator
                    ) -> dict[tuple, tuple[np.ndarray, np.ndarray]]:
    """Every model's F1 under every condition: full test set (conditions,) and replicates
    (n_boot, conditions), all models and conditions scored on the same record resamples."""
    y = rs.y_true
    n, n_classes = y.shape
    keys = sorted(rs.probs)
    ones = np.ones((1, n), dtype=np.int64)
    full: dict[tuple, np.ndarray] = {}
    reps: dict[tuple, list[np.ndarray]] = {k: [] for k in keys}
    step = _chunk_rows(n)
    for start in range(0, n_boot, step):
        counts = _resample_counts(rng, min(step, n_boot - start), n)
        for k in keys:
            # one model's design at a time: all of them at once can take gigabytes
            design = _design(y, list(rs.probs[k]), THRESHOLD)
            if k not in full:
                full[k] = _f1_of_counts(ones, design, n_classes)[0]
            reps[k].append(_f1_of_counts(counts, design, n_classes))
    return {k: (full[k], np.concatenate(reps[k])) for k in keys}


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
        scored = _set_replicates(rs, n_boot, np.random.default_rng(ss))
        groups = _groups(rs, scored, n_boot, seed_rng)
        means = {g: grp.mean() for g, grp in groups.items()}
        model_rows += _model_rows(rs, groups, means, n_boot, level)
        rows, lone = _pair_rows(rs, groups, means, n_boot, level)
        pair_rows += rows
        unpaired += lone
        curve_rows += _curve_rows(rs, groups, means, level)
    # the claim's numbers: each (pair, kind) at the kind's harshest level, weighing the same
    harsh = [r for r in pair_rows if r["harshest"]]
    by_kind = {k: _mean_of([r for r in harsh if r["kind"] == k], n_boot, level)
               for k in LEVELS if any(r["kind"] == k for r in harsh)}
    overall = _mean_of(harsh, n_boot, level) if harsh else None
    return RobustnessTables(
        _sorted(pd.DataFrame(model_rows, columns=list(ROBUSTNESS_COLUMNS)), arch_order),
        _sorted(pd.DataFrame(pair_rows, columns=list(PAIR_COLUMNS)), arch_order),
        pd.DataFrame(curve_rows, columns=list(_CURVE_COLUMNS)), overall, by_kind,
        tuple(unpaired))


def _pair_rows(rs: RobustnessSet, groups: Mapping[tuple[str, str, str], _Group],
               means: Mapping[tuple[str, str, str], np.ndarray], n_boot: int, level: float
               ) -> tuple[list[dict[str, object]], list[str]]:
    """Each fine-tuned model group against the scratch group of its architecture, at every
    perturbed condition (rows keep their replicates under ``_reps``), and the fine-tuned
    groups without a scratch counterpart."""
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
        for i, (kind, lv) in enumerate(rs.conditions):
            if kind == CLEAN:
                continue
            low, high = _percentile_interval(reps[:, i], level)
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
                "n_boot": n_boot, "coverage": level, "_reps": reps[:, i]})
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
    its record resamples, sets are independent (as in stats.bootstrap_mean_delta)."""
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
    difference of degradations with its interval."""
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
        parts.append("### Difference of degradations (fine-tuned - scratch)\n")
        if pk.empty:
            parts.append(nothing("no fine-tuned model has a scratch counterpart here."))
            continue
        header = ["downstream", "arch", "upstream", *[level_label(kind, lv) for lv in levels]]
        rows = []
        for (down, arch, up), g in pk.groupby(["downstream", "arch", "upstream"], sort=False):
            cells = {r["level"]: f"{r['difference']:+.3f}{'*' if r['excludes_zero'] else ''} "
                                 f"{interval(r['low'], r['high'])}"
                     for r in g.to_dict("records")}
            rows.append([down, arch, up, *[cells.get(lv, "—") for lv in levels]])
        parts.append(markdown_table(header, rows, 3) + "\n")
    return "\n".join(parts)
