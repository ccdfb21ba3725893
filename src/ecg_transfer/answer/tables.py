"""The tables of the study's answer: does fine-tuning beat training from scratch, by how much,
and how sure, with their Markdown.

Every number comes from one :func:`.evidence.selection_evidence` per selection, the same
replicates the claims judge (:mod:`.bootstrap`: test records resampled once per set, each
model's seeds once, the paper selection's best epoch taken again per replicate): Δ =
F1(fine-tuned) - F1(scratch) per pairing (:func:`transfer_table`), against the training-set
size (:func:`size_table`) and per architecture and family (:func:`family_table`);
:func:`convergence_table` counts the epochs each regime needs. The two model selections of
metrics.SELECTIONS are never mixed: every table exists once per selection, and its Markdown
lists the jobs that could not make it. Tables report numbers; the verdicts are the claims'.

A starred Δ has an interval that excludes 0; with some 70 rows per table, a few stars are
expected by chance alone, so each row also says whether it survives Holm's correction over the
table's rows at family-wise error 1 - level (``holm``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ecg_transfer.aggregate import _atomic_write_bytes
from ecg_transfer.answer.bootstrap import holm
from ecg_transfer.answer.evidence import (
    SelectionEvidence,
    convergence_pairs,
    selection_evidence,
)
from ecg_transfer.answer.formatting import (
    as_size,
    fmt_size,
    interval,
    level_of,
    markdown_table,
    mean_sd,
    num,
)
from ecg_transfer.answer.rules import Plan, at_or_below_constant, crossover
from ecg_transfer.answer.runs import (
    FAMILIES,
    THRESHOLD,
    Run,
    check_families,
    check_selection,
    pairings,
)
from ecg_transfer.answer.stats import _check_bootstrap_args, _sd, macro_auroc
from ecg_transfer.answer.verdicts import (
    ConvergencePair,
    Pairing,
    family_evidence,
    reach,
)
from ecg_transfer.metrics import SELECTIONS, weighted_f1

__all__ = [
    "CONVERGENCE_COLUMNS",
    "DIFFERENCE",
    "FAMILY_COLUMNS",
    "SIZE_COLUMNS",
    "TRANSFER_COLUMNS",
    "Tables",
    "compute_tables",
    "convergence_markdown",
    "convergence_table",
    "crossover_lines",
    "family_markdown",
    "family_table",
    "size_markdown",
    "size_table",
    "transfer_markdown",
    "transfer_table",
    "write_table",
]


#: The label of the family table's difference row.
DIFFERENCE = "CNN - RNN"
_STAT_COLUMNS = (
    "n_train", "n_test", "seeds_scratch", "seeds_finetune",
    "scratch_f1", "scratch_sd", "finetune_f1", "finetune_sd", "delta", "low", "high",
    "excludes_zero", "p_value", "holm", "failed", "scratch_auroc", "finetune_auroc",
    "delta_auroc", "auroc_classes", "n_classes", "baseline_f1", "reselected", "n_boot",
    "level",
)
#: Columns of :func:`transfer_table`, in order. ``p_value``: two-sided p of Δ = 0 (normal
#: approximation, bootstrap standard error: :meth:`.bootstrap.Estimate.z_p_value`);
#: ``holm``: the row's Δ still excludes 0 after Holm's correction over the table's rows;
#: ``failed``: both arms at or below the constant predictor (kept out of the claims);
#: ``reselected``: the paper selection's best epoch is taken again in every replicate (the
#: jobs saved per-epoch probabilities).
TRANSFER_COLUMNS = ("selection", "downstream", "arch", "upstream", *_STAT_COLUMNS)
#: Columns of :func:`size_table`: ``size`` is the subsample as configured (a record count or a
#: fraction of the train split; empty for the full split, ``full_split``); ``n_train``, the
#: records actually trained on, is the x axis, and ``crossover`` (per curve: downstream, arch,
#: upstream; :func:`.rules.crossover` at ``margin``) is in its units.
SIZE_COLUMNS = ("selection", "downstream", "arch", "upstream", "size", "full_split",
                *_STAT_COLUMNS, "crossover", "margin")
#: Columns of :func:`family_table`: one row per architecture (``arch``), one per family
#: (``arch`` empty; architectures resampled) and the ``CNN - RNN`` difference.
FAMILY_COLUMNS = ("selection", "family", "arch", "delta", "low", "high", "excludes_zero",
                  "n_pairs", "n_archs", "n_downstream", "excluded", "n_boot", "level")
#: Columns of :func:`convergence_table`; epochs are 1-based. ``censored``: fine-tuning never
#: reached the target; its epoch is then the epochs trained + 1 and ``epochs_saved`` an upper
#: bound (as the convergence claim counts it).
CONVERGENCE_COLUMNS = ("downstream", "arch", "upstream", "seeds_scratch", "seeds_finetune",
                       "epochs_scratch", "epochs_finetune", "tolerance", "target",
                       "scratch_epoch", "finetune_epoch", "censored", "epochs_saved")


def _seed_f1(probs: np.ndarray, y: np.ndarray) -> list[float]:
    return [weighted_f1(y, p, THRESHOLD) for p in probs]


def _stat_rows(se: SelectionEvidence, pairs: Sequence[Pairing], level: float
               ) -> list[dict[str, object]]:
    ev = se.evidence
    rows = []
    for p in pairs:
        c = se.comparisons[p]
        y = c.scratch[0].y_true
        probs_a, probs_b = c.probs(ev.selection)
        f1_a, f1_b = _seed_f1(probs_a, y), _seed_f1(probs_b, y)
        auroc_a = [macro_auroc(y, q) for q in probs_a]
        auroc_b = [macro_auroc(y, q) for q in probs_b]
        mean_a = float(np.mean([a.value for a in auroc_a]))
        mean_b = float(np.mean([b.value for b in auroc_b]))
        a, b, d = ev.models[p.scratch], ev.models[p.finetune], ev.delta(p)
        low, high = d.interval(level)
        rows.append({
            "selection": ev.selection, "downstream": p.downstream, "arch": p.arch,
            "upstream": p.upstream, "n_train": p.n_train, "n_test": len(y),
            "seeds_scratch": len(f1_a), "seeds_finetune": len(f1_b),
            "scratch_f1": a.point, "scratch_sd": _sd(f1_a), "finetune_f1": b.point,
            "finetune_sd": _sd(f1_b), "delta": d.point, "low": low, "high": high,
            "excludes_zero": not low <= 0.0 <= high, "p_value": d.z_p_value(),
            "failed": at_or_below_constant(a.point, b.point, p.constant_f1),
            "scratch_auroc": mean_a, "finetune_auroc": mean_b, "delta_auroc": mean_b - mean_a,
            "auroc_classes": auroc_a[0].n_used, "n_classes": y.shape[1],
            "baseline_f1": p.constant_f1,
            "reselected": ev.selection == "paper" and all(
                r.epoch_probs is not None for r in c.scratch + c.finetune),
            "n_boot": ev.n_boot, "level": level,
        })
    _holm(rows, level)
    return rows


def _holm(rows: Sequence[dict[str, object]], level: float) -> None:
    """Each row's ``holm``: its Δ excludes 0 and survives Holm's step-down over ``rows`` at
    family-wise error 1 - level (p-values from the bootstrap standard error)."""
    survive = holm([float(r["p_value"]) for r in rows], 1.0 - level) if rows else []
    for row, ok in zip(rows, survive, strict=True):
        row["holm"] = bool(ok and row["excludes_zero"])


def transfer_rows(se: SelectionEvidence, level: float) -> pd.DataFrame:
    """Δ F1 (fine-tuned - scratch) per downstream x architecture x upstream, full split only.

    One row per pairing with at least one scratch and one fine-tuned job making the selection;
    F1s are the model's (mean over seeds; sd over seeds, NaN with one) and Δ's interval is the
    hierarchical bootstrap of :mod:`.bootstrap`. Macro AUROC (mean over seeds, from float32
    probabilities) is the threshold-free companion: a Δ F1 that AUROC does not echo may be a
    threshold effect. ``baseline_f1`` (the best constant predictor, from metrics.csv) says
    whether either model learnt anything from the ECG.
    """
    pairs = [p for p in se.comparisons if p.size is None]
    return pd.DataFrame(_stat_rows(se, pairs, level), columns=list(TRANSFER_COLUMNS))


def transfer_table(runs: Sequence[Run], selection: str, *, n_boot: int, seed: int,
                   level: float, families: Mapping[str, str] | None = None,
                   arch_order: Sequence[str] = ()) -> pd.DataFrame:
    """:func:`transfer_rows` of ``runs`` alone (the whole answer computes it once, in
    :func:`compute_tables`). ``families`` defaults to every architecture a CNN (the transfer
    table does not use it)."""
    check_selection(selection)
    _check_bootstrap_args(n_boot, seed, level)
    families = families or {r.arch: FAMILIES[0] for r in runs}
    se = selection_evidence(runs, selection, families=families, n_boot=n_boot, seed=seed,
                            arch_order=arch_order)
    return transfer_rows(se, level)


def size_table(se: SelectionEvidence, level: float, margin: float) -> pd.DataFrame:
    """Δ F1 and its interval against the training-set size, with each curve's crossover.

    A curve is one downstream x architecture x upstream with at least one subsampled point; its
    full-split pairing joins it as the largest point. Points sit at ``n_train``, the records
    each trained on (from the sidecar), since a configured size may be a count or a fraction of
    the split. ``crossover`` is :func:`.rules.crossover`: the smallest ``n_train`` from which
    Δ is equivalent to 0 within ±``margin`` at every larger size (NaN: not reached). Empty
    without a size axis.
    """
    curves: dict[tuple, list[Pairing]] = {}
    for p in se.comparisons:
        curves.setdefault((p.downstream, p.arch, p.upstream), []).append(p)
    rows = []
    for points in curves.values():
        if all(p.size is None for p in points):
            continue
        points = sorted(points, key=lambda p: p.n_train)
        stats = _stat_rows(se, points, level)
        cross = crossover([p.n_train for p in points], [(s["low"], s["high"]) for s in stats],
                          margin)
        for p, s in zip(points, stats, strict=True):
            rows.append({**s, "size": np.nan if p.size is None else p.size,
                         "full_split": p.size is None,
                         "crossover": np.nan if cross is None else cross, "margin": margin})
    _holm(rows, level)
    return pd.DataFrame(rows, columns=list(SIZE_COLUMNS))


def family_table(se: SelectionEvidence, level: float) -> pd.DataFrame:
    """Mean Δ per architecture, per family and the difference CNN - RNN (full split).

    :func:`.verdicts.family_evidence`, the numbers :func:`.verdicts.families_claim` judges:
    an architecture's row is the mean Δ over its pairings; a family's is the mean over its
    architectures, drawn with replacement in each replicate (the claim is about CNNs and RNNs,
    not these networks), so with three architectures its interval is wide; the difference row
    exists when both families have an architecture. Pairings where both arms sit at or below
    the constant predictor are left out (``excluded``).
    """
    ev = se.evidence
    fe = family_evidence(ev)
    sets_of: dict[str, set[str]] = {}
    for p in fe.kept:
        sets_of.setdefault(p.arch, set()).add(p.downstream)
    rows = []

    def row(family: str, arch: str, est, n_pairs: int, n_archs: int, sets: set[str]) -> None:
        low, high = est.interval(level)
        rows.append({"selection": ev.selection, "family": family, "arch": arch,
                     "delta": est.point, "low": low, "high": high,
                     "excludes_zero": not low <= 0.0 <= high, "n_pairs": n_pairs,
                     "n_archs": n_archs, "n_downstream": len(sets), "excluded": fe.excluded,
                     "n_boot": ev.n_boot, "level": level})

    for family in FAMILIES:
        archs = fe.archs.get(family, [])
        for arch in archs:
            row(family, arch, fe.arch_means[arch], fe.arch_pairings[arch], 1, sets_of[arch])
        if archs:
            row(family, "", fe.family[family], sum(fe.arch_pairings[a] for a in archs),
                len(archs), set().union(*(sets_of[a] for a in archs)))
    diff = fe.difference()
    if diff is not None:
        row(DIFFERENCE, "", diff, len(fe.kept), len(fe.arch_means), set(fe.sets))
    return pd.DataFrame(rows, columns=list(FAMILY_COLUMNS))


def convergence_table(pairs: Sequence[ConvergencePair], tolerance: float) -> pd.DataFrame:
    """Epochs each regime needs to reach :func:`.verdicts.plateau_target` of scratch's curve
    (:func:`.verdicts.reach`, what the convergence claims count).

    Per full-split pairing, on the per-epoch test F1 of metrics.csv averaged over seeds. It is
    the same under both selections: it reads whole curves, not one selected epoch.
    ``epochs_saved`` > 0 means fine-tuning got there sooner; a fine-tuning run that never got
    there is ``censored`` at the epochs trained + 1, as the convergence claim counts it.
    """
    rows = []
    for p in pairs:
        r = reach(p, tolerance)
        rows.append({
            "downstream": p.downstream, "arch": p.arch, "upstream": p.upstream,
            "seeds_scratch": p.seeds, "seeds_finetune": p.seeds,
            "epochs_scratch": len(p.scratch), "epochs_finetune": len(p.finetune),
            "tolerance": tolerance, "target": r.target, "scratch_epoch": r.scratch_epoch,
            "finetune_epoch": r.finetune_epoch, "censored": r.censored,
            "epochs_saved": r.saved,
        })
    df = pd.DataFrame(rows, columns=list(CONVERGENCE_COLUMNS))
    for col in ("scratch_epoch", "finetune_epoch", "epochs_saved"):
        df[col] = df[col].astype("Int64")
    return df


@dataclass(frozen=True)
class Tables:
    """Every table of one run: per selection (keys of metrics.SELECTIONS) and the convergence
    table, which does not depend on the selection. ``sizes`` is empty without a size axis.
    ``evidence`` (per selection) and ``convergence_pairs`` are what the claims judge."""

    transfer: dict[str, pd.DataFrame]
    families: dict[str, pd.DataFrame]
    convergence: pd.DataFrame
    sizes: dict[str, pd.DataFrame]
    evidence: dict[str, SelectionEvidence]
    convergence_pairs: list[ConvergencePair]


def compute_tables(runs: Sequence[Run], *, families: Mapping[str, str], n_boot: int, seed: int,
                   plan: Plan, arch_order: Sequence[str] = ()) -> Tables:
    """All tables, computed once, so that the claims and figures quote the same numbers."""
    check_families(runs, families)
    _check_bootstrap_args(n_boot, seed, plan.level)
    evidence = {s: selection_evidence(runs, s, families=families, n_boot=n_boot, seed=seed,
                                      arch_order=arch_order) for s in SELECTIONS}
    sized = any(r.size is not None for r in runs)
    pairs = convergence_pairs(runs, arch_order)
    return Tables(
        transfer={s: transfer_rows(evidence[s], plan.level) for s in SELECTIONS},
        families={s: family_table(evidence[s], plan.level) for s in SELECTIONS},
        convergence=convergence_table(pairs, plan.convergence_tolerance),
        sizes={s: size_table(evidence[s], plan.level, plan.margin_f1) for s in SELECTIONS}
        if sized else {},
        evidence=evidence, convergence_pairs=pairs,
    )


# --------------------------------------------------------------------------------------------
# Markdown


def _selection_intro(selection: str) -> str:
    return f"**{selection.capitalize()} selection**: {SELECTIONS[selection][1]}."


def _lacking(runs: Sequence[Run], selection: str) -> list[Run]:
    return [r for r in runs if selection not in r.probs]


def _lacking_note(runs: Sequence[Run], selection: str) -> str:
    lacking = _lacking(runs, selection)
    if not lacking:
        return ""
    if len(lacking) == len(runs):
        return (f"No job could make the {selection} selection (no `{selection}_probs` in any "
                "predictions file: no validation split), so this table has no rows.\n")
    listed = "\n".join(f"* {r.describe()} (`{r.predictions}`)" for r in lacking)
    return (f"{len(lacking)} of {len(runs)} jobs could not make the {selection} selection "
            f"(no `{selection}_probs`) and are left out of it:\n\n{listed}\n")


def _unpaired_note(runs: Sequence[Run], sized: bool) -> str:
    """Jobs no table row uses because the other regime is missing for them (said, not
    silently dropped: a failed or forgotten job should show)."""
    considered = [r for r in runs if (r.size is not None) == sized]
    used = {id(r) for c in pairings(considered) for r in c.scratch + c.finetune}
    unpaired = [r for r in considered if id(r) not in used]
    if not unpaired:
        return ""
    listed = "\n".join(f"* {r.describe()} (`{r.predictions}`)" for r in unpaired)
    return ("Jobs without a counterpart of the other regime (same architecture, downstream set "
            f"and training size), so in no row:\n\n{listed}\n")


def _reselection_note(table: pd.DataFrame, selection: str) -> str:
    if selection != "paper" or table.empty:
        return ""
    if table["reselected"].all():
        return ("Each model's best test epoch is taken again in every bootstrap replicate (from "
                "the per-epoch test probabilities each job saved), so the optimism of picking "
                "the best of many epochs on the test set is inside the intervals.\n")
    n = int((~table["reselected"]).sum())
    return (f"{n} row(s) compare jobs whose predictions.npz lacks per-epoch probabilities "
            "(`epoch_probs`, written since this version): their intervals resample the saved "
            "best epoch's predictions only, leaving the optimism of choosing that epoch on the "
            "test set outside; rerun those jobs to include it.\n")


def transfer_markdown(table: pd.DataFrame, selection: str, *,
                      runs: Sequence[Run] = ()) -> str:
    """The transfer table of one selection as Markdown, with a caption saying how to read it;
    ``runs`` (all jobs) lets it list the jobs that could not make the selection."""
    level = level_of(table)
    parts = [
        f"# Fine-tuned vs scratch: Δ F1 with {level}intervals ({selection} selection)\n",
        _selection_intro(selection) + "\n",
        "Each row compares one architecture trained from scratch on a downstream set with the "
        "same architecture fine-tuned from an upstream set, both on the full training split "
        "(`n train` records). F1 is the support-weighted F1 at a 0.5 threshold, recomputed from "
        "the saved test probabilities; `mean ± sd` over seeds where there are several. "
        f"`Δ` = fine-tuned - scratch; its {level}interval is a hierarchical bootstrap: test "
        "records resampled once per replicate for every model of the set, each model's seeds "
        "drawn once per replicate (with one seed, training randomness is outside the "
        "interval). `*`: the interval excludes 0. With many rows some stars are expected by "
        "chance: `Holm` says whether the row still excludes 0 after Holm's correction over "
        "this table's rows (family-wise error 1 - level). AUROC is the unweighted mean over "
        "classes (`†`: over fewer classes than the table has, some lacking positives or "
        "negatives in the test set). `constant` is the best F1 of a predictor that ignores the "
        "ECG; `failed`: both arms at or below it (training failed; kept out of the claims).\n",
    ]
    note = _lacking_note(runs, selection)
    parts += [n for n in (note, _unpaired_note(runs, sized=False),
                          _reselection_note(table, selection)) if n]
    if table.empty:
        if not note:
            parts.append(f"No downstream set has both a scratch and a fine-tuned job making the "
                         f"{selection} selection, so this table has no rows.\n")
        return "\n".join(parts)
    header = ["downstream", "arch", "upstream", "n train", "scratch F1", "fine-tuned F1", "Δ F1",
              f"{level}interval", "Holm", "scratch AUROC", "fine-tuned AUROC", "Δ AUROC",
              "constant"]
    rows = []
    for r in table.itertuples(index=False):
        dagger = "†" if r.auroc_classes < r.n_classes else ""
        rows.append([
            r.downstream, r.arch, r.upstream, str(r.n_train),
            mean_sd(r.scratch_f1, r.scratch_sd), mean_sd(r.finetune_f1, r.finetune_sd),
            num(r.delta, sign=True) + ("*" if r.excludes_zero else ""),
            interval(r.low, r.high), "yes" if r.holm else "", num(r.scratch_auroc) + dagger,
            num(r.finetune_auroc) + dagger, num(r.delta_auroc, sign=True),
            num(r.baseline_f1) + (" (failed)" if r.failed else ""),
        ])
    parts.append(markdown_table(header, rows, 3) + "\n")
    n_star, n_holm = int(table["excludes_zero"].sum()), int(table["holm"].sum())
    parts.append(f"{n_star} of {len(table)} row(s) starred; {n_holm} survive Holm's "
                 "correction.\n")
    return "\n".join(parts)


def size_markdown(table: pd.DataFrame, selection: str, *, runs: Sequence[Run] = ()) -> str:
    """The size table of one selection as Markdown, with each curve's crossover below it."""
    level = level_of(table)
    margin = float(table["margin"].iloc[0]) if len(table) else None
    within = "the margin" if margin is None else f"±{margin:g}"
    parts = [
        f"# Δ F1 against the training-set size ({selection} selection)\n",
        _selection_intro(selection) + "\n",
        "Scratch and fine-tuned models trained on subsamples of the downstream training split "
        "(`size` as configured: a record count or a fraction of the split; `full` is the whole "
        "split, the last point); `n train` is the records each trained on. "
        f"`Δ` = fine-tuned - scratch with its {level}interval (hierarchical bootstrap); `*`: "
        "the interval excludes 0; `Holm`: it still does after Holm's correction over this "
        "table's rows. The *crossover* of a curve is the smallest training-set size from which "
        f"Δ is equivalent to 0 (interval inside {within}, results.margin_f1) at that size and "
        "every larger one: where this run shows transfer stops mattering. An interval that "
        "merely includes 0 is not enough: it may only be wide.\n",
    ]
    note = _lacking_note(runs, selection)
    parts += [n for n in (note, _unpaired_note(runs, sized=True)) if n]
    if table.empty:
        if not note:
            parts.append(f"No subsampled pairing makes the {selection} selection.\n")
        return "\n".join(parts)
    header = ["downstream", "arch", "upstream", "size", "n train", "scratch F1", "fine-tuned F1",
              "Δ F1", f"{level}interval", "Holm"]
    rows = [[r.downstream, r.arch, r.upstream, fmt_size(as_size(r.size)), str(r.n_train),
             mean_sd(r.scratch_f1, r.scratch_sd), mean_sd(r.finetune_f1, r.finetune_sd),
             num(r.delta, sign=True) + ("*" if r.excludes_zero else ""), interval(r.low, r.high),
             "yes" if r.holm else ""]
            for r in table.itertuples(index=False)]
    parts.append(markdown_table(header, rows, 3) + "\n")
    parts.append("## Crossover per curve\n")
    parts += [f"* {line}" for line in crossover_lines(table)]
    return "\n".join(parts) + "\n"


def crossover_lines(table: pd.DataFrame) -> list[str]:
    lines = []
    for (downstream, arch, upstream), curve in table.groupby(
            ["downstream", "arch", "upstream"], sort=False):
        first = curve.iloc[0]
        name = f"{arch} fine-tuned from {upstream} on {downstream}"
        if pd.isna(first["crossover"]):
            lines.append(f"{name}: not reached (the largest size's interval is not inside "
                         f"±{first['margin']:g})")
            continue
        lines.append(f"{name}: crossover at {int(first['crossover'])} training records")
    return lines


def family_markdown(table: pd.DataFrame, selection: str) -> str:
    """The family table of one selection as Markdown."""
    level = level_of(table)
    parts = [
        f"# CNN vs RNN: mean Δ F1 per architecture and family ({selection} selection)\n",
        _selection_intro(selection) + "\n",
        "Per architecture, the mean of Δ = fine-tuned - scratch over its (upstream, downstream) "
        "pairings on the full training split; per family, the mean over its architectures, "
        f"with a {level}interval in which records, seeds *and the architectures* are "
        "resampled (the question is about CNNs and RNNs, not these few networks: with three "
        f"per family the interval is wide). `{DIFFERENCE}` is the difference of the family "
        "means from the same replicates. Pairings where both arms sit at or below the constant "
        "predictor (failed training) are left out. `*`: the interval excludes 0.\n",
    ]
    if table.empty:
        parts.append(f"No pairing makes the {selection} selection, so this table has no rows.\n")
        return "\n".join(parts)
    header = ["family", "architecture", "mean Δ F1", f"{level}interval", "pairings",
              "downstream sets"]
    rows = [[r.family, r.arch or f"all {r.n_archs}",
             num(r.delta, sign=True) + ("*" if r.excludes_zero else ""),
             interval(r.low, r.high), str(r.n_pairs), str(r.n_downstream)]
            for r in table.itertuples(index=False)]
    parts.append(markdown_table(header, rows, 2) + "\n")
    excluded = int(table["excluded"].iloc[0])
    if excluded:
        parts.append(f"{excluded} pairing(s) left out: both arms at or below the constant "
                     "predictor.\n")
    missing = [f for f in FAMILIES if f not in set(table["family"])]
    if missing:
        parts.append(f"No {' or '.join(missing)} pairing in this selection, so the difference "
                     f"{DIFFERENCE} cannot be computed.\n")
    return "\n".join(parts)


def convergence_markdown(table: pd.DataFrame) -> str:
    """The convergence table as Markdown; censored runs marked."""
    tolerance = float(table["tolerance"].iloc[0]) if len(table) else None
    minus = "results.convergence_tolerance" if tolerance is None else f"{tolerance:g}"
    parts = [
        "# Epochs to reach the scratch level\n",
        "Per pairing (full training split), the test F1 per epoch averaged over seeds. Target: "
        f"the best mean of 3 consecutive scratch epochs minus {minus} (a level scratch "
        "training settles at, not its luckiest epoch). `scratch` and `fine-tuned` are the first "
        "epochs (from 1) at or above it; `saved` = scratch - fine-tuned, positive where "
        "fine-tuning got there sooner. `>N`: fine-tuning did not get there within the N epochs "
        "trained; it counts as epoch N + 1 (censored: its saving is an upper bound), as the "
        "convergence claim counts it. Independent of the model selection: it reads whole "
        "curves.\n",
    ]
    if table.empty:
        parts.append("No downstream set has both a scratch and a fine-tuned job.\n")
        return "\n".join(parts)
    header = ["downstream", "arch", "upstream", "epochs trained (scratch / ft)", "target",
              "scratch", "fine-tuned", "saved"]
    rows = [[r.downstream, r.arch, r.upstream, f"{r.epochs_scratch} / {r.epochs_finetune}",
             num(r.target), str(int(r.scratch_epoch)),
             f">{r.epochs_finetune}" if r.censored else str(int(r.finetune_epoch)),
             ("<=" if r.censored else "") + f"{int(r.epochs_saved):+d}"]
            for r in table.itertuples(index=False)]
    parts.append(markdown_table(header, rows, 3) + "\n")
    censored = int(table["censored"].sum())
    if censored:
        parts.append(f"{censored} of {len(table)} fine-tuning run(s) censored.\n")
    return "\n".join(parts)


def write_table(table: pd.DataFrame, markdown: str, csv_path: str | os.PathLike,
                md_path: str | os.PathLike) -> None:
    """Write a table as CSV (every column, full precision) and its Markdown, each atomically."""
    _atomic_write_bytes(Path(csv_path), table.to_csv(index=False, float_format="%.6g").encode())
    _atomic_write_bytes(Path(md_path), markdown.encode())
