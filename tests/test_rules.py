"""The study's decision rules (answer/rules.py) on constructed intervals whose answer is known,
each defect of the old rules first reproduced: an interval that includes 0 read as "no gain", a
crossover at the first size whose interval includes 0, a one-record test split judged."""

from __future__ import annotations

import pytest
from tiny_study import default_plan

from ecg_transfer.answer.rules import (
    CONTRADICTED,
    INCONCLUSIVE,
    NOT_SUPPORTED,
    NOT_TESTABLE,
    SUPPORTED,
    Plan,
    at_or_below_constant,
    crossover,
    equivalent,
    gain,
    in_paper_range,
    melep_ranks,
    near_paper_size,
    split_too_small,
)

PLAN = default_plan()


def test_an_interval_that_includes_zero_but_reaches_past_the_margin_is_inconclusive() -> None:
    # the demo's "gain vanishes: supported" with Δ +0.020 [-0.010, +0.050]
    assert equivalent(-0.010, 0.050, 0.02) == INCONCLUSIVE


def test_equivalence_needs_the_whole_interval_inside_the_margin() -> None:
    assert equivalent(-0.015, 0.019, 0.02) == SUPPORTED
    assert equivalent(0.005, 0.015, 0.02) == SUPPORTED  # excludes 0, still negligible
    assert equivalent(0.02, 0.09, 0.02) == CONTRADICTED
    assert equivalent(-0.09, -0.02, 0.02) == CONTRADICTED
    assert equivalent(0.01, 0.09, 0.02) == INCONCLUSIVE


def test_a_one_sided_gain_is_supported_above_zero_and_not_supported_below_the_margin() -> None:
    assert gain(0.01, 0.2, 0.02) == SUPPORTED
    assert gain(-0.05, 0.019, 0.02) == NOT_SUPPORTED
    assert gain(-0.3, -0.1, 0.02) == NOT_SUPPORTED
    assert gain(-0.01, 0.05, 0.02) == INCONCLUSIVE


def test_the_paper_magnitude_is_judged_against_30_to_35_epochs_with_the_margin() -> None:
    assert in_paper_range(27.0, 38.0, 5.0) == SUPPORTED
    assert in_paper_range(2.0, 12.0, 5.0) == CONTRADICTED
    assert in_paper_range(15.0, 33.0, 5.0) == INCONCLUSIVE
    assert in_paper_range(45.0, 60.0, 5.0) == CONTRADICTED


def test_the_crossover_is_where_every_larger_size_is_equivalent_not_the_first_wide_one() -> None:
    sizes = [30, 60, 120, 295]
    # the demo's curve: the smallest size's interval includes 0 (wide), the largest excludes it
    demo = [(-0.05, 0.20), (0.01, 0.15), (-0.01, 0.08), (0.01, 0.06)]
    assert crossover(sizes, demo, 0.02) is None
    vanishing = [(0.05, 0.20), (0.01, 0.09), (-0.015, 0.015), (-0.01, 0.012)]
    assert crossover(sizes, vanishing, 0.02) == 120
    back = [(0.05, 0.20), (-0.01, 0.01), (0.03, 0.09), (-0.01, 0.01)]
    assert crossover(sizes, back, 0.02) == 295


def test_a_test_split_of_one_record_is_not_testable() -> None:
    assert "1 record" in split_too_small(1, [1, 0], PLAN)
    assert "min_class_positives" in split_too_small(100, [2, 4], PLAN)
    assert split_too_small(100, [2, 40], PLAN) is None


def test_melep_is_not_testable_when_no_permutation_could_reach_the_level() -> None:
    assert melep_ranks(1 / 6, 1.0, 1 / 6, PLAN.alpha) == NOT_TESTABLE
    assert melep_ranks(0.004, 0.99, 1 / 216, PLAN.alpha) == SUPPORTED
    assert melep_ranks(0.99, 0.004, 1 / 216, PLAN.alpha) == NOT_SUPPORTED
    assert melep_ranks(0.3, 0.7, 1 / 216, PLAN.alpha) == INCONCLUSIVE


def test_failed_training_is_both_arms_at_or_below_the_constant_predictor() -> None:
    assert at_or_below_constant(0.49, 0.50, 0.50)
    assert not at_or_below_constant(0.49, 0.60, 0.50)


def test_near_6000_is_the_closest_size_within_a_factor_of_1_5() -> None:
    assert near_paper_size([1000, 4500, 7000, 12000]) == 7000
    assert near_paper_size([1000, 3000, 10000]) is None


def test_one_sided_tests_run_at_half_of_one_minus_the_level() -> None:
    assert PLAN.alpha == pytest.approx(0.025)


@pytest.mark.parametrize(("change", "message"), [
    ({"level": 1.2}, "results.level"),
    ({"margin_f1": -0.1}, "results.margin_f1"),
    ({"min_test_records": 0}, "results.min_test_records"),
])
def test_a_bad_plan_names_the_config_key(change, message) -> None:
    with pytest.raises(ValueError, match=message):
        Plan(**{**PLAN.as_dict(), **change})
