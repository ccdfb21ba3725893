"""MELEP against the realised transfer (beyond the paper): does a transferability score,
computed before fine-tuning, predict what fine-tuning then delivers?

MELEP (melep.py) scores a pretrained model for the downstream set it would be fine-tuned on,
before fine-tuning. Each (downstream, architecture, upstream) gets its MELEP (mean over seeds)
beside its realised Δ F1 = fine-tuned - scratch, per model selection; the correlation of the
two says whether MELEP tracks the transfer, and the ranking count says whether, on one
downstream set, the upstream with the lowest MELEP is the one whose fine-tuned model scores
best. **Lower MELEP is better** (it is a negated log-likelihood), so a useful score correlates
*negatively* with Δ.

Δ is tables.transfer_table's own number at full precision (seeded, so with the results'
n_boot, seed and level it equals the results' tables exactly), computed from the runs
(runs.load_runs) rather than read back from a CSV printed to six digits; the ranking needs each
seed's fine-tuned F1, which the tables average away. The table functions themselves take the
transfer tables, so they work from either source. evaluate.py, which writes the MELEP files,
imports torch, so they are read here with json.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from ecg_transfer.aggregate import _arch_order
from ecg_transfer.answer.formatting import (
    interval,
    markdown_table,
    maybe_interval,
    nothing,
    num,
    percent,
)
from ecg_transfer.answer.runs import THRESHOLD, Run
from ecg_transfer.answer.stats import _check_bootstrap_args, _percentile_interval, _sd
from ecg_transfer.metrics import SELECTIONS, weighted_f1

__all__ = [
    "ALL_ARCHS",
    "CORRELATION_COLUMNS",
    "MELEP_COLUMNS",
    "MELEP_SCORE_COLUMNS",
    "MIN_PAIRS",
    "RANKING_COLUMNS",
    "SCORES",
    "melep_correlations",
    "melep_markdown",
    "melep_model_id",
    "melep_ranking",
    "melep_table",
    "ranking_words",
    "read_melep",
]


#: The transferability scores of evaluate.transferability, and how tables name them; both are
#: lower-is-better. ``leep_argmax`` is MELEP's simpler reference (melep.leep_argmax).
SCORES = {"melep": "MELEP", "leep_argmax": "argmax reference"}
#: The ``arch`` of a correlation over every architecture.
ALL_ARCHS = "all"
#: Fewer (MELEP, Δ) pairs than this give no correlation (and the MELEP claim is not testable).
MIN_PAIRS = 3
#: Columns of :func:`read_melep`: one row per pretrained model and downstream set.
MELEP_SCORE_COLUMNS = ("upstream", "downstream", "arch", "seed", "melep", "leep_argmax",
                       "records", "path")
_DELTA_FIELDS = ("finetune_f1", "delta", "low", "high")
#: Columns of :func:`melep_table`: scores are means over seeds (sd NaN with one seed);
#: ``<field>_<selection>`` is tables.transfer_table's number (NaN: no such pairing there).
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


def _seed_of(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{where}: seed must be a non-negative integer, got {value!r}")
    return int(value)


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


def melep_table(scores: pd.DataFrame, transfer: Mapping[str, pd.DataFrame], *,
                arch_order: Sequence[str] = ()) -> pd.DataFrame:
    """MELEP and the argmax reference per (downstream, arch, upstream) beside the realised Δ.

    ``scores`` is :func:`read_melep`'s result; ``transfer`` maps a selection to
    tables.transfer_table's result for it (a missing or empty one leaves its columns NaN).
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
             "f1": weighted_f1(r.y_true, r.probs[s], THRESHOLD)}
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


def ranking_words(ranking: pd.DataFrame, selection: str, score: str) -> str:
    hits, cases, expected, p = _ranking_summary(ranking, selection, score)
    if not cases:
        return (f"no (downstream, architecture, seed) with at least 2 upstreams scored and "
                f"fine-tuned in the {selection} selection")
    mean_ups = ranking.loc[ranking["selection"] == selection, "n_upstreams"].mean()
    return (f"{hits} of {cases} (downstream, architecture, seed) case(s); a random pick among "
            f"the upstreams (on average {mean_ups:.3g} per case) would hit {expected:.2f} on "
            f"average, and {hits} or more with probability {p:.3f}")


def melep_markdown(table: pd.DataFrame, correlations: pd.DataFrame, ranking: pd.DataFrame,
                   *, level: float) -> str:
    """The MELEP table, the correlations and the ranking count as one Markdown page."""
    pct = percent(level)
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
        parts.append(nothing("no MELEP result in this run (config key melep.enabled, or no "
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
            row += [num(d, sign=True),
                    "—" if pd.isna(d) else interval(r[f"low_{s}"], r[f"high_{s}"])]
        rows.append(row)
    parts.append(markdown_table(header, rows, 3) + "\n")
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
            row += [num(by[m]["r"], sign=True), maybe_interval(by[m]["low"], by[m]["high"])]
        rows.append([*row, str(by["pearson"]["n_pairs"])])
    parts.append(markdown_table(header, rows, 3) + "\n")
    parts += [
        "## Does the lowest score pick the best upstream?\n",
        "For each (downstream, arch, seed) with at least 2 upstreams scored and fine-tuned: "
        "does the upstream with the lowest score give the highest fine-tuned test F1 (the "
        "scratch model is common, so the highest Δ)? A random pick hits 1 / upstreams of the "
        "time (more where upstreams tie at the best F1).\n",
    ]
    for s in SELECTIONS:
        for score, name in SCORES.items():
            parts.append(f"* {s} selection, lowest {name}: {ranking_words(ranking, s, score)}.")
    parts.append("")
    if len(ranking):
        header = ["selection", "downstream", "arch", "seed", "upstreams", "best fine-tuned F1",
                  *[f"lowest {n}" for n in SCORES.values()]]
        rows = [[r["selection"], r["downstream"], r["arch"], str(r["seed"]),
                 str(r["n_upstreams"]), f"{r['best_upstreams']} ({r['best_f1']:.3f})",
                 *[r[f"{s}_pick"] + (" ✓" if r[f"{s}_hit"] else "") for s in SCORES]]
                for r in ranking.to_dict("records")]
        parts.append(markdown_table(header, rows, 3) + "\n")
        parts.append("✓: the pick is (one of) the best.\n")
    return "\n".join(parts)


def _score_cell(row: Mapping[str, object], name: str) -> str:
    sd = row[f"{name}_sd"]
    return num(row[name]) if pd.isna(sd) else f"{row[name]:.3f} ± {sd:.3f}"
