"""The claim rules keep their promised false-support rate on simulated studies whose truth is
known, and find the paper's effects when they are there: a fast, seeded version of
``bench/verdicts.py``, which runs the same studies (1000 per null row, a 500-replicate
bootstrap) and whose table is in bench/README.md.

A rule "supports" a false claim in at most alpha = 2.5 % of studies (one-sided tests at the
plan's 95 % level). With ``runs`` studies the count of false supports is at most
Binomial(runs, alpha), so each null check allows the count that a calibrated rule exceeds with
chance ``TAIL``; each power check asks for the count that a rule of the stated power reaches
but with chance ``TAIL``. The bounds follow the number of runs, and they can fail: a rule that
always says "inconclusive" fails every power check, and the last checks show the null bound
catching an interval that leaves training randomness out and the old rules this study replaced.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
from collections import Counter
from functools import partial
from pathlib import Path
from types import ModuleType

import pytest
from scipy.stats import binom
from tiny_study import default_plan

from ecg_transfer.answer.rules import INCONCLUSIVE, SUPPORTED

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench" / "verdicts.py"
#: The chance that a check fails by the luck of the simulation alone (runs are seeded, so a
#: given code fails or passes for good; this is the chance of picking an unlucky seed).
TAIL = 1e-3
#: Bootstrap replicates per study here (the bench: 500).
N_BOOT = 200


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_verdicts", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def most_false_supports(runs: int, alpha: float) -> int:
    """The largest count of false supports a rule at level ``alpha`` reaches in ``runs``
    studies but with chance < TAIL."""
    return int(binom.ppf(1.0 - TAIL, runs, alpha))


def fewest_supports(runs: int, power: float) -> int:
    """The smallest count of supports a rule of ``power`` falls below with chance < TAIL."""
    return int(binom.ppf(TAIL, runs, power))


def supports(bench: ModuleType, study, runs: int, label: str) -> int:
    return bench.tally(study, runs).counts[label][SUPPORTED]


def test_the_bounds_are_tight_enough_to_fail():
    assert most_false_supports(400, 0.025) < 0.06 * 400
    assert fewest_supports(30, 0.9) > 0.6 * 30


def test_the_bench_judges_with_the_configs_default_plan(bench):
    plan = bench.PLAN
    assert plan == default_plan()
    assert plan.alpha == pytest.approx(0.025)


def test_the_simulated_gain_is_the_gain_asked_for(bench):
    world = bench.World()
    skill = bench.skill_for_gain(world, 1.15, bench.SMALL_GAIN)
    delta, se, seed_sd = bench.monte_carlo_delta(world, 1.15, skill, records=5000, seeds=40)
    assert abs(delta - bench.SMALL_GAIN) < 4 * se + 0.002
    assert seed_sd == pytest.approx(world.seed_sd, abs=0.01)


def test_small_set_claim_rarely_supports_a_gain_that_is_not_there(bench):
    runs = 400
    study = partial(bench.small_set_study, delta=0.0, records=100, n_seeds=3, n_boot=N_BOOT,
                    seed=101)
    assert supports(bench, study, runs, "small_set_gain") <= most_false_supports(runs,
                                                                                 bench.ALPHA)


def test_small_set_claim_finds_the_papers_gain_of_0_14(bench):
    runs = 30
    study = partial(bench.small_set_study, delta=bench.PAPER_GAIN, records=100, n_seeds=3,
                    n_boot=N_BOOT, seed=102)
    assert supports(bench, study, runs, "small_set_gain") >= fewest_supports(runs, 0.9)


def test_vanishing_claim_rarely_calls_a_gain_of_the_margin_vanished(bench):
    runs = 200
    study = partial(bench.vanishes_study, delta=bench.PLAN.margin_f1, records=300, n_seeds=10,
                    n_boot=N_BOOT, seed=103)
    assert supports(bench, study, runs, "vanishes_largest") <= most_false_supports(runs,
                                                                                   bench.ALPHA)


def test_vanishing_claim_rarely_calls_a_gain_of_0_044_vanished_where_the_old_rule_did(bench):
    runs = 400
    study = partial(bench.vanishes_study, delta=bench.SMALL_GAIN, records=38, n_seeds=3,
                    n_boot=N_BOOT, seed=104)
    tally = bench.tally(study, runs)
    limit = most_false_supports(runs, bench.ALPHA)
    assert tally.counts["vanishes_largest"][SUPPORTED] <= limit
    assert tally.counts[bench.OLD_MEAN][SUPPORTED] > limit  # "the interval includes 0"
    assert tally.counts[bench.OLD_ONE][SUPPORTED] > limit


def test_gain_trend_rarely_supports_a_gain_that_does_not_shrink(bench):
    runs = 200
    study = partial(bench.trend_study, delta_small=bench.SMALL_GAIN, delta_large=bench.SMALL_GAIN,
                    records=(100, 300), n_seeds=3, n_boot=N_BOOT, seed=105)
    assert supports(bench, study, runs, "gain_trend") <= most_false_supports(runs, bench.ALPHA)


def test_families_claim_rarely_supports_cnns_when_the_families_gain_alike(bench):
    runs = 200
    study = partial(bench.families_study, family_gain=0.04, arch_sd=0.03, records=100,
                    n_seeds=3, n_boot=N_BOOT, seed=106)
    assert supports(bench, study, runs, "families") <= most_false_supports(runs, bench.ALPHA)


def test_convergence_claims_hold_alpha_and_find_30_epochs_without_seed_noise(bench):
    common = {"clusters": (3, 3), "upstreams": 2, "n_seeds": 3, "epoch_sd": 0.015,
              "n_boot": N_BOOT}
    runs = 1000
    null = bench.tally(partial(bench.convergence_study, saving=0.0, gap=0.0, seed_sd=0.03,
                               seed=107, **common), runs)
    assert null.counts["faster"][SUPPORTED] <= most_false_supports(runs, bench.ALPHA)
    assert null.counts["faster_by_paper"][SUPPORTED] <= most_false_supports(runs, bench.ALPHA)
    runs = 30
    found = bench.tally(partial(bench.convergence_study, saving=30.0, gap=0.0, seed_sd=0.0,
                                seed=108, **common), runs)
    assert found.counts["faster"][SUPPORTED] >= fewest_supports(runs, 0.9)


def test_melep_within_set_test_rarely_supports_without_within_set_information(bench):
    runs = 500
    tally = bench.tally(partial(bench.melep_study, within=0.0, n_boot=N_BOOT, seed=109), runs)
    limit = most_false_supports(runs, bench.ALPHA)
    assert tally.counts["melep_ranks"][SUPPORTED] <= limit
    assert tally.counts[bench.OLD_POOLED][SUPPORTED] > limit  # the pooled Spearman rule


def test_the_null_bound_catches_an_interval_without_training_randomness(bench):
    """With one seed the interval leaves training randomness out (the claim says so): the
    same bound flags it, so the null checks above are not vacuous."""
    runs = 100
    study = partial(bench.small_set_study, delta=0.0, records=300, n_seeds=1, n_boot=N_BOOT,
                    seed=110)
    assert supports(bench, study, runs, "small_set_gain") > most_false_supports(runs,
                                                                                bench.ALPHA)


def test_the_bench_fails_a_null_row_above_its_limit_and_passes_one_below(bench):
    runs = 1000
    limit = bench.null_limit(runs)
    scenario = bench.Scenario("x", "delta = 0", "100", "3", print,
                              {"small_set_gain": bench.NULL}, runs)
    for rate, failed in ((limit + 0.005, True), (limit - 0.005, False)):
        tally = bench.Tally(runs)
        k = round(rate * runs)
        tally.counts["small_set_gain"] = Counter({SUPPORTED: k, INCONCLUSIVE: runs - k})
        tally.sums["small_set_gain"] = 0.0
        lines, failures = bench.table_rows([scenario], [tally])
        assert bool(failures) is failed
        assert ("**EXCEEDS**" in lines[-1]) is failed


def test_the_quick_bench_runs_end_to_end(bench):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = bench.main(["--quick", "--only", "6.", "--jobs", "1"])
    assert status == 0
    assert "| 6. MELEP | melep_ranks |" in out.getvalue()
    assert "- **melep_ranks**: worst false support" in out.getvalue()
