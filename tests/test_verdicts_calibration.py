"""The claim rules keep their promised false-support rate on simulated studies whose truth is
known: a fast, seeded version of ``bench/verdicts.py`` (which runs the same scenarios with
1000 studies each and a larger bootstrap).

A rule "supports" a claim that is false in at most alpha = 2.5 % of studies (one-sided tests at
the plan's 95 % level); with ``runs`` studies the observed rate may exceed it by simulation
error, so each check allows alpha + 3 SE. The checks can fail: the last tests show the same
check catching a rule that leaves training randomness out, and the old rules this study
replaced.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import partial
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "verdicts.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_verdicts", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def test_the_simulated_gain_is_the_gain_asked_for(bench):
    world = bench.World()
    skill = bench.skill_for_gain(world, 1.15, bench.SMALL_GAIN)
    delta, se, seed_sd = bench.monte_carlo_delta(world, 1.15, skill, records=5000, seeds=40)
    assert abs(delta - bench.SMALL_GAIN) < 4 * se + 0.002
    assert seed_sd == pytest.approx(world.seed_sd, abs=0.01)


def test_small_set_claim_rarely_supports_a_gain_that_is_not_there(bench):
    runs = 400
    study = partial(bench.small_set_study, delta=0.0, records=100, n_seeds=3, n_boot=200,
                    seed=101)
    tally = bench.tally(study, runs)
    assert tally.rate("small_set_gain") <= bench.null_limit(runs)


def test_small_set_claim_finds_the_papers_gain(bench):
    study = partial(bench.small_set_study, delta=bench.PAPER_GAIN, records=100, n_seeds=3,
                    n_boot=200, seed=102)
    assert bench.tally(study, 30).rate("small_set_gain") >= 0.9


def test_vanishing_claim_rarely_calls_a_gain_of_0_044_vanished_where_the_old_rule_did(bench):
    runs = 400
    study = partial(bench.vanishes_study, delta=bench.SMALL_GAIN, records=38, n_seeds=3,
                    n_boot=200, seed=103)
    tally = bench.tally(study, runs)
    assert tally.rate("vanishes_largest") <= bench.null_limit(runs)
    assert tally.rate(bench.OLD_MEAN) > 0.3


def test_melep_within_set_test_rarely_supports_without_within_set_information(bench):
    runs = 500
    tally = bench.tally(partial(bench.melep_study, within=0.0, n_boot=200, seed=104), runs)
    assert tally.rate("melep_ranks") <= bench.null_limit(runs)
    assert tally.rate(bench.OLD_POOLED) > 0.9


def test_the_check_catches_an_interval_without_training_randomness(bench):
    """With one seed the interval leaves training randomness out (the claim says so): the
    same check flags it, so the checks above are not vacuous."""
    runs = 100
    study = partial(bench.small_set_study, delta=0.0, records=300, n_seeds=1, n_boot=200,
                    seed=105)
    assert bench.tally(study, runs).rate("small_set_gain") > bench.null_limit(runs)
