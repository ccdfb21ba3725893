"""Unit tests of the within-set permutation tests of MELEP (answer.permutation), on constructed
tables whose answer is known: by hand, by brute force over permutations, or by simulation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from ecg_transfer.answer.permutation import ranking_hits, within_set_correlation

COLUMNS = ("downstream", "arch", "upstream", "score", "delta")


def _table(rows: list[tuple], columns: tuple[str, ...] = COLUMNS) -> dict[str, list]:
    return {c: [r[i] for r in rows] for i, c in enumerate(columns)}


def _one_arch(scores: list[float], deltas: list[float]) -> dict[str, list]:
    """One downstream set, one architecture, upstreams u0, u1, ... in order."""
    return _table([("d", "a", f"u{i}", s, v)
                   for i, (s, v) in enumerate(zip(scores, deltas, strict=True))])


def _simulated(rng: np.random.Generator, *, within: float) -> dict[str, list]:
    """Three downstream sets whose MELEP level (1, 2, 3) and Δ level (0.3, 0.2, 0.1) fall
    together, two architectures and four upstreams each. ``within`` is how much Δ follows
    -MELEP inside a set (0: not at all)."""
    rows = []
    for s, (level, gain) in enumerate([(1.0, 0.3), (2.0, 0.2), (3.0, 0.1)]):
        for arch in ("a", "b"):
            for u in range(4):
                score = level + rng.normal(0, 0.1)
                delta = gain - within * (score - level) + rng.normal(0, 0.01)
                rows.append((f"d{s}", arch, f"u{u}", score, delta))
    return _table(rows)


def _brute_force(table: dict[str, list], *, joint: bool) -> tuple[float, float]:
    """(p_less, p_greater) of the mean per-set Spearman by enumerating every relabelling with
    scipy, permuting upstreams jointly across a set's architectures or per architecture."""
    sets = sorted(set(table["downstream"]))
    rows = {(d, a, u): (s, v) for d, a, u, s, v in zip(*(table[c] for c in COLUMNS),
                                                       strict=True)}
    units = []  # (set, archs permuted together, upstreams)
    for d in sets:
        archs = sorted({a for dd, a, _ in rows if dd == d})
        ups = sorted({u for dd, _, u in rows if dd == d})
        units += [(d, archs, ups)] if joint else [(d, [a], ups) for a in archs]

    def statistic(perms: tuple[tuple[int, ...], ...]) -> float:
        moved = {}
        for (d, archs, ups), perm in zip(units, perms, strict=True):
            for a in archs:
                for i, u in enumerate(ups):
                    moved[d, a, u] = (rows[d, a, ups[perm[i]]][0], rows[d, a, u][1])
        return float(np.mean([spearmanr(*zip(*[v for k, v in moved.items() if k[0] == d],
                                              strict=True)).statistic for d in sets]))

    identity = tuple(tuple(range(len(ups))) for _, _, ups in units)
    observed = statistic(identity)
    every = [statistic(p) for p in itertools.product(
        *(itertools.permutations(range(len(ups))) for _, _, ups in units))]
    return (float(np.mean([t <= observed + 1e-9 for t in every])),
            float(np.mean([t >= observed - 1e-9 for t in every])))


# --------------------------------------------------------------------------------------------
# within_set_correlation


def test_differences_between_sets_alone_do_not_make_the_test_reject():
    rng = np.random.default_rng(2026)
    n_tables = 200
    p_less, pooled = [], []
    for _ in range(n_tables):
        table = _simulated(rng, within=0.0)
        result = within_set_correlation(table)
        assert result.exact
        p_less.append(result.p_less)
        pooled.append(spearmanr(table["score"], table["delta"]).statistic)
    assert np.median(pooled) < -0.7  # the pooled correlation is fooled
    se_05 = math.sqrt(0.05 * 0.95 / n_tables)
    assert np.mean(np.array(p_less) <= 0.05) <= 0.05 + 3 * se_05
    se_50 = math.sqrt(0.5 * 0.5 / n_tables)
    assert abs(np.mean(np.array(p_less) <= 0.5) - 0.5) <= 3 * se_50


def test_delta_following_minus_melep_within_each_set_gives_a_small_p_and_a_statistic_near_minus_1():
    result = within_set_correlation(_simulated(np.random.default_rng(7), within=1.0))
    assert result.statistic < -0.9
    assert set(result.per_set) == {"d0", "d1", "d2"}
    assert result.n_sets == 3 and result.n_pairs == 24
    assert result.exact and result.n_permutations == 24**3
    assert result.p_less < 0.001 and result.p_value == result.p_less
    assert result.p_greater > 0.99
    assert result.min_p == pytest.approx(1 / 24**3)


def test_one_set_one_arch_three_upstreams_matches_the_hand_count_over_6_permutations():
    # score ranks 1 2 3 against delta ranks 3 1 2: rho = 1 - 6 * 6 / (3 * 8) = -0.5. Of the
    # 6 relabellings, rho is 1, 0.5, 0.5, -0.5, -0.5, -1: three are <= -0.5, five >= -0.5.
    result = within_set_correlation(_one_arch([1, 2, 3], [0.3, 0.1, 0.2]))
    assert result.statistic == pytest.approx(-0.5)
    assert result.per_set == {"d": pytest.approx(-0.5)}
    assert result.p_less == pytest.approx(3 / 6)
    assert result.p_greater == pytest.approx(5 / 6)
    assert result.min_p == pytest.approx(1 / 6)
    assert result.exact and result.n_permutations == 6
    # perfect agreement is the most extreme of the 6, and still not below 1/6
    assert within_set_correlation(_one_arch([1, 2, 3], [0.3, 0.2, 0.1])).p_less == \
        pytest.approx(1 / 6)


def test_tied_deltas_raise_the_smallest_attainable_p():
    # u0 and u1 tie on delta: swapping their scores gives the same rho, so 2 of 6 reach the
    # minimum rho = -1.5 / sqrt(3).
    result = within_set_correlation(_one_arch([1, 2, 3], [0.3, 0.3, 0.1]))
    assert result.statistic == pytest.approx(-1.5 / math.sqrt(3))
    assert result.min_p == pytest.approx(2 / 6)
    assert result.p_less == pytest.approx(2 / 6)
    greater = within_set_correlation(_one_arch([1, 2, 3], [0.3, 0.3, 0.1]),
                                     alternative="greater")
    assert greater.p_value == greater.p_greater == pytest.approx(1.0)
    assert greater.min_p == pytest.approx(2 / 6)


def test_architectures_of_a_set_share_one_permutation_of_the_upstreams():
    # Two architectures whose six (MELEP, Δ) pairs fall in perfectly reversed order: only the
    # identity gives rho = -1. One permutation for both: p = 1/6; one per architecture would
    # be 1/36.
    table = _table([("d", "a", "u0", 1.0, 0.6), ("d", "a", "u1", 2.0, 0.4),
                    ("d", "a", "u2", 3.0, 0.2), ("d", "b", "u0", 1.5, 0.5),
                    ("d", "b", "u1", 2.5, 0.3), ("d", "b", "u2", 3.5, 0.1)])
    result = within_set_correlation(table)
    assert result.statistic == pytest.approx(-1.0)
    assert result.p_less == pytest.approx(1 / 6) == _brute_force(table, joint=True)[0]
    assert _brute_force(table, joint=False)[0] == pytest.approx(1 / 36)
    assert result.min_p == pytest.approx(1 / 6)


def test_exact_p_values_match_brute_force_over_two_sets_with_scipy_spearman():
    rng = np.random.default_rng(11)
    rows = [(d, a, f"u{u}", float(rng.normal()), float(rng.normal()))
            for d in ("d0", "d1") for a in ("a", "b") for u in range(3)]
    table = _table(rows)
    result = within_set_correlation(table)
    for d in ("d0", "d1"):
        idx = [i for i, x in enumerate(table["downstream"]) if x == d]
        r = spearmanr(np.array(table["score"])[idx], np.array(table["delta"])[idx]).statistic
        assert result.per_set[d] == pytest.approx(r)
    assert (result.p_less, result.p_greater) == pytest.approx(_brute_force(table, joint=True))
    assert result.n_permutations == 36


def test_monte_carlo_agrees_with_exact_and_is_reproducible_with_its_seed():
    rng = np.random.default_rng(3)
    rows = []
    for d in ("d0", "d1"):
        for a in ("a", "b"):
            for u in range(5):
                score = float(rng.normal())
                rows.append((d, a, f"u{u}", score, -0.3 * score + float(rng.normal())))
    table = _table(rows)
    exact = within_set_correlation(table)
    assert exact.exact and exact.n_permutations == 120**2
    n = 20_000
    mc = within_set_correlation(table, max_exact=1000, n_perm=n, seed=5)
    assert not mc.exact and mc.n_permutations == n
    assert mc.statistic == exact.statistic
    for got, want in ((mc.p_less, exact.p_less), (mc.p_greater, exact.p_greater)):
        assert abs(got - want) <= 4 * math.sqrt(want * (1 - want) / n) + 1 / n
    assert mc.min_p == pytest.approx(exact.min_p)  # 1/14400 > 1/(n + 1)
    assert within_set_correlation(table, max_exact=1000, n_perm=n, seed=5) == mc
    assert within_set_correlation(table, max_exact=1000, n_perm=n, seed=6).p_less != mc.p_less


def test_monte_carlo_p_is_never_zero():
    result = within_set_correlation(_simulated(np.random.default_rng(7), within=1.0),
                                    max_exact=0, n_perm=99)
    assert result.p_less == pytest.approx(1 / 100)
    assert result.min_p == pytest.approx(1 / 100)


def test_incomplete_architectures_and_untestable_sets_are_dropped_with_reasons():
    rows = [("d", a, u, s, v) for a, u, s, v in [
        ("a", "u0", 1, 0.3), ("a", "u1", 2, 0.2), ("a", "u2", 3, 0.1),
        ("b", "u0", 1, 0.3), ("b", "u1", 2, 0.2)]]  # b lacks u2
    rows += [("one", "a", "u0", 1, 0.1), ("one", "b", "u0", 2, 0.2)]  # one upstream
    rows += [("flat", "a", f"u{u}", u, 0.5) for u in range(3)]  # constant delta
    rows += [("pair", "a", "u0", 1, 0.1), ("pair", "a", "u1", 2, 0.2)]  # 2 rows
    result = within_set_correlation(_table(rows))
    assert result.n_sets == 1 and result.n_pairs == 3
    assert result.n_pairs + len(result.dropped_rows) == len(rows)
    assert [(r.arch, r.upstream) for r in result.dropped_rows if r.downstream == "d"] == \
        [("b", "u0"), ("b", "u1")]
    assert "'u2'" in result.dropped_rows[0].reason
    assert set(result.dropped_sets) == {"one", "flat", "pair"}
    assert "upstream" in result.dropped_sets["one"]
    assert "delta is constant" in result.dropped_sets["flat"]
    assert "fewer than 3 rows" in result.dropped_sets["pair"]


def test_no_testable_set_gives_nan_and_a_min_p_of_1():
    result = within_set_correlation(_one_arch([1, 2], [0.2, 0.1]))
    assert math.isnan(result.statistic) and math.isnan(result.p_less)
    assert result.min_p == 1.0 and result.n_sets == 0


def test_a_dataframe_and_a_mapping_of_arrays_give_the_same_result():
    table = _simulated(np.random.default_rng(1), within=0.5)
    assert within_set_correlation(pd.DataFrame(table)) == within_set_correlation(
        {c: np.asarray(v) for c, v in table.items()})


@pytest.mark.parametrize(("column", "change"), [
    ("delta", "drop"), ("score", "nan"), ("delta", "nan"), ("upstream", "none")])
def test_a_missing_column_or_value_is_an_error_naming_the_column(column, change):
    table = _one_arch([1, 2, 3], [0.3, 0.2, 0.1])
    if change == "drop":
        del table[column]
    else:
        table[column][1] = math.nan if change == "nan" else None
    with pytest.raises(ValueError, match=f"'{column}'"):
        within_set_correlation(table)


def test_a_repeated_row_or_a_bad_alternative_is_an_error():
    table = _table([("d", "a", "u0", 1, 0.3)] * 2 + [("d", "a", "u1", 2, 0.2)])
    with pytest.raises(ValueError, match="same"):
        within_set_correlation(table)
    with pytest.raises(ValueError, match="alternative"):
        within_set_correlation(_one_arch([1, 2, 3], [3, 2, 1]), alternative="two-sided")


# --------------------------------------------------------------------------------------------
# ranking_hits

RANK_COLUMNS = ("downstream", "arch", "upstream", "score", "finetune_f1")


def test_ranking_hits_counts_architectures_of_a_set_as_one_permutation():
    # Set d: in both architectures u0 has the lowest MELEP and the best F1 (2 hits). Both hit
    # together exactly when the permutation sends u0's score back to u0: 2 of 6, so
    # P(>= 2) = 1/3, not the (1/3)**2 of independent architectures. Set e (one arch, two
    # upstreams, its lowest score on the worse upstream: 0 hits) hits with probability 1/2.
    rows = [("d", a, u, s, f) for a in ("a", "b")
            for u, s, f in (("u0", 1, 0.9), ("u1", 2, 0.8), ("u2", 3, 0.7))]
    result = ranking_hits(_table(rows, RANK_COLUMNS))
    assert (result.hits, result.n, result.n_sets) == (2, 2, 1)
    assert result.exact and result.n_permutations == 6
    assert result.p_value == pytest.approx(1 / 3)
    assert result.expected == pytest.approx(2 / 3)
    assert result.min_p == pytest.approx(1 / 3)
    rows += [("e", "a", "u0", 1, 0.5), ("e", "a", "u1", 2, 0.6)]
    both = ranking_hits(_table(rows, RANK_COLUMNS))
    assert (both.hits, both.n, both.n_permutations) == (2, 3, 12)
    # d hits 0 or 2 and e at most 1, so 2 or more needs d's 2: 1/3
    assert both.p_value == pytest.approx(1 / 3)
    assert both.min_p == pytest.approx(1 / 6)  # d hits 2 and e hits 1


def test_ranking_hits_monte_carlo_agrees_with_the_exact_convolution():
    rng = np.random.default_rng(4)
    rows = [(d, a, f"u{u}", float(rng.normal()), float(rng.normal()))
            for d in ("d0", "d1", "d2") for a in ("a", "b", "c") for u in range(4)]
    table = _table(rows, RANK_COLUMNS)
    exact = ranking_hits(table)
    n = 20_000
    mc = ranking_hits(table, max_exact=10, n_perm=n, seed=2)
    assert exact.exact and not mc.exact and mc.hits == exact.hits
    assert abs(mc.p_value - exact.p_value) <= 4 * math.sqrt(
        exact.p_value * (1 - exact.p_value) / n) + 1 / n
    assert mc.expected == pytest.approx(exact.expected, abs=0.05)
    assert ranking_hits(table, max_exact=10, n_perm=n, seed=2) == mc


def test_ranking_hits_tied_best_f1_always_hits():
    rows = [("d", "a", u, s, 0.5) for u, s in (("u0", 1), ("u1", 2), ("u2", 3))]
    result = ranking_hits(_table(rows, RANK_COLUMNS))
    assert (result.hits, result.p_value, result.expected) == (1, 1.0, 1.0)


def test_ranking_hits_rejects_a_missing_finetune_f1():
    table = _table([("d", "a", "u0", 1, 0.5), ("d", "a", "u1", 2, math.nan)], RANK_COLUMNS)
    with pytest.raises(ValueError, match="'finetune_f1'"):
        ranking_hits(table)
    del table["finetune_f1"]
    with pytest.raises(ValueError, match="'finetune_f1'"):
        ranking_hits(table)
