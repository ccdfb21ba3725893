"""Every claim the study tests, each with this run's numbers and the verdict they give: the
paper's four (small sets, large sets, convergence, families) and the two beyond it (MELEP,
robustness).

The decision rules stand here next to each other, each printed under its claim in
``claims.md``; the tables, their Markdown and the figures report numbers and never decide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ecg_transfer.answer.formatting import interval, markdown_table, maybe_interval, num, percent
from ecg_transfer.answer.robustness import RobustnessTables, level_label
from ecg_transfer.answer.runs import FAMILIES, Comparison, Run, check_families, pairings
from ecg_transfer.answer.stats import MeanDelta, _percentile_interval, bootstrap_mean_delta
from ecg_transfer.answer.tables import DIFFERENCE, Tables, by_test_set, crossover_lines
from ecg_transfer.answer.transferability import ALL_ARCHS, MIN_PAIRS, ranking_words
from ecg_transfer.metrics import SELECTIONS

__all__ = [
    "NOT_SUPPORTED",
    "NOT_TESTABLE",
    "SUPPORTED",
    "Claim",
    "claims_markdown",
    "claims_section",
    "evaluate_beyond_claims",
    "evaluate_claims",
]


SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
NOT_TESTABLE = "not testable with this run"


@dataclass(frozen=True)
class Claim:
    """One claim (the paper's or beyond it), this run's numbers bearing on it, and the
    verdict they give.

    ``selection`` is None for a claim independent of the selection. ``verdict`` is one of
    :data:`SUPPORTED`, :data:`NOT_SUPPORTED`, :data:`NOT_TESTABLE`; ``rule`` says how it
    follows from ``estimate`` and the interval (``low``, ``high``; None where not testable).
    """

    key: str
    title: str
    selection: str | None
    verdict: str
    evidence: str
    rule: str
    estimate: float | None = None
    low: float | None = None
    high: float | None = None


_PAPER_TITLES = {
    "small_sets": "Fine-tuning helps on small downstream sets "
                  "(paper: up to +0.14 F1 at 827 samples)",
    "large_sets": "The gain vanishes on large downstream sets (paper: near 6000 samples)",
    "convergence": "Fine-tuning reaches the same F1 sooner (paper: 30-35 epochs)",
    "families": "CNNs transfer better than RNNs",
}
_PAPER_RULES = {
    "small_sets": "supported if the interval's low end > 0, else not supported; not testable "
                  "without a CNN pairing on the smallest set.",
    "large_sets": "supported (no gain detectable) if the interval includes 0, not supported if "
                  "it excludes 0; not testable with a single downstream set and no size axis, "
                  "or without a CNN pairing on the largest set.",
    "convergence": "supported if the interval's low end > 0, else not supported (also when "
                   "fine-tuning never reached the target); not testable without a pairing "
                   "whose jobs trained at least 2 epochs.",
    "families": f"supported if the interval of {DIFFERENCE} has its low end > 0, else not "
                "supported; not testable if either family has no pairing.",
}


_BEYOND_TITLES = {
    "melep": "MELEP ranks upstream datasets (beyond the paper)",
    "robustness": "Fine-tuned models degrade less under perturbation (beyond the paper)",
}
_BEYOND_RULES = {
    "melep": "supported if the interval of the overall Spearman r of MELEP with Δ F1 lies "
             "below 0 (lower MELEP, larger gain), else not supported; not testable with fewer "
             f"than {MIN_PAIRS} (MELEP, Δ) pairs or where r is undefined (constant values).",
    "robustness": "supported if the interval's low end > 0 (fine-tuned models lose less F1 at "
                  "the harshest level of each perturbation), else not supported; not testable "
                  "without a fine-tuned/scratch pair in the robustness results.",
}
_TITLES = _PAPER_TITLES | _BEYOND_TITLES
_RULES = _PAPER_RULES | _BEYOND_RULES


def _claim(key: str, selection: str | None, verdict: str, evidence: str,
           estimate: float | None = None, low: float | None = None,
           high: float | None = None) -> Claim:
    return Claim(key, _TITLES[key], selection, verdict, evidence, _RULES[key], estimate, low,
                 high)


# --------------------------------------------------------------------------------------------
# The paper's claims


def _cnn_mean(comparisons: Sequence[Comparison], selection: str,
              boot: Mapping[str, object]) -> tuple[MeanDelta, str]:
    md = bootstrap_mean_delta(by_test_set(comparisons, selection), **boot)
    archs = ", ".join(dict.fromkeys(c.arch for c in comparisons))
    ups = ", ".join(sorted({c.upstream for c in comparisons}))
    words = (f"mean Δ F1 over {md.n_pairs} CNN pairing(s) there (architectures {archs}; "
             f"upstreams {ups}): **{md.delta:+.3f}**, {percent(md.level)} interval "
             f"{interval(md.low, md.high)}")
    return md, words


def _tied(n_train: Mapping[str, int], n: int) -> list[str]:
    """Every downstream set with ``n`` training records: sets of equal size are judged
    together (pairs grouped by set), not one picked by name."""
    return sorted(d for d, m in n_train.items() if m == n)


def _sets_words(sets: Sequence[str], n_train: Mapping[str, int]) -> str:
    tied = " (tied)" if len(sets) > 1 else ""
    return ", ".join(f"**{d}**" for d in sets) + f"{tied} (n_train = {n_train[sets[0]]})"


def _small_sets_claim(runs: Sequence[Run], selection: str, families: Mapping[str, str],
                      transfer: pd.DataFrame, sized: pd.DataFrame | None,
                      boot: Mapping[str, object]) -> Claim:
    comparisons = pairings(runs, selection=selection, full_only=True)
    if not comparisons:
        return _claim("small_sets", selection, NOT_TESTABLE,
                      f"No pairing makes the {selection} selection.")
    n_train = {c.downstream: c.n_train for c in comparisons}
    smallest = _tied(n_train, min(n_train.values()))
    cnn = [c for c in comparisons if c.downstream in smallest and families[c.arch] == "CNN"]
    where = f"Smallest downstream set: {_sets_words(smallest, n_train)}"
    if not cnn:
        return _claim("small_sets", selection, NOT_TESTABLE, f"{where}; it has no CNN pairing.")
    md, words = _cnn_mean(cnn, selection, boot)
    rows = transfer[transfer["downstream"].isin(smallest)
                    & (transfer["arch"].map(families) == "CNN")]
    best = rows.loc[rows["delta"].idxmax()]
    evidence = (f"{where}; {words}. Largest single pairing: {best['delta']:+.3f} "
                f"({best['arch']} from {best['upstream']} on {best['downstream']}, interval "
                f"{interval(best['low'], best['high'])}).")
    if sized is not None and not sized.empty:
        evidence += " " + _smallest_size_words(runs, selection, families, sized, boot)
    verdict = SUPPORTED if md.low > 0 else NOT_SUPPORTED
    return _claim("small_sets", selection, verdict, evidence, md.delta, md.low, md.high)


def _smallest_size_words(runs: Sequence[Run], selection: str, families: Mapping[str, str],
                         sized: pd.DataFrame, boot: Mapping[str, object]) -> str:
    """With a size axis, the same mean at its smallest size (reported, not used for the
    verdict, which follows the paper's comparison of downstream sets)."""
    n = int(sized.loc[~sized["full_split"], "n_train"].min())
    at = [c for c in pairings(runs, selection=selection)
          if c.size is not None and c.n_train == n and families[c.arch] == "CNN"]
    if not at:
        return f"The size axis' smallest size ({n} records) has no CNN pairing."
    md, _ = _cnn_mean(at, selection, boot)
    return (f"At the size axis' smallest size ({n} training records), the mean "
            f"Δ over {md.n_pairs} CNN pairing(s) is {md.delta:+.3f}, interval "
            f"{interval(md.low, md.high)} (reported, not used for the verdict).")


def _large_sets_claim(runs: Sequence[Run], selection: str, families: Mapping[str, str],
                      sized: pd.DataFrame | None, boot: Mapping[str, object]) -> Claim:
    comparisons = pairings(runs, selection=selection, full_only=True)
    if not comparisons:
        return _claim("large_sets", selection, NOT_TESTABLE,
                      f"No pairing makes the {selection} selection.")
    n_train = {c.downstream: c.n_train for c in comparisons}
    has_sizes = sized is not None and not sized.empty
    if len(n_train) < 2 and not has_sizes:
        return _claim("large_sets", selection, NOT_TESTABLE,
                      f"Only one downstream set ({next(iter(n_train))}) and no size axis: "
                      "nothing larger to compare with.")
    largest = _tied(n_train, max(n_train.values()))
    cnn = [c for c in comparisons if c.downstream in largest and families[c.arch] == "CNN"]
    where = f"Largest downstream set: {_sets_words(largest, n_train)}"
    if not cnn:
        return _claim("large_sets", selection, NOT_TESTABLE, f"{where}; it has no CNN pairing.")
    md, words = _cnn_mean(cnn, selection, boot)
    includes = md.low <= 0.0 <= md.high
    if includes:
        outcome = "The interval includes 0: no gain detectable."
    else:
        outcome = ("The interval excludes 0: fine-tuning still "
                   + ("helps" if md.delta > 0 else "hurts") + " on this set.")
    evidence = f"{where}; {words}. {outcome}"
    if has_sizes:
        cnn_curves = sized[sized["arch"].map(families) == "CNN"]
        lines = crossover_lines(cnn_curves)
        evidence += ("\n\nCrossover sizes of the CNN curves (smallest size whose interval "
                     "includes 0):\n\n" + "\n".join(f"* {line}" for line in lines)
                     if lines else "\n\nThe size axis has no CNN curve.")
    verdict = SUPPORTED if includes else NOT_SUPPORTED
    return _claim("large_sets", selection, verdict, evidence, md.delta, md.low, md.high)


def _bootstrap_mean(values: np.ndarray, n_boot: int, seed: int,
                    level: float) -> tuple[float, float, float]:
    """Mean of ``values`` with a percentile interval from resampling the values themselves."""
    rng = np.random.default_rng(seed)
    draws = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(axis=1)
    low, high = _percentile_interval(draws, level)
    return float(values.mean()), low, high


def _convergence_claim(table: pd.DataFrame, boot: Mapping[str, object]) -> Claim:
    trained = table[(table["epochs_scratch"] >= 2) & (table["epochs_finetune"] >= 2)]
    if trained.empty:
        return _claim("convergence", None, NOT_TESTABLE,
                      "No pairing whose jobs trained at least 2 epochs." if len(table) else
                      "No pairing of a scratch and a fine-tuned job.")
    reached = trained["epochs_saved"].dropna().to_numpy(dtype=np.float64)
    never = len(trained) - len(reached)
    never_words = (f"In {never} of {len(trained)} pairing(s) fine-tuning never reached the "
                   "target within the epochs trained.")
    tolerance = float(trained["tolerance"].iloc[0])
    target = f"Target: the best scratch test F1 (mean curve over seeds) minus {tolerance:g}."
    if len(reached) == 0:
        return _claim("convergence", None, NOT_SUPPORTED, f"{target} {never_words}")
    mean, low, high = _bootstrap_mean(reached, int(boot["n_boot"]), int(boot["seed"]),
                                      float(boot["level"]))
    single = " (one pairing: the interval is that single value)" if len(reached) == 1 else ""
    evidence = (f"{target} Over the {len(reached)} pairing(s) where both reached it, "
                f"fine-tuning got there **{mean:+.1f}** epochs sooner on average, "
                f"{percent(float(boot['level']))} bootstrap interval over pairings "
                f"[{low:+.1f}, {high:+.1f}]{single}. {never_words}")
    verdict = SUPPORTED if low > 0 else NOT_SUPPORTED
    return _claim("convergence", None, verdict, evidence, mean, low, high)


def _families_claim(table: pd.DataFrame, selection: str) -> Claim:
    rows = {r.family: r for r in table.itertuples(index=False)}
    missing = [f for f in FAMILIES if f not in rows]
    if missing:
        return _claim("families", selection, NOT_TESTABLE,
                      f"No {' or '.join(missing)} pairing in the {selection} selection.")
    diff = rows[DIFFERENCE]
    per_family = "; ".join(
        f"{f}: mean Δ {rows[f].delta:+.3f}, interval {interval(rows[f].low, rows[f].high)} "
        f"over {rows[f].n_pairs} pairing(s)" for f in FAMILIES)
    evidence = (f"{per_family}. Difference {DIFFERENCE}: **{diff.delta:+.3f}**, "
                f"{percent(diff.level)} interval {interval(diff.low, diff.high)}.")
    verdict = SUPPORTED if diff.low > 0 else NOT_SUPPORTED
    return _claim("families", selection, verdict, evidence, diff.delta, diff.low, diff.high)


def evaluate_claims(runs: Sequence[Run], tables: Tables, *, families: Mapping[str, str],
                    n_boot: int, seed: int, level: float) -> list[Claim]:
    """Each claim of the paper under each selection (convergence once: it reads whole curves).

    The verdict rules are in each :class:`Claim`'s ``rule``. Claims 1 and 2 bootstrap the mean
    Δ over the CNN pairings of one downstream set (stats.bootstrap_mean_delta), so they need the
    runs as well as the tables.
    """
    check_families(runs, families)
    boot = {"n_boot": n_boot, "seed": seed, "level": level}
    claims = []
    for selection in SELECTIONS:
        sized = tables.sizes.get(selection)
        claims += [
            _small_sets_claim(runs, selection, families, tables.transfer[selection], sized,
                              boot),
            _large_sets_claim(runs, selection, families, sized, boot),
            _families_claim(tables.families[selection], selection),
        ]
    claims.append(_convergence_claim(tables.convergence, boot))
    return claims


def claims_markdown(claims: Sequence[Claim], runs: Sequence[Run]) -> str:
    """``claims.md``: which selections the run could make, a verdict overview, then each claim
    with its numbers, per selection (paper first: the paper's protocol)."""
    made = {s: len(pairings(runs, selection=s, full_only=True)) for s in SELECTIONS}
    could = [f"**{s}** ({n} pairing(s))" for s, n in made.items() if n]
    could_not = [s for s, n in made.items() if not n]
    lines = ["# The paper's claims, tested on this run\n",
             "Every number below is computed from this run's saved predictions and logs; the "
             "verdicts follow the rule printed under each claim.\n",
             "Selections this run could make: " + (", ".join(could) or "none") + "."
             + "".join(f" Not made: {s} (no scratch/fine-tuned pairing whose jobs saved "
                       f"`{s}_probs`" + (": no validation split" if s == "validation" else "")
                       + ")." for s in could_not) + "\n"]
    sections = [(s, SELECTIONS[s][1]) for s in SELECTIONS] + [(None, "")]
    header = ["claim", *[f"{s} selection" for s in SELECTIONS]]
    overview = []
    for key, title in _PAPER_TITLES.items():
        per = {c.selection: c.verdict for c in claims if c.key == key}
        if None in per:
            overview.append([title, *[per[None]] * len(SELECTIONS)])
        else:
            overview.append([title, *[per.get(s, "—") for s in SELECTIONS]])
    lines.append(markdown_table(header, overview, len(header)) + "\n")
    for selection, label in sections:
        chosen = [c for c in claims if c.selection == selection]
        if not chosen:
            continue
        if selection is None:
            lines.append("## Independent of the selection\n\nThese read whole per-epoch "
                         "curves, not one selected epoch.\n")
        else:
            primary = (" (primary: the paper's protocol)" if selection == "paper" else "")
            lines.append(f"## {selection.capitalize()} selection{primary}\n\n{label}.\n")
        for c in chosen:
            lines.append(f"### {c.title}\n\n**Verdict: {c.verdict}.**\n\n{c.evidence}\n\n"
                         f"*Rule:* {c.rule}\n")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Beyond the paper: MELEP and robustness


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
    pct = percent(float(rho["coverage"]))
    pearson, ref = pick("melep", "pearson"), pick("leep_argmax", "spearman")
    evidence = (
        f"Over {n} (downstream, architecture, upstream) pairs, Spearman r of MELEP with Δ F1: "
        f"**{rho['r']:+.3f}**, {pct} interval {interval(rho['low'], rho['high'])} "
        "(bootstrap over pairs); Pearson r "
        f"{num(pearson['r'], sign=True)} {maybe_interval(pearson['low'], pearson['high'])}. "
        "Lower MELEP means better predicted transfer, so a useful score correlates "
        "negatively. The argmax reference: Spearman r "
        f"{num(ref['r'], sign=True)} {maybe_interval(ref['low'], ref['high'])}. Pooled over "
        "downstream sets, so differences between sets enter r too.")
    if ranking is not None:
        evidence += (" Within one downstream set, the lowest MELEP picked the upstream with the "
                     f"highest fine-tuned F1 in {ranking_words(ranking, selection, 'melep')} "
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
        f"{k} at {level_label(k, float(h.loc[h['kind'] == k, 'level'].iloc[0]))}: "
        f"{m.delta:+.3f} {interval(m.low, m.high)} over {m.n_pairs} pair(s)"
        for k, m in tables.by_kind.items())
    n_pairs = len(h.drop_duplicates(["downstream", "arch", "upstream"]))
    evidence = (
        "Difference of degradations (fine-tuned - scratch; degradation = F1 at the level - "
        "clean F1) at the harshest level of each kind, averaged over "
        f"{md.n_pairs} (pair, kind) value(s) from {n_pairs} fine-tuned/scratch pair(s) on "
        f"{md.n_groups} downstream set(s), each weighing the same: **{md.delta:+.3f}**, "
        f"{percent(md.level)} interval {interval(md.low, md.high)} (paired bootstrap over test "
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
    :func:`claims_markdown`, to append to ``claims.md``: an overview, then each claim."""
    lines = ["## Beyond the paper\n",
             "Two questions the paper does not ask: does MELEP, computed before fine-tuning, "
             "predict which upstream set transfers best, and do fine-tuned models stand "
             "perturbed ECGs better than models trained from scratch? Verdicts follow the rule "
             "printed under each claim.\n"]
    header = ["claim", *[f"{s} selection" for s in SELECTIONS]]
    overview = []
    for key, title in _BEYOND_TITLES.items():
        per = {c.selection: c.verdict for c in claims if c.key == key}
        if not per:
            continue
        overview.append([title, *([per[None]] * len(SELECTIONS) if None in per
                                  else [per.get(s, "—") for s in SELECTIONS])])
    lines.append(markdown_table(header, overview, len(header)) + "\n")
    for c in claims:
        where = "" if c.selection is None else f" — {c.selection} selection"
        lines.append(f"### {c.title}{where}\n\n**Verdict: {c.verdict}.**\n\n{c.evidence}\n\n"
                     f"*Rule:* {c.rule}\n")
    return "\n".join(lines)
