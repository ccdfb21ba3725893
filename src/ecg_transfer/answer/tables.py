"""The tables of the study's answer: does fine-tuning beat training from scratch, by how much,
and how sure, with their Markdown.

Δ = F1(fine-tuned) - F1(scratch) gets a paired bootstrap interval over the downstream test
records (and seeds), computed by stats.py, per pairing (:func:`transfer_table`), against the
training-set size (:func:`size_table`) and per architecture family (:func:`family_table`);
:func:`convergence_table` counts the epochs each regime needs. The two model selections of
metrics.SELECTIONS are never mixed: every table exists once per selection, and its Markdown
lists the jobs that could not make it. Tables report numbers; the verdicts are claims.py's.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ecg_transfer.aggregate import _atomic_write_bytes, _mean_curve
from ecg_transfer.answer.formatting import (
    as_size,
    fmt_size,
    interval,
    level_of,
    markdown_table,
    mean_sd,
    num,
)
from ecg_transfer.answer.runs import (
    FAMILIES,
    Comparison,
    Run,
    check_families,
    check_selection,
    pairings,
)
from ecg_transfer.answer.stats import (
    _bootstrap_pairs,
    _check_bootstrap_args,
    _Pair,
    _percentile_interval,
    _seeded_probs,
    _test_labels,
    bootstrap_mean_delta,
    convergence,
    crossover,
    macro_auroc,
    paired_bootstrap_delta,
)
from ecg_transfer.metrics import SELECTIONS

__all__ = [
    "CONVERGENCE_COLUMNS",
    "CONVERGENCE_TOLERANCE",
    "DIFFERENCE",
    "FAMILY_COLUMNS",
    "SIZE_COLUMNS",
    "TRANSFER_COLUMNS",
    "Tables",
    "by_test_set",
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


#: Within this much F1 of the best scratch F1 counts as "reached" (stats.convergence): the
#: convergence claim is about reaching scratch's level, not its last noisy peak.
CONVERGENCE_TOLERANCE = 0.01
#: The label of the family table's difference row.
DIFFERENCE = "CNN - RNN"
_STAT_COLUMNS = (
    "n_train", "n_test", "seeds_scratch", "seeds_finetune",
    "scratch_f1", "scratch_sd", "finetune_f1", "finetune_sd", "delta", "low", "high",
    "excludes_zero", "scratch_auroc", "finetune_auroc", "delta_auroc", "auroc_classes",
    "n_classes", "baseline_f1", "n_boot", "level",
)
#: Columns of :func:`transfer_table`, in order.
TRANSFER_COLUMNS = ("selection", "downstream", "arch", "upstream", *_STAT_COLUMNS)
#: Columns of :func:`size_table`: ``size`` is the subsample as configured (a record count or a
#: fraction of the train split; empty for the full split, ``full_split``); ``n_train``, the
#: records actually trained on, is the x axis, and ``crossover`` (per curve: downstream, arch,
#: upstream) is in its units.
SIZE_COLUMNS = ("selection", "downstream", "arch", "upstream", "size", "full_split",
                *_STAT_COLUMNS, "crossover", "crossover_monotone")
#: Columns of :func:`family_table`; the ``CNN - RNN`` row has ``n_pairs`` of both families.
FAMILY_COLUMNS = ("selection", "family", "delta", "low", "high", "excludes_zero", "n_pairs",
                  "n_downstream", "n_boot", "level")
#: Columns of :func:`convergence_table`; epochs are 1-based, empty where not reached.
CONVERGENCE_COLUMNS = ("downstream", "arch", "upstream", "seeds_scratch", "seeds_finetune",
                       "epochs_scratch", "epochs_finetune", "tolerance", "target",
                       "scratch_epoch", "finetune_epoch", "epochs_saved")


def _stat_row(c: Comparison, selection: str, n_boot: int, seed: int,
              level: float) -> dict[str, object]:
    y = c.scratch[0].y_true
    probs_a, probs_b = c.probs(selection)
    d = paired_bootstrap_delta(y, probs_a, probs_b, n_boot=n_boot, seed=seed, level=level)
    auroc_a = [macro_auroc(y, p) for p in probs_a]
    auroc_b = [macro_auroc(y, p) for p in probs_b]
    mean_a = float(np.mean([a.value for a in auroc_a]))
    mean_b = float(np.mean([b.value for b in auroc_b]))
    return {
        "selection": selection, "downstream": c.downstream, "arch": c.arch,
        "upstream": c.upstream, "n_train": c.n_train, "n_test": len(y),
        "seeds_scratch": d.n_seeds_a, "seeds_finetune": d.n_seeds_b,
        "scratch_f1": d.f1_a, "scratch_sd": d.sd_a, "finetune_f1": d.f1_b,
        "finetune_sd": d.sd_b, "delta": d.delta, "low": d.low, "high": d.high,
        "excludes_zero": not d.low <= 0.0 <= d.high,
        "scratch_auroc": mean_a, "finetune_auroc": mean_b, "delta_auroc": mean_b - mean_a,
        "auroc_classes": auroc_a[0].n_used, "n_classes": y.shape[1],
        "baseline_f1": float(np.mean([r.baseline_f1 for r in c.scratch + c.finetune])),
        "n_boot": n_boot, "level": level,
    }


def transfer_table(runs: Sequence[Run], selection: str, *, n_boot: int, seed: int,
                   level: float, arch_order: Sequence[str] = ()) -> pd.DataFrame:
    """Δ F1 (fine-tuned - scratch) per downstream x architecture x upstream, full split only.

    One row per pairing that has at least one scratch and one fine-tuned job making
    ``selection``; F1s are means over seeds (sd over seeds, NaN with one). The interval is the
    paired bootstrap of stats.paired_bootstrap_delta (records resampled once for both models,
    seeds resampled independently per model). Macro AUROC is the threshold-free companion: a Δ
    F1 that AUROC does not echo may be a threshold effect. ``baseline_f1`` (the best constant
    predictor, from metrics.csv) says whether either model learnt anything from the ECG.
    """
    check_selection(selection)
    _check_bootstrap_args(n_boot, seed, level)
    rows = [_stat_row(c, selection, n_boot, seed, level)
            for c in pairings(runs, arch_order, selection=selection, full_only=True)]
    return pd.DataFrame(rows, columns=list(TRANSFER_COLUMNS))


def size_table(runs: Sequence[Run], selection: str, *, n_boot: int, seed: int, level: float,
               arch_order: Sequence[str] = ()) -> pd.DataFrame:
    """Δ F1 and its interval against the training-set size, with each curve's crossover.

    A curve is one downstream x architecture x upstream with at least one subsampled point; its
    full-split pairing joins it as the largest point. Points sit at ``n_train``, the records
    each trained on (from the sidecar), since a configured size may be a count or a fraction of
    the split. ``crossover`` is stats.crossover: the smallest ``n_train`` whose interval
    includes 0 (NaN: none does); ``crossover_monotone`` is False when a larger size excludes 0
    again, so that one number would mislead. Empty without a size axis.
    """
    check_selection(selection)
    _check_bootstrap_args(n_boot, seed, level)
    curves: dict[tuple, list[Comparison]] = {}
    for c in pairings(runs, arch_order, selection=selection):
        curves.setdefault((c.downstream, c.arch, c.upstream), []).append(c)
    rows = []
    for points in curves.values():
        if all(c.size is None for c in points):
            continue
        stats = [_stat_row(c, selection, n_boot, seed, level) for c in points]
        sizes = [c.n_train for c in points]
        intervals = [(s["low"], s["high"]) for s in stats]
        cross = crossover(sizes, intervals)
        monotone = cross is None or all(lo <= 0.0 <= hi for x, (lo, hi)
                                        in zip(sizes, intervals, strict=True) if x >= cross)
        for c, s in zip(points, stats, strict=True):
            rows.append({**s, "size": math.nan if c.size is None else c.size,
                         "full_split": c.size is None,
                         "crossover": math.nan if cross is None else cross,
                         "crossover_monotone": monotone})
    return pd.DataFrame(rows, columns=list(SIZE_COLUMNS))


def by_test_set(comparisons: Sequence[Comparison], selection: str
                ) -> dict[str, tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]]:
    """bootstrap_mean_delta's input: pairs grouped by the downstream test set they share."""
    groups: dict[str, tuple[np.ndarray, list]] = {}
    for c in comparisons:
        groups.setdefault(c.downstream, (c.scratch[0].y_true, []))[1].append(c.probs(selection))
    return groups


def _family_difference(cnn: Sequence[Comparison], rnn: Sequence[Comparison], selection: str,
                       n_boot: int, seed: int, level: float) -> tuple[float, float, float]:
    """Mean Δ of the CNN pairs minus mean Δ of the RNN pairs, with a percentile interval.

    stats has no public call returning replicate draws, so this uses its internal
    ``_bootstrap_pairs`` (the engine behind bootstrap_mean_delta) on all pairs of both families
    at once: each replicate draws one record resample per downstream test set, shared by every
    CNN and RNN pair scored on it (their Δs move together with the records drawn, so the
    difference's interval must keep that correlation), sets resampled independently, seeds as
    in paired_bootstrap_delta; the replicate difference is the mean over the replicate's CNN
    pairs minus the mean over its RNN pairs, each family's pairs weighing equally within it.
    """
    by_set: dict[str, tuple[np.ndarray, list[_Pair], list[bool]]] = {}
    for family_is_cnn, comparisons in ((True, cnn), (False, rnn)):
        for c in comparisons:
            y, pairs, flags = by_set.setdefault(
                c.downstream, (_test_labels(c.scratch[0].y_true, c.downstream), [], []))
            a, b = c.probs(selection)
            pairs.append(_Pair(_seeded_probs(a, "scratch probs", y.shape),
                               _seeded_probs(b, "fine-tuned probs", y.shape)))
            flags.append(family_is_cnn)
    groups = [(y, pairs) for y, pairs, _ in by_set.values()]
    is_cnn = np.array([f for _, _, flags in by_set.values() for f in flags])
    stats = _bootstrap_pairs(groups, n_boot, seed, 0.5)
    replicates = np.stack([s.deltas for s in stats])
    point = np.array([s.f1_b.mean() - s.f1_a.mean() for s in stats])
    diff = replicates[is_cnn].mean(axis=0) - replicates[~is_cnn].mean(axis=0)
    low, high = _percentile_interval(diff, level)
    return float(point[is_cnn].mean() - point[~is_cnn].mean()), low, high


def family_table(runs: Sequence[Run], selection: str, *, families: Mapping[str, str],
                 n_boot: int, seed: int, level: float) -> pd.DataFrame:
    """Mean Δ per architecture family (full split) and the difference CNN - RNN.

    A family's row is stats.bootstrap_mean_delta over all its pairs, grouped by downstream test
    set (pairs on one set share each replicate's record resample; every pair weighs the same).
    The ``CNN - RNN`` row, present only when both families have pairs, resamples both families'
    pairs jointly (see :func:`_family_difference`), so its interval is not derived from the two
    family intervals.
    """
    check_selection(selection)
    _check_bootstrap_args(n_boot, seed, level)
    check_families(runs, families)
    comparisons = pairings(runs, selection=selection, full_only=True)
    by_family = {f: [c for c in comparisons if families[c.arch] == f] for f in FAMILIES}
    rows = []
    for family, members in by_family.items():
        if not members:
            continue
        md = bootstrap_mean_delta(by_test_set(members, selection), n_boot=n_boot, seed=seed,
                                  level=level)
        rows.append({"family": family, "delta": md.delta, "low": md.low, "high": md.high,
                     "n_pairs": md.n_pairs, "n_downstream": md.n_groups})
    if all(by_family.values()):
        delta, low, high = _family_difference(by_family["CNN"], by_family["RNN"], selection,
                                              n_boot, seed, level)
        members = by_family["CNN"] + by_family["RNN"]
        rows.append({"family": DIFFERENCE, "delta": delta, "low": low, "high": high,
                     "n_pairs": len(members),
                     "n_downstream": len({c.downstream for c in members})})
    for row in rows:
        row.update(selection=selection, excludes_zero=not row["low"] <= 0.0 <= row["high"],
                   n_boot=n_boot, level=level)
    return pd.DataFrame(rows, columns=list(FAMILY_COLUMNS))


def convergence_table(runs: Sequence[Run], *, tolerance: float = CONVERGENCE_TOLERANCE,
                      arch_order: Sequence[str] = ()) -> pd.DataFrame:
    """Epochs each regime needs to come within ``tolerance`` of the best scratch test F1.

    Per full-split pairing, on the per-epoch test F1 of metrics.csv averaged over seeds (an
    epoch some seeds lack averages the others), via stats.convergence. It is the same under
    both selections: it reads whole curves, not one selected epoch. ``epochs_saved`` > 0 means
    fine-tuning got there sooner; empty where fine-tuning never reached the target.
    """
    rows = []
    for c in pairings(runs, arch_order, full_only=True):
        scratch = _mean_curve([r.log for r in c.scratch]).to_numpy()
        finetune = _mean_curve([r.log for r in c.finetune]).to_numpy()
        conv = convergence(scratch, finetune, tolerance)
        rows.append({
            "downstream": c.downstream, "arch": c.arch, "upstream": c.upstream,
            "seeds_scratch": len(c.scratch), "seeds_finetune": len(c.finetune),
            "epochs_scratch": len(scratch), "epochs_finetune": len(finetune),
            "tolerance": tolerance, "target": conv.target, "scratch_epoch": conv.scratch_epoch,
            "finetune_epoch": conv.finetune_epoch, "epochs_saved": conv.epochs_saved,
        })
    df = pd.DataFrame(rows, columns=list(CONVERGENCE_COLUMNS))
    for col in ("scratch_epoch", "finetune_epoch", "epochs_saved"):
        df[col] = df[col].astype("Int64")
    return df


@dataclass(frozen=True)
class Tables:
    """Every table of one run: per selection (keys of metrics.SELECTIONS) and the convergence
    table, which does not depend on the selection. ``sizes`` is empty without a size axis."""

    transfer: dict[str, pd.DataFrame]
    families: dict[str, pd.DataFrame]
    convergence: pd.DataFrame
    sizes: dict[str, pd.DataFrame]


def compute_tables(runs: Sequence[Run], *, families: Mapping[str, str], n_boot: int, seed: int,
                   level: float, arch_order: Sequence[str] = ()) -> Tables:
    """All tables, computed once, so that the claims and figures quote the same numbers."""
    check_families(runs, families)
    boot = {"n_boot": n_boot, "seed": seed, "level": level}
    sized = any(r.size is not None for r in runs)
    return Tables(
        transfer={s: transfer_table(runs, s, arch_order=arch_order, **boot) for s in SELECTIONS},
        families={s: family_table(runs, s, families=families, **boot) for s in SELECTIONS},
        convergence=convergence_table(runs, arch_order=arch_order),
        sizes={s: size_table(runs, s, arch_order=arch_order, **boot) for s in SELECTIONS}
        if sized else {},
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
        f"`Δ` = fine-tuned - scratch; its {level}interval is a paired bootstrap over test "
        "records (both models scored on the same resample; seeds resampled too). `*`: the "
        "interval excludes 0, the difference is more than test-set noise. AUROC is the "
        "unweighted mean over classes (`†`: over fewer classes than the table has, some lacking "
        "positives or negatives in the test set). `constant` is the best F1 of a predictor that "
        "ignores the ECG.\n",
    ]
    note = _lacking_note(runs, selection)
    parts += [n for n in (note, _unpaired_note(runs, sized=False)) if n]
    if table.empty:
        if not note:
            parts.append(f"No downstream set has both a scratch and a fine-tuned job making the "
                         f"{selection} selection, so this table has no rows.\n")
        return "\n".join(parts)
    header = ["downstream", "arch", "upstream", "n train", "scratch F1", "fine-tuned F1", "Δ F1",
              f"{level}interval", "scratch AUROC", "fine-tuned AUROC", "Δ AUROC", "constant"]
    rows = []
    for r in table.itertuples(index=False):
        dagger = "†" if r.auroc_classes < r.n_classes else ""
        rows.append([
            r.downstream, r.arch, r.upstream, str(r.n_train),
            mean_sd(r.scratch_f1, r.scratch_sd), mean_sd(r.finetune_f1, r.finetune_sd),
            num(r.delta, sign=True) + ("*" if r.excludes_zero else ""),
            interval(r.low, r.high), num(r.scratch_auroc) + dagger,
            num(r.finetune_auroc) + dagger, num(r.delta_auroc, sign=True), num(r.baseline_f1),
        ])
    parts.append(markdown_table(header, rows, 3) + "\n")
    return "\n".join(parts)


def size_markdown(table: pd.DataFrame, selection: str, *, runs: Sequence[Run] = ()) -> str:
    """The size table of one selection as Markdown, with each curve's crossover below it."""
    level = level_of(table)
    parts = [
        f"# Δ F1 against the training-set size ({selection} selection)\n",
        _selection_intro(selection) + "\n",
        "Scratch and fine-tuned models trained on subsamples of the downstream training split "
        "(`size` as configured: a record count or a fraction of the split; `full` is the whole "
        "split, the last point); `n train` is the records each trained on. "
        f"`Δ` = fine-tuned - scratch with its {level}paired bootstrap interval; `*`: the "
        "interval excludes 0. The *crossover* of a curve is the smallest training-set size "
        "whose interval includes 0: from there on, this run cannot tell fine-tuning from "
        "scratch.\n",
    ]
    note = _lacking_note(runs, selection)
    parts += [n for n in (note, _unpaired_note(runs, sized=True)) if n]
    if table.empty:
        if not note:
            parts.append(f"No subsampled pairing makes the {selection} selection.\n")
        return "\n".join(parts)
    header = ["downstream", "arch", "upstream", "size", "n train", "scratch F1", "fine-tuned F1",
              "Δ F1", f"{level}interval"]
    rows = [[r.downstream, r.arch, r.upstream, fmt_size(as_size(r.size)), str(r.n_train),
             mean_sd(r.scratch_f1, r.scratch_sd), mean_sd(r.finetune_f1, r.finetune_sd),
             num(r.delta, sign=True) + ("*" if r.excludes_zero else ""), interval(r.low, r.high)]
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
            lines.append(f"{name}: no crossover (every interval excludes 0)")
            continue
        line = f"{name}: crossover at {int(first['crossover'])} training records"
        if not first["crossover_monotone"]:
            again = curve.loc[(curve["n_train"] > first["crossover"]) & curve["excludes_zero"],
                              "n_train"]
            line += (" (not monotone: the interval excludes 0 again at "
                     + ", ".join(str(n) for n in again) + " records)")
        lines.append(line)
    return lines


def family_markdown(table: pd.DataFrame, selection: str) -> str:
    """The family table of one selection as Markdown."""
    level = level_of(table)
    parts = [
        f"# CNN vs RNN: mean Δ F1 per architecture family ({selection} selection)\n",
        _selection_intro(selection) + "\n",
        "Mean of Δ = fine-tuned - scratch over every (architecture, upstream, downstream) "
        "pairing of the family on the full training split, each pairing weighing the same, "
        f"with a {level}bootstrap interval: per replicate one resample of each downstream test "
        f"set, shared by all pairings scored on it. `{DIFFERENCE}` is the difference of the two "
        "means, its interval from the same joint resampling of both families (not from the two "
        "rows above). `*`: the interval excludes 0.\n",
    ]
    if table.empty:
        parts.append(f"No pairing makes the {selection} selection, so this table has no rows.\n")
        return "\n".join(parts)
    header = ["family", "mean Δ F1", f"{level}interval", "pairings", "downstream sets"]
    rows = [[r.family, num(r.delta, sign=True) + ("*" if r.excludes_zero else ""),
             interval(r.low, r.high), str(r.n_pairs), str(r.n_downstream)]
            for r in table.itertuples(index=False)]
    parts.append(markdown_table(header, rows, 1) + "\n")
    missing = [f for f in FAMILIES if f not in set(table["family"])]
    if missing:
        parts.append(f"No {' or '.join(missing)} pairing in this selection, so the difference "
                     f"{DIFFERENCE} cannot be computed.\n")
    return "\n".join(parts)


def convergence_markdown(table: pd.DataFrame) -> str:
    """The convergence table as Markdown; `not reached` where a curve never got there."""
    tolerance = float(table["tolerance"].iloc[0]) if len(table) else CONVERGENCE_TOLERANCE
    parts = [
        "# Epochs to reach the scratch level\n",
        "Per pairing (full training split), the test F1 per epoch averaged over seeds. Target: "
        f"the best scratch F1 minus {tolerance:g}. `scratch` and `fine-tuned` are the first "
        "epochs (from 1) at or above it; `saved` = scratch - fine-tuned, positive where "
        "fine-tuning got there sooner. `not reached`: not within the epochs trained (a job "
        "that stopped earlier might have got there later). Independent of the model "
        "selection: it reads whole curves.\n",
    ]
    if table.empty:
        parts.append("No downstream set has both a scratch and a fine-tuned job.\n")
        return "\n".join(parts)

    def epoch(value: object) -> str:
        return "not reached" if pd.isna(value) else str(int(value))

    header = ["downstream", "arch", "upstream", "epochs trained (scratch / ft)", "target",
              "scratch", "fine-tuned", "saved"]
    rows = [[r.downstream, r.arch, r.upstream, f"{r.epochs_scratch} / {r.epochs_finetune}",
             num(r.target), epoch(r.scratch_epoch), epoch(r.finetune_epoch),
             "—" if pd.isna(r.epochs_saved) else f"{int(r.epochs_saved):+d}"]
            for r in table.itertuples(index=False)]
    parts.append(markdown_table(header, rows, 3) + "\n")
    return "\n".join(parts)


def write_table(table: pd.DataFrame, markdown: str, csv_path: str | os.PathLike,
                md_path: str | os.PathLike) -> None:
    """Write a table as CSV (every column, full precision) and its Markdown, each atomically."""
    _atomic_write_bytes(Path(csv_path), table.to_csv(index=False, float_format="%.6g").encode())
    _atomic_write_bytes(Path(md_path), markdown.encode())
