"""The results of the two studies beyond the paper: MELEP against the realised transfer, and how
fine-tuned and scratch models stand perturbed ECGs.

**MELEP.** evaluate.transferability scores every pretrained model on every downstream set it is
fine-tuned on, before fine-tuning. A score is worth having if it predicts what fine-tuning then
delivers, so each (downstream, architecture, upstream) gets its MELEP (mean over seeds) beside
its realised Δ F1 = fine-tuned - scratch, per model selection; the correlation of the two says
whether MELEP tracks the transfer, and the ranking count says whether, on one downstream set,
the upstream with the lowest MELEP is the one whose fine-tuned model scores best. **Lower MELEP
is better** (it is a negated log-likelihood), so a useful score correlates *negatively* with Δ.

**Robustness.** evaluate.robustness scores every fine-tuned and scratch model of a downstream set
on perturbed copies of its test set. The *degradation* of a model is F1(perturbed) - F1(clean);
for a fine-tuned model and the scratch model of the same architecture, the *difference*
degradation(fine-tuned) - degradation(scratch) is positive where the fine-tuned one loses less.
Its interval is a paired bootstrap over the test records in the manner of stats.py: each
replicate draws one resample of a downstream set's records and scores all four numbers
(clean and perturbed, fine-tuned and scratch) and every other model of that set on it, since a
record that noise makes hard is hard for every model; seeds are resampled per model, the same
seed draw serving clean and perturbed (they are one trained model) and every level.

**Where the realised transfer comes from.** :func:`write_beyond` takes the results stage's job
list (results.load_runs), not its CSV tables: the robustness files can then be checked record by
record against the predictions the Δ came from (same test records, order, labels); the ranking
needs each seed's fine-tuned F1, which the tables average away; and Δ is
results.transfer_table's own number at full precision (seeded, so with the results' n_boot, seed
and level it equals the results' tables exactly) rather than values read back from a CSV printed
to six digits. The price is reading the predictions again and redoing that bootstrap: seconds.
The table functions themselves take the transfer tables, so they work from either source.

No torch and no Snakemake are imported (evaluate.py, which writes the inputs, imports torch, so
its files are read here with numpy and json), and the tests write the inputs by hand.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from scipy.stats import rankdata

from ecg_transfer.aggregate import _arch_order, _atomic_write_bytes, _write_figure
from ecg_transfer.fileio import read_npz
from ecg_transfer.metrics import SELECTIONS, weighted_f1
from ecg_transfer.perturb import LEVELS
from ecg_transfer.results import (
    _MARKERS,
    NOT_SUPPORTED,
    NOT_TESTABLE,
    SUPPORTED,
    Claim,
    Run,
    _check_dpi,
    _empty_figure,
    _f,
    _interval,
    _markdown_table,
    _pct,
    _upstream_colours,
    load_runs,
    transfer_table,
)
from ecg_transfer.stats import (
    MeanDelta,
    _check_bootstrap_args,
    _chunk_rows,
    _counts_of,
    _design,
    _f1_of_counts,
    _percentile_interval,
    _resample_counts,
    macro_auroc,
)

__all__ = [
    "ALL_ARCHS",
    "CLEAN",
    "CORRELATION_COLUMNS",
    "LEAD_KINDS",
    "MELEP_COLUMNS",
    "MELEP_SCORE_COLUMNS",
    "PAIR_COLUMNS",
    "RANKING_COLUMNS",
    "ROBUSTNESS_COLUMNS",
    "SCORES",
    "RobustnessSet",
    "RobustnessTables",
    "claims_section",
    "evaluate_beyond_claims",
    "load_robustness",
    "melep_correlations",
    "melep_markdown",
    "melep_model_id",
    "melep_ranking",
    "melep_table",
    "output_paths",
    "plot_melep_scatter",
    "plot_robustness",
    "read_melep",
    "robustness_markdown",
    "robustness_model_id",
    "robustness_tables",
    "write_beyond",
]

#: The transferability scores of evaluate.transferability, and how tables name them; both are
#: lower-is-better. ``leep_argmax`` is MELEP's simpler reference (melep.leep_argmax).
SCORES = {"melep": "MELEP", "leep_argmax": "argmax reference"}
#: The ``arch`` of a correlation over every architecture.
ALL_ARCHS = "all"
#: The ``kind`` of the unperturbed test set in the robustness tables (level empty).
CLEAN = "clean"
#: Perturbation kinds whose level counts leads zeroed (harsher = more); every other kind's level
#: is an SNR in dB (harsher = lower).
LEAD_KINDS = ("lead_dropout",)
#: Fewer (MELEP, Δ) pairs than this give no correlation (and the MELEP claim is not testable).
MIN_PAIRS = 3

#: Columns of :func:`read_melep`: one row per pretrained model and downstream set.
MELEP_SCORE_COLUMNS = ("upstream", "downstream", "arch", "seed", "melep", "leep_argmax",
                       "records", "path")
_DELTA_FIELDS = ("finetune_f1", "delta", "low", "high")
#: Columns of :func:`melep_table`: scores are means over seeds (sd NaN with one seed);
#: ``<field>_<selection>`` is results.transfer_table's number (NaN: no such pairing there).
MELEP_COLUMNS = ("downstream", "arch", "upstream", "seeds", "records", "melep", "melep_sd",
                 "leep_argmax", "leep_argmax_sd",
                 *[f"{c}_{s}" for s in SELECTIONS for c in _DELTA_FIELDS])
#: Columns of :func:`melep_correlations`; ``n_valid`` counts the bootstrap replicates where the
#: correlation is defined (a resample of identical points has none).
CORRELATION_COLUMNS = ("selection", "score", "arch", "method", "r", "low", "high", "n_pairs",
                       "n_valid", "n_boot", "coverage")
#: Columns of :func:`melep_ranking`: one row per selection and (downstream, arch, seed) case.
RANKING_COLUMNS = ("selection", "downstream", "arch", "seed", "n_upstreams", "upstreams",
                   "best_upstreams", "best_f1", "chance",
                   *[f"{s}_{c}" for s in SCORES for c in ("pick", "pick_f1", "hit")])
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
_THRESHOLD = 0.5


# --------------------------------------------------------------------------------------------
# Small helpers


def _sd(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


def _seed_of(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{where}: seed must be a non-negative integer, got {value!r}")
    return int(value)


def _is_lead_kind(kind: str) -> bool:
    return kind in LEAD_KINDS


def _mild_to_harsh(kind: str, levels: Sequence[float]) -> list[float]:
    """Levels from the mildest to the harshest: SNR descending, leads zeroed ascending."""
    return sorted(levels, reverse=not _is_lead_kind(kind))


def _check_kinds(kinds: Sequence[str], where: str) -> list[str]:
    bad = [k for k in kinds if k not in LEVELS]
    if bad:
        raise ValueError(f"{where}: unknown perturbation kind(s) {bad}; expected some of "
                         f"{list(LEVELS)}")
    return list(dict.fromkeys(kinds))


def _nothing(what: str) -> str:
    return f"Nothing to show: {what}\n"


# --------------------------------------------------------------------------------------------
# MELEP: reading


def _json_field(data: object, path: Path, *keys: str) -> object:
    value = data
    for i, key in enumerate(keys):
        if not isinstance(value, Mapping) or key not in value:
            raise ValueError(f"{path}: missing field {'.'.join(keys[: i + 1])}; expected the "
                             "JSON written by evaluate.transferability")
        value = value[key]
    return value


def _finite(value: object, path: Path, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{path}: field {name} must be a finite number, got {value!r}")
    return float(value)


def _read_melep_models(path: Path) -> Mapping[str, object]:
    """The ``models`` mapping of one downstream set's MELEP JSON (model id -> result)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: MELEP file does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"{path}: not a readable MELEP JSON ({err})") from None
    models = data.get("models") if isinstance(data, Mapping) else None
    if not isinstance(models, Mapping):
        raise ValueError(f"{path}: no mapping 'models' (model id -> result); expected the JSON "
                         "written by evaluate.transferability")
    return models


def melep_model_id(upstream: str, arch: str, seed: int) -> str:
    """A pretrained model's id in its downstream set's MELEP file (the workflow names the
    entries with it, :func:`read_melep` looks them up with it)."""
    return f"{upstream}/{arch}/seed{seed}"


def _read_melep_entry(models: Mapping[str, object], path: Path, job: Mapping[str, object],
                      model_id: str) -> dict[str, object]:
    """One model's entry of a MELEP file, checked to be about the job that names it (an entry
    filed under the wrong id would otherwise pair one model's score with another's Δ)."""
    if model_id not in models:
        raise ValueError(f"{path}: no entry for model {model_id!r} under 'models' (it has "
                         f"{sorted(models)}); rerun the transferability rule")
    data = models[model_id]
    expected = {("target", "dataset"): job["downstream"], ("source", "dataset"): job["upstream"],
                ("source", "arch"): job["arch"]}
    for keys, want in expected.items():
        got = _json_field(data, path, *keys)
        if got is None and keys[0] == "source":
            continue  # a checkpoint that did not record it: nothing to compare
        if str(got) != str(want):
            raise ValueError(f"{path}: field {'.'.join(keys)} is {got!r}, but the job says "
                             f"{want!r}; the entry {model_id!r} belongs to another pairing")
    records = _json_field(data, path, "target", "records")
    if isinstance(records, bool) or not isinstance(records, int) or records < 1:
        raise ValueError(f"{path}: field target.records must be a positive integer, got "
                         f"{records!r} (entry {model_id!r})")
    return {name: _finite(_json_field(data, path, name, "score"), path, f"{name}.score")
            for name in SCORES} | {"records": records}


def read_melep(jobs: Sequence[Mapping[str, object]]) -> pd.DataFrame:
    """Every pretrained model's MELEP as one row (:data:`MELEP_SCORE_COLUMNS`), in the jobs'
    order.

    Each job is ``{upstream, downstream, arch, seed, path}``: ``path`` is the transferability
    rule's file of the downstream set, one for all its models, whose entry
    ``<upstream>/<arch>/seed<seed>`` under ``models`` holds the job's scores; each file is read
    once. A file that does not exist, is not evaluate.transferability's JSON, lacks the job's
    entry, or whose entry names another dataset or architecture than its job raises ValueError
    naming it; so does the same job given twice.
    """
    rows, seen = [], {}
    files: dict[Path, Mapping[str, object]] = {}
    for index, job in enumerate(jobs):
        missing = [k for k in ("upstream", "downstream", "arch", "seed", "path") if k not in job]
        if missing:
            raise ValueError(f"MELEP job {index}: missing key(s) {missing}; expected upstream, "
                             "downstream, arch, seed and path")
        seed = _seed_of(job["seed"], f"MELEP job {index}")
        key = (str(job["upstream"]), str(job["downstream"]), str(job["arch"]), seed)
        if key in seen:
            raise ValueError(f"MELEP jobs {seen[key]} and {index} are the same job {key}")
        seen[key] = index
        path = Path(str(job["path"]))
        if path not in files:
            files[path] = _read_melep_models(path)
        entry = _read_melep_entry(files[path], path, job,
                                  melep_model_id(key[0], key[2], seed))
        rows.append({"upstream": key[0], "downstream": key[1], "arch": key[2], "seed": seed,
                     **entry, "path": str(path)})
    return pd.DataFrame(rows, columns=list(MELEP_SCORE_COLUMNS))


# --------------------------------------------------------------------------------------------
# MELEP: tables


def melep_table(scores: pd.DataFrame, transfer: Mapping[str, pd.DataFrame], *,
                arch_order: Sequence[str] = ()) -> pd.DataFrame:
    """MELEP and the argmax reference per (downstream, arch, upstream) beside the realised Δ.

    ``scores`` is :func:`read_melep`'s result; ``transfer`` maps a selection to
    results.transfer_table's result for it (a missing or empty one leaves its columns NaN).
    Scores are means over the seeds' pretrained models, as Δ is a mean over seeds. Every scored
    pairing has a row, with or without a realised Δ.
    """
    rows = []
    for (down, arch, up), g in scores.groupby(["downstream", "arch", "upstream"], sort=False):
        row: dict[str, object] = {
            "downstream": down, "arch": arch, "upstream": up, "seeds": len(g),
            "records": int(g["records"].iloc[0])}
        for name in SCORES:
            row[name] = float(g[name].mean())
            row[f"{name}_sd"] = _sd(g[name].to_numpy())
        for selection in SELECTIONS:
            t = transfer.get(selection)
            match = (t[(t["downstream"] == down) & (t["arch"] == arch) & (t["upstream"] == up)]
                     if t is not None and len(t) else ())
            for c in _DELTA_FIELDS:
                row[f"{c}_{selection}"] = float(match[c].iloc[0]) if len(match) else math.nan
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(MELEP_COLUMNS))
    order = {a: i for i, a in enumerate(_arch_order(table["arch"].tolist(), arch_order))}
    table = table.assign(_o=table["arch"].map(order)).sort_values(
        ["downstream", "_o", "upstream"], kind="stable").drop(columns="_o")
    return table.reset_index(drop=True)


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each row of ``a`` with the same row of ``b``; NaN where either row is
    constant (a bootstrap resample of one repeated point has no correlation)."""
    constant = (np.ptp(a, axis=1) == 0) | (np.ptp(b, axis=1) == 0)
    ac = a - a.mean(axis=1, keepdims=True)
    bc = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((ac**2).sum(axis=1) * (bc**2).sum(axis=1))
    r = np.divide((ac * bc).sum(axis=1), den, out=np.full(len(a), np.nan),
                  where=~constant & (den > 0))
    return np.clip(r, -1.0, 1.0)


def _correlations(x: np.ndarray, y: np.ndarray, n_boot: int, seed: int, level: float
                  ) -> dict[str, tuple[float, float, float, int]]:
    """Pearson and Spearman r of (x, y) with percentile intervals from resampling the pairs:
    method -> (r, low, high, replicates where r is defined)."""
    n = len(x)
    if n < MIN_PAIRS:
        return {m: (math.nan, math.nan, math.nan, 0) for m in ("pearson", "spearman")}
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    xb, yb = x[idx], y[idx]
    out = {}
    for method, (a, b, ab, bb) in {
        "pearson": (x[None], y[None], xb, yb),
        "spearman": (rankdata(x)[None], rankdata(y)[None], rankdata(xb, axis=1),
                     rankdata(yb, axis=1)),
    }.items():
        r = float(_pearson_rows(a, b)[0])
        reps = _pearson_rows(ab, bb)
        valid = reps[~np.isnan(reps)]
        low, high = _percentile_interval(valid, level) if len(valid) else (math.nan, math.nan)
        out[method] = (r, low, high, len(valid))
    return out


def melep_correlations(table: pd.DataFrame, *, n_boot: int, seed: int, level: float,
                       arch_order: Sequence[str] = ()) -> pd.DataFrame:
    """Pearson and Spearman correlation of each score with Δ F1, per selection, per
    architecture and over all of them (``arch`` = :data:`ALL_ARCHS`).

    A pair is one row of :func:`melep_table` with a Δ in that selection. The interval resamples
    the pairs with replacement (percentile, over the replicates where r is defined). Lower
    MELEP is better, so a useful score gives a **negative** r. Pooled over downstream sets,
    differences *between* sets (in their label entropy, which bounds MELEP, and in how much
    fine-tuning can add) enter r as well; :func:`melep_ranking` compares upstreams within a set.
    """
    _check_bootstrap_args(n_boot, seed, level)
    archs = _arch_order(table["arch"].tolist(), arch_order)
    rows = []
    for selection in SELECTIONS:
        have = table[table[f"delta_{selection}"].notna()]
        for score in SCORES:
            for arch in [*archs, ALL_ARCHS]:
                sub = have if arch == ALL_ARCHS else have[have["arch"] == arch]
                corr = _correlations(sub[score].to_numpy(dtype=float),
                                     sub[f"delta_{selection}"].to_numpy(dtype=float),
                                     n_boot, seed, level)
                for method, (r, low, high, valid) in corr.items():
                    rows.append({"selection": selection, "score": score, "arch": arch,
                                 "method": method, "r": r, "low": low, "high": high,
                                 "n_pairs": len(sub), "n_valid": valid, "n_boot": n_boot,
                                 "coverage": level})
    return pd.DataFrame(rows, columns=list(CORRELATION_COLUMNS))


def _finetune_f1(runs: Sequence[Run]) -> pd.DataFrame:
    """Each full-split fine-tuning job's test F1 under each selection it made."""
    rows = [{"selection": s, "downstream": r.downstream, "arch": r.arch,
             "upstream": str(r.upstream), "seed": r.seed,
             "f1": weighted_f1(r.y_true, r.probs[s], _THRESHOLD)}
            for r in runs if r.regime == "finetune" and r.size is None
            for s in SELECTIONS if s in r.probs]
    return pd.DataFrame(rows, columns=["selection", "downstream", "arch", "upstream", "seed",
                                       "f1"])


def melep_ranking(scores: pd.DataFrame, runs: Sequence[Run], *,
                  arch_order: Sequence[str] = ()) -> pd.DataFrame:
    """Does the lowest score pick the upstream whose fine-tuned model scores best?

    One case per selection and (downstream, arch, seed) with at least 2 upstreams that have
    both a score (the seed's pretrained model) and a fine-tuned test F1 (the model fine-tuned
    from it). Within a case the scratch model is common, so the highest fine-tuned F1 is the
    highest Δ. A pick *hits* when its F1 equals the case's best (``best_upstreams`` lists
    every upstream tied at the best); a tie for the lowest score goes to the upstream first
    in sorted order. ``chance`` is what a random pick hits on average: tied best / upstreams.
    """
    finetuned = _finetune_f1(runs)
    rows = []
    if scores.empty or finetuned.empty:
        return pd.DataFrame(rows, columns=list(RANKING_COLUMNS))
    merged = scores.merge(finetuned, on=["downstream", "arch", "upstream", "seed"])
    for (selection, down, arch, seed), g in merged.groupby(
            ["selection", "downstream", "arch", "seed"], sort=True):
        if len(g) < 2:
            continue
        best_f1 = float(g["f1"].max())
        best = sorted(g.loc[g["f1"] == best_f1, "upstream"])
        row: dict[str, object] = {
            "selection": selection, "downstream": down, "arch": arch, "seed": seed,
            "n_upstreams": len(g), "upstreams": "; ".join(sorted(g["upstream"])),
            "best_upstreams": "; ".join(best), "best_f1": best_f1,
            "chance": len(best) / len(g)}
        for score in SCORES:
            pick = g.sort_values([score, "upstream"], kind="stable").iloc[0]
            row |= {f"{score}_pick": pick["upstream"], f"{score}_pick_f1": float(pick["f1"]),
                    f"{score}_hit": pick["upstream"] in best}
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(RANKING_COLUMNS))
    order = {a: i for i, a in enumerate(_arch_order(table["arch"].tolist(), arch_order))}
    sel = {s: i for i, s in enumerate(SELECTIONS)}
    table = table.assign(_s=table["selection"].map(sel), _o=table["arch"].map(order)).sort_values(
        ["_s", "downstream", "_o", "seed"], kind="stable").drop(columns=["_s", "_o"])
    return table.reset_index(drop=True)


def _p_at_least(k: int, chances: Sequence[float]) -> float:
    """P(at least k hits) when case i is hit with probability chances[i], independently."""
    dist = np.array([1.0])
    for p in chances:
        dist = np.convolve(dist, [1.0 - p, p])
    return float(min(1.0, dist[k:].sum()))


def _ranking_summary(ranking: pd.DataFrame, selection: str, score: str
                     ) -> tuple[int, int, float, float]:
    """(hits, cases, hits expected from random picks, P(>= hits) by chance) of one score."""
    sub = ranking[ranking["selection"] == selection]
    hits = int(sub[f"{score}_hit"].sum())
    chances = sub["chance"].to_numpy(dtype=float)
    return hits, len(sub), float(chances.sum()), _p_at_least(hits, chances)


def _ranking_words(ranking: pd.DataFrame, selection: str, score: str) -> str:
    hits, cases, expected, p = _ranking_summary(ranking, selection, score)
    if not cases:
        return (f"no (downstream, architecture, seed) with at least 2 upstreams scored and "
                f"fine-tuned in the {selection} selection")
    mean_ups = ranking.loc[ranking["selection"] == selection, "n_upstreams"].mean()
    return (f"{hits} of {cases} (downstream, architecture, seed) case(s); a random pick among "
            f"the upstreams (on average {mean_ups:.3g} per case) would hit {expected:.2f} on "
            f"average, and {hits} or more with probability {p:.3f}")


# --------------------------------------------------------------------------------------------
# MELEP: Markdown


def melep_markdown(table: pd.DataFrame, correlations: pd.DataFrame, ranking: pd.DataFrame,
                   *, level: float) -> str:
    """The MELEP table, the correlations and the ranking count as one Markdown page."""
    pct = _pct(level)
    parts = [
        "# MELEP against the realised transfer (beyond the paper)\n",
        "MELEP (melep.melep) scores a pretrained model for a downstream set before any "
        "fine-tuning, from one forward pass of the set's training records through the source "
        "model's own head; the argmax reference (melep.leep_argmax) reads that head as one hard "
        "label. Both are in nats and **lower is better**: a score that predicts transfer "
        "correlates **negatively** with the realised Δ F1 = fine-tuned - scratch. Scores are "
        "means over seeds (`± sd` with several); Δ and its paired bootstrap interval are the "
        f"results' transfer table's ({pct}), per model selection; `—`: no such pairing "
        "there.\n",
    ]
    if table.empty:
        parts.append(_nothing("no MELEP result in this run (config key melep.enabled, or no "
                              "upstream/downstream pairing to score)."))
        return "\n".join(parts)
    header = ["downstream", "arch", "upstream", "MELEP", "argmax ref."]
    for s in SELECTIONS:
        header += [f"Δ F1 ({s})", f"{pct} interval ({s})"]
    rows = []
    for r in table.to_dict("records"):
        row = [r["downstream"], r["arch"], r["upstream"], _score_cell(r, "melep"),
               _score_cell(r, "leep_argmax")]
        for s in SELECTIONS:
            d = r[f"delta_{s}"]
            row += [_f(d, sign=True),
                    "—" if pd.isna(d) else _interval(r[f"low_{s}"], r[f"high_{s}"])]
        rows.append(row)
    parts.append(_markdown_table(header, rows, 3) + "\n")
    parts += [
        "## Correlation with Δ F1\n",
        f"Over the (downstream, arch, upstream) rows above with a Δ; {pct} percentile interval "
        "from resampling those pairs. Negative r: lower score, larger gain (what a useful score "
        f"does). Fewer than {MIN_PAIRS} pairs: no correlation (`—`). `all` pools the "
        "architectures and the downstream sets, so differences between sets enter it too; the "
        "ranking count below compares upstreams within one set.\n",
    ]
    header = ["selection", "score", "arch", "Pearson r", f"{pct} interval", "Spearman r",
              f"{pct} interval", "pairs"]
    rows = []
    for (s, score, arch), g in correlations.groupby(["selection", "score", "arch"], sort=False):
        by = {m: r for m, r in zip(g["method"], g.to_dict("records"), strict=True)}
        row = [s, SCORES[score], arch]
        for m in ("pearson", "spearman"):
            row += [_f(by[m]["r"], sign=True), _maybe_interval(by[m]["low"], by[m]["high"])]
        rows.append([*row, str(by["pearson"]["n_pairs"])])
    parts.append(_markdown_table(header, rows, 3) + "\n")
    parts += [
        "## Does the lowest score pick the best upstream?\n",
        "For each (downstream, arch, seed) with at least 2 upstreams scored and fine-tuned: "
        "does the upstream with the lowest score give the highest fine-tuned test F1 (the "
        "scratch model is common, so the highest Δ)? A random pick hits 1 / upstreams of the "
        "time (more where upstreams tie at the best F1).\n",
    ]
    for s in SELECTIONS:
        for score, name in SCORES.items():
            parts.append(f"* {s} selection, lowest {name}: {_ranking_words(ranking, s, score)}.")
    parts.append("")
    if len(ranking):
        header = ["selection", "downstream", "arch", "seed", "upstreams", "best fine-tuned F1",
                  *[f"lowest {n}" for n in SCORES.values()]]
        rows = [[r["selection"], r["downstream"], r["arch"], str(r["seed"]),
                 str(r["n_upstreams"]), f"{r['best_upstreams']} ({r['best_f1']:.3f})",
                 *[r[f"{s}_pick"] + (" ✓" if r[f"{s}_hit"] else "") for s in SCORES]]
                for r in ranking.to_dict("records")]
        parts.append(_markdown_table(header, rows, 3) + "\n")
        parts.append("✓: the pick is (one of) the best.\n")
    return "\n".join(parts)


def _score_cell(row: Mapping[str, object], name: str) -> str:
    sd = row[f"{name}_sd"]
    return _f(row[name]) if pd.isna(sd) else f"{row[name]:.3f} ± {sd:.3f}"


def _maybe_interval(low: float, high: float) -> str:
    return "—" if pd.isna(low) or pd.isna(high) else _interval(low, high)


# --------------------------------------------------------------------------------------------
# Robustness: reading

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
        for lv in _mild_to_harsh(k, [lv for kk, lv in reference[1] if kk == k])]
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
    probabilities of the wrong shape or outside [0, 1], and, given ``runs`` (results.load_runs),
    a test set other than the one that downstream set's jobs were scored on.
    """
    sets = [_read_robustness_file(Path(str(files[d])), str(d)) for d in sorted(files)]
    for rs in sets:
        _check_against_runs(rs, runs)
    return sets


# --------------------------------------------------------------------------------------------
# Robustness: tables


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
            design = _design(y, list(rs.probs[k]), _THRESHOLD)
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


# --------------------------------------------------------------------------------------------
# Robustness: Markdown


def _level_label(kind: str, level: float) -> str:
    if kind == CLEAN:
        return "clean"
    return f"{level:g} lead(s)" if _is_lead_kind(kind) else f"{level:g} dB"


def _model_name(regime: str, upstream: str) -> str:
    return "scratch" if regime == "scratch" else f"ft:{upstream}"


def robustness_markdown(tables: RobustnessTables, *, level: float) -> str:
    """Per perturbation kind: every model's F1 and AUROC per level, then every pair's
    difference of degradations with its interval."""
    pct = _pct(level)
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
        parts.append(_nothing("no robustness result in this run (config key "
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
        levels = _mild_to_harsh(kind, sorted(set(sub.loc[sub["kind"] == kind, "level"])))
        header = ["downstream", "arch", "model", "clean",
                  *[_level_label(kind, lv) for lv in levels]]
        rows = []
        for (down, arch, regime, up), g in sub.groupby(
                ["downstream", "arch", "regime", "upstream"], sort=False):
            cells = {(r["kind"], r["level"]): f"{r['f1']:.3f} / {_f(r['auroc'])}"
                     for r in g.to_dict("records")}
            clean = next(v for (k, _), v in cells.items() if k == CLEAN)
            rows.append([down, arch, _model_name(regime, up), clean,
                         *[cells.get((kind, lv), "—") for lv in levels]])
        parts += [f"## {kind}\n", "### F1 / AUROC\n", _markdown_table(header, rows, 3) + "\n"]
        pk = pairs[pairs["kind"] == kind]
        parts.append("### Difference of degradations (fine-tuned - scratch)\n")
        if pk.empty:
            parts.append(_nothing("no fine-tuned model has a scratch counterpart here."))
            continue
        header = ["downstream", "arch", "upstream", *[_level_label(kind, lv) for lv in levels]]
        rows = []
        for (down, arch, up), g in pk.groupby(["downstream", "arch", "upstream"], sort=False):
            cells = {r["level"]: f"{r['difference']:+.3f}{'*' if r['excludes_zero'] else ''} "
                                 f"{_interval(r['low'], r['high'])}"
                     for r in g.to_dict("records")}
            rows.append([down, arch, up, *[cells.get(lv, "—") for lv in levels]])
        parts.append(_markdown_table(header, rows, 3) + "\n")
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# Figures


def plot_melep_scatter(table: pd.DataFrame, path: str | os.PathLike, *, dpi: int,
                       correlations: pd.DataFrame | None = None,
                       arch_order: Sequence[str] = (), upstreams: Sequence[str] = ()) -> Path:
    """MELEP (x) against Δ F1 (y) with Δ's interval, one panel per selection.

    A marker per architecture and a colour per upstream (the results' figures' colours, given
    the same ``upstreams``); the dashed line is Δ = 0. With ``correlations`` each panel's title
    gives the overall Spearman r. Lower MELEP is better, so a useful score makes the points
    fall from left to right.
    """
    _check_dpi(dpi)
    path = Path(path)
    if table.empty:
        return _empty_figure(path, dpi, "Nothing to show: no MELEP result in this run.")
    colours = _upstream_colours(list(upstreams) or table["upstream"].unique().tolist())
    archs = _arch_order(table["arch"].tolist(), arch_order)
    markers = {a: _MARKERS[i % len(_MARKERS)] for i, a in enumerate(archs)}
    fig = Figure(figsize=(4.8 * len(SELECTIONS) + 2.4, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(SELECTIONS), squeeze=False, sharex=True).ravel()
    for ax, selection in zip(axes, SELECTIONS, strict=True):
        sub = table[table[f"delta_{selection}"].notna()]
        ax.set_title(f"{selection} selection" + _rho_words(correlations, selection),
                     fontsize="medium")
        ax.set_xlabel("MELEP (nats; lower = better predicted transfer)")
        ax.set_ylabel("Δ F1 (fine-tuned - scratch)")
        if sub.empty:
            ax.text(0.5, 0.5, f"nothing to show: no pairing makes\nthe {selection} selection",
                    transform=ax.transAxes, ha="center", va="center")
            continue
        for r in sub.to_dict("records"):
            d = r[f"delta_{selection}"]
            ax.errorbar([r["melep"]], [d], yerr=[[d - r[f"low_{selection}"]],
                                                 [r[f"high_{selection}"] - d]],
                        color=colours.get(r["upstream"], "black"), marker=markers[r["arch"]],
                        markersize=6, capsize=2, linestyle="none", linewidth=1)
        ax.axhline(0.0, color="grey", linestyle="--", linewidth=1)
    ups = sorted(table["upstream"].unique())
    fig.legend([Line2D([], [], color=colours.get(u, "black"), marker="o", linestyle="none")
                for u in ups], ups, title="upstream", loc="outside right upper",
               fontsize="small")
    fig.legend([Line2D([], [], color="grey", marker=markers[a], linestyle="none")
                for a in archs], archs, title="architecture", loc="outside right lower",
               fontsize="small")
    fig.suptitle("MELEP before fine-tuning against the realised Δ F1 (error bars: Δ's interval)")
    _write_figure(fig, path, dpi)
    return path


def _rho_words(correlations: pd.DataFrame | None, selection: str) -> str:
    if correlations is None or correlations.empty:
        return ""
    row = correlations[(correlations["selection"] == selection)
                       & (correlations["score"] == "melep") & (correlations["arch"] == ALL_ARCHS)
                       & (correlations["method"] == "spearman")]
    if row.empty or pd.isna(row["r"].iloc[0]):
        return ""
    r = row.iloc[0]
    return (f"\nSpearman r = {r['r']:+.2f} {_maybe_interval(r['low'], r['high'])}, "
            f"{r['n_pairs']} pairs")


def plot_robustness(curves: pd.DataFrame, kind: str, path: str | os.PathLike, *, dpi: int,
                    level: float, upstreams: Sequence[str] = ()) -> Path:
    """F1 against the level of one perturbation kind, one panel per downstream set.

    Each line is the F1 averaged over architectures (and seeds) of the models fine-tuned from
    one upstream (its colour) or trained from scratch (black, dashed), with its interval; the
    clean test set is the first point. SNR falls from left to right (harsher to the right),
    leads zeroed rise. ``curves`` is :attr:`RobustnessTables.curves`.
    """
    _check_dpi(dpi)
    path = Path(path)
    downs = sorted(set(curves.loc[curves["kind"] == kind, "downstream"])) if len(curves) else []
    if not downs:
        return _empty_figure(path, dpi, f"Nothing to show: no robustness result for {kind} in "
                                        "this run.")
    colours = _upstream_colours(list(upstreams) or sorted(
        set(curves.loc[curves["regime"] == "finetune", "upstream"])))
    ncols = min(2, len(downs))
    nrows = math.ceil(len(downs) / ncols)
    fig = Figure(figsize=(5.5 * ncols, 3.8 * nrows + 1.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    legend: dict[str, object] = {}
    for ax, down in zip(axes, downs, strict=False):
        d = curves[curves["downstream"] == down]
        levels = _mild_to_harsh(kind, sorted(set(d.loc[d["kind"] == kind, "level"])))
        if _is_lead_kind(kind):
            x = np.array([0.0, *levels])
            labels = ["0\n(clean)", *[f"{lv:g}" for lv in levels]]
            ax.set_xlabel("leads zeroed (harsher to the right)")
        else:
            x = np.arange(len(levels) + 1, dtype=float)
            labels = ["clean", *[f"{lv:g}" for lv in levels]]
            ax.set_xlabel("SNR (dB; harsher to the right)")
        models = sorted({(r, u) for r, u in zip(d["regime"], d["upstream"], strict=True)},
                        key=lambda m: (m[0] == "scratch", m[1]))
        width = (x.max() - x.min()) or 1.0
        for k, (regime, up) in enumerate(models):
            m = d[(d["regime"] == regime) & (d["upstream"] == up)]
            clean = m[m["kind"] == CLEAN].iloc[0]
            at = m[m["kind"] == kind].set_index("level")
            pts = [clean] + [at.loc[lv] for lv in levels]
            y = np.array([p["f1"] for p in pts])
            err = np.array([[p["f1"] - p["low"] for p in pts], [p["high"] - p["f1"] for p in pts]])
            shift = (k - (len(models) - 1) / 2) * 0.015 * width
            scratch = regime == "scratch"
            name = "scratch" if scratch else f"fine-tuned from {up}"
            legend[name] = ax.errorbar(x + shift, y, yerr=err, capsize=3, linewidth=1.3,
                                       color="black" if scratch else colours.get(up, "black"),
                                       linestyle="--" if scratch else "-",
                                       marker="s" if scratch else "o", markersize=4)
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_ylabel("weighted F1 (mean over architectures)")
        ax.set_title(down)
    for ax in axes[len(downs):]:
        ax.set_visible(False)
    fig.legend(list(legend.values()), list(legend), loc="outside lower center",
               ncols=min(len(legend), 4), fontsize="small")
    fig.suptitle(f"Weighted F1 under {kind}: fine-tuned vs scratch ({_pct(level)} intervals)")
    _write_figure(fig, path, dpi)
    return path


# --------------------------------------------------------------------------------------------
# Claims

_TITLES = {
    "melep": "MELEP ranks upstream datasets (beyond the paper)",
    "robustness": "Fine-tuned models degrade less under perturbation (beyond the paper)",
}
_RULES = {
    "melep": "supported if the interval of the overall Spearman r of MELEP with Δ F1 lies "
             "below 0 (lower MELEP, larger gain), else not supported; not testable with fewer "
             f"than {MIN_PAIRS} (MELEP, Δ) pairs or where r is undefined (constant values).",
    "robustness": "supported if the interval's low end > 0 (fine-tuned models lose less F1 at "
                  "the harshest level of each perturbation), else not supported; not testable "
                  "without a fine-tuned/scratch pair in the robustness results.",
}


def _claim(key: str, selection: str | None, verdict: str, evidence: str,
           estimate: float | None = None, low: float | None = None,
           high: float | None = None) -> Claim:
    return Claim(key, _TITLES[key], selection, verdict, evidence, _RULES[key], estimate, low,
                 high)


def _melep_claim(correlations: pd.DataFrame | None, ranking: pd.DataFrame | None,
                 selection: str) -> Claim:
    if correlations is None:
        return _claim("melep", selection, NOT_TESTABLE,
                      "MELEP is not part of this run (config key melep.enabled).")

    def pick(score: str, method: str) -> dict[str, object] | None:
        row = correlations[(correlations["selection"] == selection)
                           & (correlations["score"] == score)
                           & (correlations["arch"] == ALL_ARCHS)
                           & (correlations["method"] == method)]
        return row.iloc[0].to_dict() if len(row) else None

    rho = pick("melep", "spearman")
    n = int(rho["n_pairs"]) if rho else 0
    if n < MIN_PAIRS:
        return _claim("melep", selection, NOT_TESTABLE,
                      f"{n} (downstream, architecture, upstream) pair(s) with both a MELEP score "
                      f"and a Δ in the {selection} selection; a correlation needs at least "
                      f"{MIN_PAIRS}.")
    if pd.isna(rho["r"]) or pd.isna(rho["low"]):
        return _claim("melep", selection, NOT_TESTABLE,
                      f"Over {n} pairs the Spearman r is undefined: MELEP or Δ takes one value.")
    pct = _pct(float(rho["coverage"]))
    pearson, ref = pick("melep", "pearson"), pick("leep_argmax", "spearman")
    evidence = (
        f"Over {n} (downstream, architecture, upstream) pairs, Spearman r of MELEP with Δ F1: "
        f"**{rho['r']:+.3f}**, {pct} interval {_interval(rho['low'], rho['high'])} "
        "(bootstrap over pairs); Pearson r "
        f"{_f(pearson['r'], sign=True)} {_maybe_interval(pearson['low'], pearson['high'])}. "
        "Lower MELEP means better predicted transfer, so a useful score correlates "
        "negatively. The argmax reference: Spearman r "
        f"{_f(ref['r'], sign=True)} {_maybe_interval(ref['low'], ref['high'])}. Pooled over "
        "downstream sets, so differences between sets enter r too.")
    if ranking is not None:
        evidence += (" Within one downstream set, the lowest MELEP picked the upstream with the "
                     f"highest fine-tuned F1 in {_ranking_words(ranking, selection, 'melep')} "
                     "(reported, not used for the verdict).")
    verdict = SUPPORTED if rho["high"] < 0 else NOT_SUPPORTED
    return _claim("melep", selection, verdict, evidence, float(rho["r"]), float(rho["low"]),
                  float(rho["high"]))


def _robustness_claim(tables: RobustnessTables | None) -> Claim:
    if tables is None:
        return _claim("robustness", None, NOT_TESTABLE,
                      "Robustness is not part of this run (config key robustness.enabled).")
    md = tables.harshest
    if md is None:
        return _claim("robustness", None, NOT_TESTABLE,
                      "No fine-tuned model has a scratch model of its architecture in the "
                      "robustness results." if len(tables.models) else
                      "No robustness result in this run.")
    h = tables.pairs[tables.pairs["harshest"]]
    per_kind = "; ".join(
        f"{k} at {_level_label(k, float(h.loc[h['kind'] == k, 'level'].iloc[0]))}: "
        f"{m.delta:+.3f} {_interval(m.low, m.high)} over {m.n_pairs} pair(s)"
        for k, m in tables.by_kind.items())
    n_pairs = len(h.drop_duplicates(["downstream", "arch", "upstream"]))
    evidence = (
        "Difference of degradations (fine-tuned - scratch; degradation = F1 at the level - "
        "clean F1) at the harshest level of each kind, averaged over "
        f"{md.n_pairs} (pair, kind) value(s) from {n_pairs} fine-tuned/scratch pair(s) on "
        f"{md.n_groups} downstream set(s), each weighing the same: **{md.delta:+.3f}**, "
        f"{_pct(md.level)} interval {_interval(md.low, md.high)} (paired bootstrap over test "
        "records, one resample per set shared by all its models). Positive: fine-tuned "
        f"models lose less. Per kind: {per_kind}.")
    verdict = SUPPORTED if md.low > 0 else NOT_SUPPORTED
    return _claim("robustness", None, verdict, evidence, md.delta, md.low, md.high)


def evaluate_beyond_claims(*, correlations: pd.DataFrame | None = None,
                           ranking: pd.DataFrame | None = None,
                           robustness: RobustnessTables | None = None) -> list[Claim]:
    """The MELEP claim per selection and the robustness claim (independent of the selection:
    the robustness models are the saved epochs). None: that study is not part of the run."""
    claims = [_melep_claim(correlations, ranking, s) for s in SELECTIONS]
    return [*claims, _robustness_claim(robustness)]


def claims_section(claims: Sequence[Claim]) -> str:
    """The claims beyond the paper as a Markdown section (level-2 heading) in the format of
    results.claims_markdown, to append to ``claims.md``: an overview, then each claim."""
    lines = ["## Beyond the paper\n",
             "Two questions the paper does not ask: does MELEP, computed before fine-tuning, "
             "predict which upstream set transfers best, and do fine-tuned models stand "
             "perturbed ECGs better than models trained from scratch? Verdicts follow the rule "
             "printed under each claim.\n"]
    header = ["claim", *[f"{s} selection" for s in SELECTIONS]]
    overview = []
    for key, title in _TITLES.items():
        per = {c.selection: c.verdict for c in claims if c.key == key}
        if not per:
            continue
        overview.append([title, *([per[None]] * len(SELECTIONS) if None in per
                                  else [per.get(s, "—") for s in SELECTIONS])])
    lines.append(_markdown_table(header, overview, len(header)) + "\n")
    for c in claims:
        where = "" if c.selection is None else f" — {c.selection} selection"
        lines.append(f"### {c.title}{where}\n\n**Verdict: {c.verdict}.**\n\n{c.evidence}\n\n"
                     f"*Rule:* {c.rule}\n")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Everything


def output_paths(out_dir: str | os.PathLike, *, melep: bool, robustness: bool,
                 kinds: Sequence[str] = ()) -> dict[str, Path]:
    """Every file :func:`write_beyond` writes under ``out_dir``, keyed by a name a rule can use
    as a named output: the MELEP files with ``melep``, the robustness files (one figure per
    perturbation kind of ``kinds``) with ``robustness``, and ``claims_beyond`` always."""
    out = Path(out_dir)
    tables, figures = out / "tables", out / "figures"
    paths: dict[str, Path] = {}
    if melep:
        paths |= {"melep_csv": tables / "melep.csv", "melep_md": tables / "melep.md",
                  "melep_correlations_csv": tables / "melep_correlations.csv",
                  "melep_ranking_csv": tables / "melep_ranking.csv",
                  "melep_scatter": figures / "melep_scatter.png"}
    if robustness:
        paths |= {"robustness_csv": tables / "robustness.csv",
                  "robustness_pairs_csv": tables / "robustness_pairs.csv",
                  "robustness_md": tables / "robustness.md"}
        for kind in _check_kinds(kinds, "kinds"):
            paths[f"robustness_{kind}"] = figures / f"robustness_{kind}.png"
    paths["claims_beyond"] = out / "claims_beyond.md"
    return paths


def _csv(table: pd.DataFrame) -> bytes:
    return table.to_csv(index=False, float_format="%.6g").encode()


def write_beyond(melep_jobs: Sequence[Mapping[str, object]],
                 robustness_files: Mapping[str, str | os.PathLike],
                 transfer_jobs: Sequence[Mapping[str, object]], out_dir: str | os.PathLike, *,
                 n_boot: int, seed: int, level: float, dpi: int,
                 arch_order: Sequence[str] = (), melep: bool | None = None,
                 robustness: bool | None = None, kinds: Sequence[str] | None = None
                 ) -> dict[str, Path]:
    """Read the MELEP and robustness results, compute every table once, write them all.

    ``melep_jobs``: see :func:`read_melep`. ``robustness_files``: downstream set -> .npz (see
    :func:`load_robustness`). ``transfer_jobs``: the results stage's jobs (results.load_runs),
    for Δ, the per-seed fine-tuned F1 and the test-set check. ``n_boot``, ``seed``, ``level``:
    the results' (then Δ equals its tables'). ``melep``/``robustness`` (default: whether any
    job/file is given) and ``kinds`` (default: the kinds in the files) choose the files, as in
    :func:`output_paths`; a kind in a file but not in ``kinds`` raises ValueError naming the
    file. Every listed file is written, atomically, even with nothing in it to show (it says
    so). Returns :func:`output_paths`.
    """
    _check_dpi(dpi)
    _check_bootstrap_args(n_boot, seed, level)
    melep = bool(melep_jobs) if melep is None else melep
    robustness = bool(robustness_files) if robustness is None else robustness
    if melep_jobs and not melep:
        raise ValueError("melep is False but MELEP jobs were given")
    if robustness_files and not robustness:
        raise ValueError("robustness is False but robustness files were given")
    boot = {"n_boot": n_boot, "seed": seed, "level": level}
    runs = load_runs(transfer_jobs)
    sets = load_robustness(robustness_files, runs) if robustness else []
    found = [k for k in LEVELS if any(k in rs.kinds for rs in sets)]
    kinds = found if kinds is None else _check_kinds(kinds, "kinds")
    for rs in sets:
        extra = [k for k in rs.kinds if k not in kinds]
        if extra:
            raise ValueError(f"{rs.path}: perturbation kind(s) {extra} are not among the kinds "
                             f"declared ({list(kinds)}); the file is from another "
                             "configuration (robustness.levels): rerun the robustness rule")
    paths = output_paths(out_dir, melep=melep, robustness=robustness, kinds=kinds)
    upstreams = sorted({str(r.upstream) for r in runs if r.upstream is not None}
                       | {str(j["upstream"]) for j in melep_jobs}
                       | {k[1] for rs in sets for k in rs.probs if k[0] == "finetune"})
    correlations = ranking = rob = None
    if melep:
        scores = read_melep(melep_jobs)
        transfer = ({s: transfer_table(runs, s, arch_order=arch_order, **boot)
                     for s in SELECTIONS} if len(scores) else {})
        table = melep_table(scores, transfer, arch_order=arch_order)
        correlations = melep_correlations(table, arch_order=arch_order, **boot)
        ranking = melep_ranking(scores, runs, arch_order=arch_order)
        _atomic_write_bytes(paths["melep_csv"], _csv(table))
        _atomic_write_bytes(paths["melep_correlations_csv"], _csv(correlations))
        _atomic_write_bytes(paths["melep_ranking_csv"], _csv(ranking))
        _atomic_write_bytes(paths["melep_md"], melep_markdown(table, correlations, ranking,
                                                              level=level).encode())
        plot_melep_scatter(table, paths["melep_scatter"], dpi=dpi, correlations=correlations,
                           arch_order=arch_order, upstreams=upstreams)
    if robustness:
        rob = robustness_tables(sets, arch_order=arch_order, **boot)
        _atomic_write_bytes(paths["robustness_csv"], _csv(rob.models))
        _atomic_write_bytes(paths["robustness_pairs_csv"], _csv(rob.pairs))
        _atomic_write_bytes(paths["robustness_md"],
                            robustness_markdown(rob, level=level).encode())
        for kind in kinds:
            plot_robustness(rob.curves, kind, paths[f"robustness_{kind}"], dpi=dpi, level=level,
                            upstreams=upstreams)
    claims = evaluate_beyond_claims(correlations=correlations, ranking=ranking, robustness=rob)
    _atomic_write_bytes(paths["claims_beyond"], claims_section(claims).encode())
    return paths
