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

The MELEP claim (:func:`melep_claims`) is judged **within** downstream sets: pooled over sets,
the sets' own differences (label entropy bounds MELEP; some sets gain more from any
fine-tuning) give a strongly negative r when MELEP says nothing about which upstream to pick
within any set. So the claim reads the mean over sets of each set's Spearman r and the
permutation test of answer.permutation (MELEP relabelled among a set's upstreams, one
relabelling shared by its architectures), decided by rules.melep_ranks; the pooled r, the
argmax reference and the ranking count are reported beside it, never decide it.
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
from ecg_transfer.answer import rules
from ecg_transfer.answer.formatting import (
    interval,
    markdown_table,
    maybe_interval,
    nothing,
    num,
    percent,
)
from ecg_transfer.answer.paths import melep_model_id
from ecg_transfer.answer.permutation import (
    RankingHits,
    WithinSetCorrelation,
    ranking_hits,
    within_set_correlation,
)
from ecg_transfer.answer.rules import NOT_TESTABLE, Plan
from ecg_transfer.answer.runs import THRESHOLD, Run
from ecg_transfer.answer.stats import _check_bootstrap_args, _percentile_interval, _sd
from ecg_transfer.answer.verdicts import Claim
from ecg_transfer.metrics import SELECTIONS, weighted_f1

__all__ = [
    "ALL_ARCHS",
    "CORRELATION_COLUMNS",
    "MELEP_COLUMNS",
    "MELEP_SCORE_COLUMNS",
    "MIN_PAIRS",
    "RANKING_COLUMNS",
    "SCORES",
    "melep_claims",
    "melep_correlations",
    "melep_markdown",
    "melep_model_id",
    "melep_ranking",
    "melep_ranking_hits",
    "melep_table",
    "melep_within_set",
    "ranking_words",
    "read_melep",
]


#: The transferability scores of evaluate.transferability, and how tables name them; both are
#: lower-is-better. ``leep_argmax`` is MELEP's simpler reference (melep.leep_argmax).
SCORES = {"melep": "MELEP", "leep_argmax": "argmax reference"}
#: The ``arch`` of a correlation over every architecture.
ALL_ARCHS = "all"
#: Fewer (MELEP, Δ) pairs than this give no pooled correlation (the MELEP claim's own minimum is
#: the permutation test's: :func:`melep_claims`).
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
    """The per-seed ranking count in words, with the chance of as many hits if the cases
    were independent (they are not: a set's architectures and seeds share its upstreams, so
    that chance is too small; :func:`melep_ranking_hits` permutes them together)."""
    hits, cases, expected, p = _ranking_summary(ranking, selection, score)
    if not cases:
        return (f"no (downstream, architecture, seed) with at least 2 upstreams scored and "
                f"fine-tuned in the {selection} selection")
    mean_ups = ranking.loc[ranking["selection"] == selection, "n_upstreams"].mean()
    return (f"{hits} of {cases} (downstream, architecture, seed) case(s); a random pick among "
            f"the upstreams (on average {mean_ups:.3g} per case) would hit {expected:.2f} on "
            f"average, and {hits} or more with probability {p:.3f}")


# --------------------------------------------------------------------------------------------
# Within downstream sets: the numbers the MELEP claim reads


def _check_selection(table: pd.DataFrame, selection: str) -> None:
    missing = [c for c in (f"delta_{selection}", f"finetune_f1_{selection}")
               if c not in table]
    if missing:
        raise ValueError(f"selection {selection!r}: the MELEP table has no column(s) {missing}; "
                         f"expected a selection of {list(SELECTIONS)} and melep_table's result")


def _rows(table: pd.DataFrame, selection: str, score: str, value: str
          ) -> dict[str, np.ndarray]:
    """The (downstream, arch, upstream, score, ``value``) rows with a ``value`` in
    ``selection``, in the columns answer.permutation reads."""
    _check_selection(table, selection)
    have = table[table[f"{value}_{selection}"].notna()]
    return {"downstream": have["downstream"].to_numpy(), "arch": have["arch"].to_numpy(),
            "upstream": have["upstream"].to_numpy(),
            "score": have[score].to_numpy(dtype=float),
            value: have[f"{value}_{selection}"].to_numpy(dtype=float)}


def melep_within_set(table: pd.DataFrame, selection: str, score: str = "melep", *,
                     seed: int = 0) -> WithinSetCorrelation:
    """Mean within-set Spearman r of ``score`` with Δ over :func:`melep_table`'s rows with a
    Δ in ``selection``, and its joint within-set permutation test
    (permutation.within_set_correlation; ``p_less`` is the side a useful score takes)."""
    return within_set_correlation(_rows(table, selection, score, "delta"), seed=seed)


def melep_ranking_hits(table: pd.DataFrame, selection: str, score: str = "melep", *,
                       seed: int = 0) -> RankingHits:
    """How often the lowest ``score`` of a (downstream, arch) picks the upstream with the best
    fine-tuned F1 (mean over seeds, as the score), with P(at least that many) under the same
    joint within-set permutation (permutation.ranking_hits): unlike :func:`ranking_words`'
    chance, it does not treat a set's architectures as independent."""
    return ranking_hits(_rows(table, selection, score, "finetune_f1"), seed=seed)


def _pooled_spearman(table: pd.DataFrame, selection: str, score: str) -> tuple[float, int]:
    """Spearman r over every row with a Δ, sets pooled (NaN: too few rows or a constant)."""
    have = table[table[f"delta_{selection}"].notna()]
    x, y = have[score].to_numpy(dtype=float), have[f"delta_{selection}"].to_numpy(dtype=float)
    if len(x) < MIN_PAIRS:
        return math.nan, len(x)
    return float(_pearson_rows(rankdata(x)[None], rankdata(y)[None])[0]), len(x)


MELEP_KEY = "melep"
MELEP_TITLE = ("Lower MELEP, larger gain: MELEP ranks the upstreams of a downstream set "
               "(beyond the paper)")


def _sets_needed(alpha: float) -> str:
    """How many sets of k upstreams a perfect ranking needs to reach p <= alpha (ties aside):
    the stated minimum below which the claim is not testable."""
    need = []
    for k in (5, 4, 3, 2):
        perms = math.factorial(k)
        n = max(1, math.ceil(math.log(1.0 / alpha) / math.log(perms) - 1e-9))
        need.append(f"{n} set(s) of {k} upstreams (smallest p 1/{perms ** n})")
    return ", or ".join(need)


def _melep_rule(plan: Plan) -> str:
    return (
        "within each downstream set, Spearman r of MELEP with Δ F1 over its (architecture, "
        "upstream) rows; the statistic is their mean over sets, each set weighing the same. "
        "Permutation test: MELEP relabelled among each set's upstreams, one relabelling shared "
        "by the set's architectures, sets independently (exact when every permutation can be "
        "enumerated, else Monte Carlo). Supported if P(mean r <= observed) <= alpha = "
        f"{plan.alpha:g}; not supported if P(mean r >= observed) <= alpha (MELEP ranks the "
        "wrong way); otherwise inconclusive. A set enters with at least 2 upstreams and 3 rows, "
        "an architecture only with every upstream of its set. Not testable when even a "
        "perfect ranking in every set could not reach alpha: ties aside, that takes at least "
        f"{_sets_needed(plan.alpha)}. The pooled r, the argmax reference and the ranking "
        "count are reported, not used for the verdict.")


def _plain(x: object) -> object:
    """A JSON-plain number: NaN -> None, numpy scalars -> int/float/bool."""
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return None if math.isnan(x) else float(x)
    return x


def _plain_all(extra: Mapping[str, object]) -> dict[str, object]:
    """``extra`` as claims.json writes it: plain numbers, one level of nested mappings."""
    return {k: ({str(d): _plain(x) for d, x in v.items()} if isinstance(v, Mapping)
                else _plain(v)) for k, v in extra.items()}


def _p(p: float) -> str:
    return "—" if pd.isna(p) else f"{p:.3g}"


def _how(n_permutations: int, exact: bool) -> str:
    return (f"exact, all {n_permutations} permutations" if exact
            else f"Monte Carlo, {n_permutations} random permutations")


def _design_words(table: pd.DataFrame, selection: str, test: WithinSetCorrelation) -> str:
    """Each tested set with its upstreams and architectures: what bounds the smallest p."""
    have = table[table[f"delta_{selection}"].notna()]
    left = {(r.downstream, r.arch, r.upstream) for r in test.dropped_rows}
    used = have[[(d, a, u) not in left for d, a, u
                 in zip(have["downstream"], have["arch"], have["upstream"], strict=True)]]
    return ", ".join(f"{d} ({g['upstream'].nunique()} upstreams x {g['arch'].nunique()} "
                     "architectures)" for d, g in used.groupby("downstream", sort=True))


def _left_out_words(test: WithinSetCorrelation) -> str:
    sets = "; ".join(f"{d}: {why}" for d, why in test.dropped_sets.items())
    partial = sum(1 for r in test.dropped_rows if r.downstream not in test.dropped_sets)
    words = f" Sets left out: {sets}." if sets else ""
    if partial:
        words += (f" {partial} row(s) of architectures lacking an upstream of their set left "
                  "out.")
    return words


def _reported(table: pd.DataFrame, selection: str, ranking: pd.DataFrame | None, seed: int
              ) -> tuple[str, dict[str, object]]:
    """The numbers reported beside the verdict, never deciding it: the pooled r, the argmax
    reference within sets, and the ranking counts."""
    r_pooled, n_pooled = _pooled_spearman(table, selection, "melep")
    ref = melep_within_set(table, selection, "leep_argmax", seed=seed)
    hits = melep_ranking_hits(table, selection, seed=seed)
    words = (f" Reported, not the verdict: the pooled Spearman r over all {n_pooled} rows "
             f"with a Δ, {num(r_pooled, sign=True)} (pooled over sets, differences between "
             "sets enter it); the argmax reference's mean within-set r, "
             f"{num(ref.statistic, sign=True)} (P(<=) = {_p(ref.p_less)}).")
    if hits.n:
        words += (f" The lowest MELEP picked the upstream with the best fine-tuned F1 (mean "
                  f"over seeds) in {hits.hits} of {hits.n} (downstream, architecture) groups; "
                  f"random relabelling within sets hits {hits.expected:.2f} on average, "
                  f"{hits.hits} or more with p = {_p(hits.p_value)} "
                  f"({_how(hits.n_permutations, hits.exact)}).")
    extra: dict[str, object] = {
        "pooled_spearman": r_pooled, "pooled_pairs": n_pooled,
        "argmax_statistic": ref.statistic, "argmax_p_less": ref.p_less,
        "argmax_p_greater": ref.p_greater, "ranking_hits": hits.hits,
        "ranking_groups": hits.n, "ranking_expected": hits.expected,
        "ranking_p": hits.p_value, "ranking_min_p": hits.min_p, "ranking_exact": hits.exact}
    if ranking is not None:
        seed_hits, cases, expected, _ = _ranking_summary(ranking, selection, "melep")
        if cases:
            words += (f" Per seed: {seed_hits} of {cases} (downstream, architecture, seed) "
                      f"case(s), {expected:.2f} expected from random picks.")
        extra |= {"seed_hits": seed_hits, "seed_cases": cases}
    return words, extra


def _melep_claim(table: pd.DataFrame | None, plan: Plan, selection: str,
                 ranking: pd.DataFrame | None, seed: int) -> Claim:
    rule = _melep_rule(plan)
    if table is None:
        return Claim(MELEP_KEY, MELEP_TITLE, selection, NOT_TESTABLE, rule,
                     "MELEP is not part of this run (config key melep.enabled).", n_tests=0)
    test = melep_within_set(table, selection, seed=seed)
    n_delta = int(table[f"delta_{selection}"].notna().sum())
    base = {"alpha": plan.alpha, "n_sets": test.n_sets, "n_pairs": test.n_pairs,
            "per_set": dict(test.per_set), "dropped_sets": dict(test.dropped_sets),
            "dropped_rows": len(test.dropped_rows)}
    common = {"unit": "Spearman r", "sets": tuple(test.per_set),
              "pairings": test.n_pairs, "excluded": len(test.dropped_rows),
              "upstreams": tuple(sorted(set(
                  table.loc[table[f"delta_{selection}"].notna(), "upstream"].astype(str))))}
    if not test.n_sets:
        why = (f"{n_delta} (downstream, architecture, upstream) row(s) with a MELEP score and "
               f"a Δ in the {selection} selection, and no downstream set where upstreams can be "
               "compared." + _left_out_words(test))
        return Claim(MELEP_KEY, MELEP_TITLE, selection, NOT_TESTABLE, rule, why, n_tests=0,
                     extra=_plain_all(base), **common)
    verdict = rules.melep_ranks(test.p_less, test.p_greater, test.min_p, plan.alpha)
    per_set = ", ".join(f"{d} {r:+.3f}" for d, r in test.per_set.items())
    evidence = (
        f"Spearman r of MELEP with Δ F1 within each downstream set ({selection} selection): "
        f"{per_set}; mean over {test.n_sets} set(s), {test.n_pairs} (architecture, upstream) "
        f"rows: **{test.statistic:+.3f}**. Lower MELEP means better predicted transfer, so a "
        "useful score gives a negative r. Permutation test within sets "
        f"({_how(test.n_permutations, test.exact)}): P(mean r <= observed) = "
        f"{_p(test.p_less)}, P(mean r >= observed) = {_p(test.p_greater)}; the smallest p "
        f"this design can reach is {_p(test.min_p)} (alpha = {plan.alpha:g}; "
        f"{_design_words(table, selection, test)})." + _left_out_words(test))
    if verdict == NOT_TESTABLE:
        evidence = ("Too few upstreams and sets: even a perfect ranking in every set could "
                    f"reach p = {_p(test.min_p)} at best, above alpha = {plan.alpha:g}. "
                    + evidence)
    reported, more = _reported(table, selection, ranking, seed)
    extra = base | {"statistic": test.statistic, "p_less": test.p_less,
                    "p_greater": test.p_greater, "min_p": test.min_p,
                    "exact": test.exact, "n_permutations": test.n_permutations} | more
    return Claim(MELEP_KEY, MELEP_TITLE, selection, verdict, rule, evidence + reported,
                 estimate=test.statistic, n_tests=0 if verdict == NOT_TESTABLE else 1,
                 extra=_plain_all(extra), **common)


def melep_claims(table: pd.DataFrame | None, plan: Plan, selections: Sequence[str],
                 ranking: pd.DataFrame | None = None, *, seed: int = 0) -> list[Claim]:
    """The claim "lower MELEP, larger gain, within a downstream set", once per selection.

    ``table`` is :func:`melep_table`'s result (None: MELEP is not part of the run); the
    verdict is rules.melep_ranks on :func:`melep_within_set`. ``ranking``
    (:func:`melep_ranking`'s per-seed cases) only adds the per-seed hit count to the
    evidence; the ranking count with its permutation p comes from ``table`` itself.
    ``seed`` drives the Monte Carlo permutations where there are too many to enumerate. No
    interval: the claim is a test, so ``low``/``high`` stay None.
    """
    return [_melep_claim(table, plan, s, ranking, seed) for s in selections]


def melep_markdown(table: pd.DataFrame, correlations: pd.DataFrame, ranking: pd.DataFrame,
                   *, level: float, seed: int = 0) -> str:
    """The MELEP table, the within-set correlations with their permutation p (what the MELEP
    claim reads), the pooled correlations (reported) and the ranking counts as one Markdown
    page. ``seed``: as :func:`melep_claims`' (the Monte Carlo permutations, where used), so
    the page prints the claim's numbers."""
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
    parts += _within_set_section(table, seed)
    parts += _pooled_section(correlations, pct)
    parts += _ranking_section(table, ranking, seed)
    return "\n".join(parts)


def _within_set_section(table: pd.DataFrame, seed: int) -> list[str]:
    parts = [
        "## Correlation with Δ F1 within each downstream set (what the claim tests)\n",
        "Spearman r of the score with Δ F1 over each downstream set's (arch, upstream) rows, "
        "and their mean over sets, each set weighing the same. The permutation test relabels "
        "the score among a set's upstreams, one relabelling shared by the set's architectures "
        "(they are fine-tuned from the same upstreams), sets independently: `p (r lower)` is "
        "the chance of a mean at least as negative as observed (what a useful score gives), "
        "`p (r higher)` of one at least as positive. `smallest p`: what even a perfect ranking "
        "could reach with these sets and upstreams; above the claim's alpha, the claim is not "
        "testable. Exact: every permutation enumerated; MC: random permutations.\n",
    ]
    header = ["selection", "score", "mean r", "per set", "sets", "rows", "p (r lower)",
              "p (r higher)", "smallest p", "permutations"]
    rows, left = [], []
    for s in SELECTIONS:
        for score, name in SCORES.items():
            t = melep_within_set(table, s, score, seed=seed)
            per_set = ", ".join(f"{d} {r:+.3f}" for d, r in t.per_set.items()) or "—"
            how = ("—" if not t.n_sets else
                   f"{t.n_permutations} ({'exact' if t.exact else 'MC'})")
            rows.append([s, name, num(t.statistic, sign=True), per_set, str(t.n_sets),
                         str(t.n_pairs), _p(t.p_less), _p(t.p_greater),
                         _p(t.min_p) if t.n_sets else "—", how])
            if score == "melep" and (t.dropped_sets or t.dropped_rows):
                left.append(f"* {s} selection:{_left_out_words(t)}")
    parts.append(markdown_table(header, rows, 4) + "\n")
    if left:
        parts += ["Left out of the within-set test of MELEP:\n", *left, ""]
    return parts


def _pooled_section(correlations: pd.DataFrame, pct: str) -> list[str]:
    parts = [
        "## Pooled correlation with Δ F1 (reported, not the verdict)\n",
        f"Over the (downstream, arch, upstream) rows above with a Δ; {pct} percentile interval "
        "from resampling those pairs. Negative r: lower score, larger gain. Fewer than "
        f"{MIN_PAIRS} pairs: no correlation (`—`). Pooled over sets, differences between sets "
        "enter it (label entropy bounds MELEP, and some sets gain more from any fine-tuning), "
        "so it can be strongly negative when the score says nothing about which upstream to "
        "pick within any set; `all` pools the architectures too.\n",
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
    return parts


def _ranking_section(table: pd.DataFrame, ranking: pd.DataFrame, seed: int) -> list[str]:
    parts = [
        "## Does the lowest score pick the best upstream?\n",
        "Per (downstream, arch) with at least 2 upstreams scored and fine-tuned, on the means "
        "over seeds: does the upstream with the lowest score give the highest fine-tuned test "
        "F1 (the scratch model is common, so the highest Δ)? p: chance of as many hits or more "
        "under the within-set permutation above (architectures of a set relabelled together). "
        "Per seed, the count over (downstream, arch, seed) cases with the picks below; a "
        "random pick hits 1 / upstreams of the time (more where upstreams tie at the best "
        "F1).\n",
    ]
    for s in SELECTIONS:
        for score, name in SCORES.items():
            h = melep_ranking_hits(table, s, score, seed=seed)
            joint = (f"{h.hits} of {h.n} (downstream, arch) group(s), {h.expected:.2f} "
                     f"expected by chance, p = {_p(h.p_value)} "
                     f"({_how(h.n_permutations, h.exact)})" if h.n else "no group")
            parts.append(f"* {s} selection, lowest {name}: {joint}; per seed: "
                         f"{_seed_words(ranking, s, score)}.")
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
    return parts


def _seed_words(ranking: pd.DataFrame, selection: str, score: str) -> str:
    """The per-seed count without a p-value: its cases share sets, architectures and
    upstreams, so no independent-cases chance applies to it."""
    hits, cases, expected, _ = _ranking_summary(ranking, selection, score)
    if not cases:
        return "no case"
    return (f"{hits} of {cases} (downstream, arch, seed) case(s), {expected:.2f} expected "
            "from random picks")


def _score_cell(row: Mapping[str, object], name: str) -> str:
    sd = row[f"{name}_sd"]
    return num(row[name]) if pd.isna(sd) else f"{row[name]:.3f} ± {sd:.3f}"
