"""The MELEP claim judged within downstream sets (transferability.melep_claims), on
constructed MELEP tables whose truth is known: the pooled correlation the old claim read is
strongly negative from differences between sets alone, and the claim must not follow it."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from tiny_study import default_plan

from ecg_transfer.answer.rules import (
    INCONCLUSIVE,
    NOT_SUPPORTED,
    NOT_TESTABLE,
    SUPPORTED,
)
from ecg_transfer.answer.transferability import (
    MELEP_COLUMNS,
    MELEP_SCORE_COLUMNS,
    RANKING_COLUMNS,
    melep_claims,
    melep_correlations,
    melep_markdown,
    melep_table,
)

PLAN = default_plan()
ALPHA = PLAN.alpha
ARCHS = ("resnet", "gru")


def _table(rows: list[tuple[str, str, str, float, float]]) -> pd.DataFrame:
    """A :func:`melep_table` result with one seed per score, a Δ in the paper selection only,
    from (downstream, arch, upstream, MELEP, Δ); the argmax reference is MELEP itself."""
    nan = math.nan
    records = [{"downstream": d, "arch": a, "upstream": u, "seeds": 1, "records": 800,
                "melep": m, "melep_sd": nan, "leep_argmax": m, "leep_argmax_sd": nan,
                "finetune_f1_paper": 0.6 + dl, "delta_paper": dl, "low_paper": dl - 0.02,
                "high_paper": dl + 0.02, "finetune_f1_validation": nan,
                "delta_validation": nan, "low_validation": nan, "high_validation": nan}
               for d, a, u, m, dl in rows]
    return pd.DataFrame(records, columns=list(MELEP_COLUMNS))


def _between_sets_only(rng: np.random.Generator, n_sets: int = 6, n_ups: int = 3
                       ) -> pd.DataFrame:
    """Sets differ in MELEP level and in gain (lower-MELEP sets gain more), but within a set
    MELEP says nothing about which upstream transfers better: each upstream has a MELEP effect
    and a Δ effect shared by the set's architectures, drawn independently."""
    levels = rng.permutation(np.linspace(0.4, 1.6, n_sets))
    rows = []
    for i, level in enumerate(levels):
        gain = 0.12 - 0.08 * level
        z, w = rng.normal(size=n_ups), rng.normal(size=n_ups)
        for arch in ARCHS:
            for u in range(n_ups):
                rows.append((f"d{i}", arch, f"u{u}", level + 0.1 * z[u] + 0.03 * rng.normal(),
                             gain + 0.02 * w[u] + 0.015 * rng.normal()))
    return _table(rows)


def _ranked(n_sets: int, n_ups: int, *, within: int, between: int,
            archs: tuple[str, ...] = ARCHS) -> pd.DataFrame:
    """MELEP rises with the upstream's index in every set; Δ falls with it (``within`` = -1,
    lower MELEP transfers better) or rises (+1). Between sets, MELEP's level rises with the
    set's index and Δ's level moves the ``between`` way, far more than within a set."""
    rows = []
    for i in range(n_sets):
        for arch in archs:
            for u in range(n_ups):
                rows.append((f"d{i}", arch, f"u{u}", 1.0 * i + 0.1 * u,
                             0.1 * between * i + 0.01 * within * u))
    return _table(rows)


def test_the_constructed_table_is_what_melep_table_builds():
    rows = [("d0", "resnet", "u0", 0.4, 0.05), ("d0", "resnet", "u1", 0.6, -0.01)]
    scores = pd.DataFrame([{"upstream": u, "downstream": d, "arch": a, "seed": 0, "melep": m,
                            "leep_argmax": m, "records": 800, "path": "x.json"}
                           for d, a, u, m, _ in rows], columns=list(MELEP_SCORE_COLUMNS))
    transfer = pd.DataFrame([{"downstream": d, "arch": a, "upstream": u, "finetune_f1": 0.6 + x,
                              "delta": x, "low": x - 0.02, "high": x + 0.02}
                             for d, a, u, _, x in rows])
    built = melep_table(scores, {"paper": transfer})
    pd.testing.assert_frame_equal(built, _table(rows), check_dtype=False)


def test_differences_between_sets_alone_do_not_support_the_claim():
    runs = 200
    verdicts, pooled = [], []
    for run in range(runs):
        table = _between_sets_only(np.random.default_rng(run))
        (claim,) = melep_claims(table, PLAN, ["paper"])
        verdicts.append(claim.verdict)
        pooled.append(claim.extra["pooled_spearman"])
        if run < 3:  # the defect: the old pooled rule's interval lies wholly below 0
            corr = melep_correlations(table, n_boot=200, seed=run, level=PLAN.level)
            old = corr[(corr["selection"] == "paper") & (corr["score"] == "melep")
                       & (corr["arch"] == "all") & (corr["method"] == "spearman")].iloc[0]
            assert old["high"] < 0
    assert np.mean(pooled) < -0.6 and max(pooled) < -0.2
    assert NOT_TESTABLE not in verdicts  # 6 sets of 3 upstreams: smallest p 1/6**6
    # the test is exact at alpha; allow binomial noise over the runs (3 sd)
    limit = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / runs)
    assert verdicts.count(SUPPORTED) / runs <= limit
    assert verdicts.count(NOT_SUPPORTED) / runs <= limit
    assert verdicts.count(INCONCLUSIVE) / runs >= 1 - 2 * limit


def test_a_perfect_ranking_within_sets_supports_the_claim_whatever_the_pooled_r_says():
    # between sets, higher-MELEP sets gain more: the pooled r is positive
    table = _ranked(4, 3, within=-1, between=+1)
    (claim,) = melep_claims(table, PLAN, ["paper"])
    assert claim.verdict == SUPPORTED and claim.n_tests == 1
    assert claim.estimate == pytest.approx(-1.0)
    assert claim.low is None and claim.high is None
    assert claim.extra["per_set"] == pytest.approx({f"d{i}": -1.0 for i in range(4)})
    assert claim.extra["p_less"] == pytest.approx(1 / 6**4)  # exact, sets permuted jointly
    assert claim.extra["min_p"] == pytest.approx(1 / 6**4)
    assert claim.extra["exact"] is True and claim.extra["n_permutations"] == 6**4
    assert claim.extra["pooled_spearman"] > 0.5
    assert (claim.extra["ranking_hits"], claim.extra["ranking_groups"]) == (8, 8)
    assert claim.extra["ranking_p"] == pytest.approx(1 / 3**4)
    assert claim.sets == ("d0", "d1", "d2", "d3") and claim.pairings == 24
    assert "exact, all 1296 permutations" in claim.evidence
    assert "pooled over sets, differences between sets enter it" in claim.evidence
    json.dumps(claim.extra, allow_nan=False)


def test_a_reversed_ranking_within_sets_is_not_supported_though_the_pooled_r_is_negative():
    table = _ranked(4, 3, within=+1, between=-1)
    (claim,) = melep_claims(table, PLAN, ["paper"])
    assert claim.verdict == NOT_SUPPORTED and claim.estimate == pytest.approx(1.0)
    assert claim.extra["p_greater"] == pytest.approx(1 / 6**4)
    assert claim.extra["pooled_spearman"] < -0.5


def test_one_set_of_three_upstreams_is_not_testable_however_many_architectures():
    # 18 (arch, upstream) rows ranked perfectly, but the architectures share their upstreams:
    # the smallest p is 1/3! = 1/6, not 1/6**6
    table = _ranked(1, 3, within=-1, between=0, archs=tuple(f"a{i}" for i in range(6)))
    (claim,) = melep_claims(table, PLAN, ["paper"])
    assert claim.verdict == NOT_TESTABLE and claim.n_tests == 0
    assert claim.extra["min_p"] == pytest.approx(1 / 6)
    assert claim.estimate == pytest.approx(-1.0)
    assert "even a perfect ranking" in claim.evidence and f"alpha = {ALPHA:g}" in claim.evidence
    assert "d0 (3 upstreams x 6 architectures)" in claim.evidence
    assert "1 set(s) of 5 upstreams" in claim.rule and "3 set(s) of 3 upstreams" in claim.rule


def test_too_few_pairs_leave_no_set_to_test():
    table = _table([("d0", "resnet", "u0", 0.4, 0.05), ("d0", "resnet", "u1", 0.6, -0.01),
                    ("d1", "resnet", "u0", 0.5, 0.02)])
    (claim,) = melep_claims(table, PLAN, ["paper"])
    assert claim.verdict == NOT_TESTABLE and claim.estimate is None
    assert "3 (downstream, architecture, upstream) row(s)" in claim.evidence
    assert claim.extra["dropped_sets"] == {
        "d0": "fewer than 3 rows", "d1": "fewer than 2 upstreams: no choice of upstream to test"}
    json.dumps(claim.extra, allow_nan=False)


def test_no_melep_or_no_delta_in_a_selection_is_not_testable():
    for claim in melep_claims(None, PLAN, ["paper", "validation"]):
        assert claim.verdict == NOT_TESTABLE and claim.key == "melep"
        assert claim.evidence == "MELEP is not part of this run (config key melep.enabled)."
    paper, validation = melep_claims(_ranked(4, 3, within=-1, between=0), PLAN,
                                     ["paper", "validation"])
    assert (paper.selection, validation.selection) == ("paper", "validation")
    assert paper.verdict == SUPPORTED and validation.verdict == NOT_TESTABLE
    assert "0 (downstream, architecture, upstream) row(s)" in validation.evidence
    with pytest.raises(ValueError, match="selection 'best'"):
        melep_claims(_ranked(2, 3, within=-1, between=0), PLAN, ["best"])


def test_an_architecture_lacking_an_upstream_is_left_out_and_counted():
    table = _ranked(4, 3, within=-1, between=0)
    table = table[~((table["downstream"] == "d0") & (table["arch"] == "gru")
                    & (table["upstream"] == "u2"))]
    (claim,) = melep_claims(table, PLAN, ["paper"])
    assert claim.verdict == SUPPORTED and claim.pairings == 21 and claim.excluded == 2
    assert "2 row(s) of architectures lacking an upstream" in claim.evidence


def test_too_many_permutations_to_enumerate_use_monte_carlo_and_say_so():
    table = _ranked(6, 5, within=-1, between=0)  # 120**6 joint permutations
    (claim,) = melep_claims(table, PLAN, ["paper"], seed=3)
    assert claim.verdict == SUPPORTED and claim.extra["exact"] is False
    assert "Monte Carlo, 20000 random permutations" in claim.evidence
    assert claim.extra["p_less"] == pytest.approx(1 / 20001)


def test_the_per_seed_ranking_count_is_reported_when_given():
    ranking = pd.DataFrame([{c: None for c in RANKING_COLUMNS} | {
        "selection": "paper", "downstream": "d0", "arch": "resnet", "seed": s,
        "n_upstreams": 3, "chance": 1 / 3, "melep_hit": hit, "leep_argmax_hit": hit}
        for s, hit in ((0, True), (1, False))], columns=list(RANKING_COLUMNS))
    (claim,) = melep_claims(_ranked(4, 3, within=-1, between=0), PLAN, ["paper"], ranking)
    assert "Per seed: 1 of 2 (downstream, architecture, seed) case(s)" in claim.evidence
    assert (claim.extra["seed_hits"], claim.extra["seed_cases"]) == (1, 2)


def test_the_markdown_prints_the_claims_within_set_numbers_and_labels_the_pooled_r():
    table = _ranked(4, 3, within=-1, between=+1)
    (claim,) = melep_claims(table, PLAN, ["paper"])
    corr = melep_correlations(table, n_boot=50, seed=0, level=PLAN.level)
    ranking = pd.DataFrame(columns=list(RANKING_COLUMNS))
    md = melep_markdown(table, corr, ranking, level=PLAN.level)
    assert "## Correlation with Δ F1 within each downstream set" in md
    assert "## Pooled correlation with Δ F1 (reported, not the verdict)" in md
    within = next(line for line in md.splitlines() if line.startswith("| paper | MELEP |"))
    assert "d0 -1.000, d1 -1.000, d2 -1.000, d3 -1.000" in within
    assert f"{claim.extra['p_less']:.3g}" in within and "1296 (exact)" in within
    assert "8 of 8 (downstream, arch) group(s)" in md
    assert "validation selection, lowest MELEP: no group" in md
