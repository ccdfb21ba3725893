"""The study's answer as a document: every claim with its verdict, in ``claims.md`` for people
and ``claims.json`` for programs.

The claims themselves are judged elsewhere: the paper's by :mod:`.verdicts` on the evidence of
:mod:`.evidence` (the rules in :mod:`.rules`), MELEP's by :mod:`.transferability`, robustness's
by :mod:`.robustness`. Here they are gathered (:func:`judge`) and written, with what a reader
needs to weigh them: the four outcomes, the one-sided error rate of each test, the margins,
how many claims were judged, and for each claim the sets, models and seeds it rests on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import numpy as np

from ecg_transfer.answer.formatting import markdown_table
from ecg_transfer.answer.rules import (
    CONTRADICTED,
    INCONCLUSIVE,
    NOT_SUPPORTED,
    NOT_TESTABLE,
    SUPPORTED,
    VERDICTS,
    Plan,
)
from ecg_transfer.answer.tables import Tables
from ecg_transfer.answer.verdicts import Claim, convergence_claims, judge_selection
from ecg_transfer.metrics import SELECTIONS

__all__ = ["CLAIMS_JSON_VERSION", "beyond_section", "claims_json", "claims_markdown", "judge"]

#: Bumped when claims.json changes shape.
CLAIMS_JSON_VERSION = 1

_OUTCOMES = {
    SUPPORTED: "the interval lies on the claim's side (for a 'no difference' claim: inside "
               "the margin)",
    CONTRADICTED: "the interval lies wholly on the other side, beyond the margin",
    NOT_SUPPORTED: "(one-sided claims) the interval rules out a difference as large as the "
                   "margin in the claimed direction",
    INCONCLUSIVE: "the run cannot tell: the interval reaches both sides of the line that "
                  "decides",
    NOT_TESTABLE: "this run lacks what the claim needs (the claim says what)",
}


def judge(tables: Tables, plan: Plan, *, n_boot: int, seed: int) -> list[Claim]:
    """The paper's claims: each selection-dependent one per selection, then convergence."""
    claims: list[Claim] = []
    for s in SELECTIONS:
        claims += judge_selection(tables.evidence[s].evidence, plan)
    claims += convergence_claims(tables.convergence_pairs, plan, n_boot=n_boot, seed=seed)
    return claims


def _counts(claims: Sequence[Claim]) -> str:
    n = {v: sum(c.verdict == v for c in claims) for v in VERDICTS}
    return ", ".join(f"{k} {v}" for v, k in ((v, n[v]) for v in VERDICTS) if k)


def _header(claims: Sequence[Claim], plan: Plan, tables: Tables | None, n_boot: int,
            seed: int) -> list[str]:
    tested = sum(c.n_tests for c in claims)
    lines = [
        "# Is transfer learning effective? The paper's claims, tested on this run\n",
        "Every number below is computed from this run's saved predictions and logs; each "
        "verdict follows the rule printed under its claim, and every rule and margin was "
        "fixed in the configuration (`results:`) before the run. A verdict is one of:\n",
        *[f"* **{v}**: {why};" for v, why in _OUTCOMES.items()],
        "",
        f"Intervals are {100 * plan.level:g} % percentile intervals of a hierarchical bootstrap "
        f"({n_boot} replicates, seed {seed}): test records resampled once per downstream set, "
        "each model's seeds once, and under the paper selection the best epoch taken again in "
        "every replicate. Each end of an interval is a one-sided test at "
        f"alpha = {plan.alpha:g} (results.level); \"no difference\" claims are equivalence "
        f"tests (TOST) at the same alpha. Margins: F1 ±{plan.margin_f1:g} "
        f"(results.margin_f1), epochs ±{plan.margin_epochs:g} (results.margin_epochs), "
        f"retained skill ±{plan.margin_retention:g} (results.margin_retention). A test split "
        f"with fewer than {plan.min_test_records} records, or no class with "
        f"{plan.min_class_positives} positives, makes a claim on it not testable.\n",
        f"**{len(claims)} claims, {tested} judged** ({_counts(claims)}). Each claim is its own "
        "question, tested at the alpha above; no correction is made across claims, so among "
        f"{tested} tests of true 'no effect' hypotheses about {tested * plan.alpha:.1f} would "
        "come out 'supported' by chance alone.\n",
    ]
    if tables is not None:
        made = []
        for s in SELECTIONS:
            se = tables.evidence[s]
            n = sum(p.size is None for p in se.comparisons)
            if not n:
                made.append(f"**{s}**: not made (no scratch/fine-tuned pairing saved "
                            f"`{s}_probs`" + (": no validation split" if s == "validation"
                                              else "") + ")")
                continue
            words = f"**{s}**: {n} full-split pairing(s), {se.models} model(s)"
            if s == "paper":
                words += (f", best epoch re-chosen per replicate for {se.reselected} of them"
                          if se.reselected else ", best epoch *not* re-chosen per replicate "
                          "(jobs without epoch_probs)")
            made.append(words)
        lines.append("Selections: " + "; ".join(made) + ".\n")
    return lines


def _row_title(claims: Sequence[Claim], key: str) -> str:
    return next(c.title for c in claims if c.key == key)


def _overview(claims: Sequence[Claim]) -> str:
    header = ["claim", *[f"{s} selection" for s in SELECTIONS]]
    rows = []
    for key in dict.fromkeys(c.key for c in claims):
        per = {c.selection: c for c in claims if c.key == key}
        if None in per:
            cells = [per[None].verdict] * len(SELECTIONS)
        else:
            cells = [per[s].verdict if s in per else "-" for s in SELECTIONS]
        rows.append([_row_title(claims, key), *cells])
    return markdown_table(header, rows, len(header))


def _claim_text(c: Claim) -> str:
    where = "" if c.selection is None else f" ({c.selection} selection)"
    body = [f"#### {c.title}{where}\n", f"**Verdict: {c.verdict}.**\n", c.evidence + "\n"]
    seeds = c.seeds_words()
    rests = [seeds] if seeds else []
    if c.sets:
        rests.append(f"Sets: {', '.join(c.sets)}.")
    if c.upstreams:
        rests.append(f"Upstreams: {', '.join(c.upstreams)}.")
    if c.family:
        rests.append(f"Family: {c.family}.")
    rests.append(f"Tests behind this verdict: {c.n_tests}.")
    body.append(" ".join(rests) + "\n")
    body.append(f"*Rule:* {c.rule}\n")
    return "\n".join(body)


def claims_markdown(claims: Sequence[Claim], plan: Plan, *, n_boot: int, seed: int,
                    tables: Tables | None = None) -> str:
    """``claims.md``: how to read it, a verdict overview, then every claim with its numbers,
    rule, sets, models and seeds. Claims whose ``key`` starts a beyond-the-paper study (MELEP,
    robustness) follow the paper's under their own heading."""
    paper = [c for c in claims if not _beyond(c)]
    beyond = [c for c in claims if _beyond(c)]
    lines = _header(claims, plan, tables, n_boot, seed)
    lines += ["## Overview\n", _overview(claims) + "\n", "## The paper's claims\n"]
    for s in (*SELECTIONS, None):
        chosen = [c for c in paper if c.selection == s]
        if not chosen:
            continue
        if s is None:
            lines.append("### Independent of the selection\n\nThese read whole per-epoch "
                         "curves, not one selected epoch.\n")
        else:
            primary = " (primary: the paper's protocol)" if s == "paper" else ""
            lines.append(f"### {s.capitalize()} selection{primary}\n\n{SELECTIONS[s][1]}.\n")
        lines += [_claim_text(c) for c in chosen]
    if beyond:
        lines.append(beyond_section(beyond))
    return "\n".join(lines)


def beyond_section(claims: Sequence[Claim]) -> str:
    """The claims beyond the paper (MELEP, robustness) as a Markdown section
    (``claims_beyond.md``; also part of ``claims.md``)."""
    lines = ["## Beyond the paper\n\nTwo questions the paper does not ask: does MELEP, "
             "computed before fine-tuning, predict which upstream set transfers best, and do "
             "fine-tuned models stand perturbed ECGs better than models trained from scratch?\n",
             _overview(claims) + "\n"]
    lines += [_claim_text(c) for c in claims]
    return "\n".join(lines)


def _beyond(c: Claim) -> bool:
    return c.key.startswith(("melep", "robustness"))


def _plain(value: object) -> object:
    """JSON-safe: numpy scalars to Python, NaN/inf to None, tuples to lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def claims_json(claims: Sequence[Claim], plan: Plan, *, n_boot: int, seed: int) -> str:
    """``claims.json``: the plan (every parameter a verdict depends on) and every claim with
    key, selection, verdict, estimate, interval, margin, unit, sets, family, models, seeds,
    pairings, excluded pairings, upstreams, tests, rule and evidence text."""
    doc = {
        "version": CLAIMS_JSON_VERSION,
        "plan": plan.as_dict() | {"alpha": plan.alpha},
        "bootstrap": {"n_boot": n_boot, "seed": seed},
        "verdicts": list(VERDICTS),
        "claims": [{
            "key": c.key, "title": c.title, "selection": c.selection, "verdict": c.verdict,
            "estimate": c.estimate, "low": c.low, "high": c.high, "level": plan.level,
            "margin": c.margin, "unit": c.unit, "sets": list(c.sets), "family": c.family,
            "models": c.models, "seeds": list(c.seeds), "pairings": c.pairings,
            "excluded": c.excluded, "upstreams": list(c.upstreams), "n_tests": c.n_tests,
            "rule": c.rule,
            "evidence": c.evidence, "extra": dict(c.extra),
        } for c in claims],
    }
    return json.dumps(_plain(doc), indent=2, allow_nan=False) + "\n"
