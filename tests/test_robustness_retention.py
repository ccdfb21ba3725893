"""Robustness judged on the skill a model keeps, not on what it loses (issue 18, item 9).

The inputs are built by hand as robustness.RobustnessSet objects, so the truth is known: a
scratch model at the constant predictor cannot lose F1, and the claims must not read that as
"fine-tuned models are less robust".
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from tiny_study import default_plan

from ecg_transfer.answer import rules
from ecg_transfer.answer.robustness import (
    CLEAN,
    PAIR_COLUMNS,
    RobustnessSet,
    RobustnessTables,
    _set_replicates,
    robustness_claims,
    robustness_markdown,
    robustness_tables,
)
from ecg_transfer.answer.rules import Plan
from ecg_transfer.answer.verdicts import Claim
from ecg_transfer.metrics import constant_baseline_f1, weighted_f1

BOOT = {"n_boot": 200, "seed": 0, "level": 0.95}
CONDITIONS = ((CLEAN, math.nan), ("emg", 24.0), ("emg", 6.0), ("lead_dropout", 3.0))
HARSHEST = (2, 3)  # emg at 6 dB, lead_dropout at 3 leads


def _plan(level: float = 0.95, margin_f1: float = 0.02,
          margin_retention: float = 0.05) -> Plan:
    return default_plan(level=level, margin_f1=margin_f1, margin_retention=margin_retention,
                        min_test_records=1, min_class_positives=1)


def _labels(seed: int, n: int = 300) -> np.ndarray:
    y = (np.random.default_rng(seed).random((n, 3)) < [0.5, 0.3, 0.4]).astype(np.int8)
    y[:2] = [[1, 1, 1], [0, 0, 0]]
    return y


def _confident(y: np.ndarray, wrong: int = 0) -> np.ndarray:
    """0.9 where the label is 1, 0.1 where 0, every label flipped on the first ``wrong`` rows."""
    p = np.where(y == 1, 0.9, 0.1)
    p[:wrong] = 1.0 - p[:wrong]
    return p


def _constant(y: np.ndarray, right: int = 0) -> np.ndarray:
    """The all-positive predictor (the best constant one), right on the first ``right`` rows."""
    p = np.full(y.shape, 0.9)
    p[:right] = _confident(y[:right])
    return p


def _set(name: str, y: np.ndarray, models: dict[tuple[str, str, str, int], list[np.ndarray]]
         ) -> RobustnessSet:
    """One downstream set; each model's list holds its probabilities under CONDITIONS."""
    ids = np.array([f"{name}_{i}" for i in range(len(y))])
    return RobustnessSet(name, Path(f"{name}.npz"), ids, y, ("NORM", "MI", "STTC"), CONDITIONS,
                         {k: np.stack(v).astype(np.float16) for k, v in models.items()})


def _claims(tables: RobustnessTables | None, plan: Plan | None = None) -> dict[str, Claim]:
    return {c.key: c for c in robustness_claims(tables, plan or _plan())}


def _defect(y: np.ndarray, right: int) -> RobustnessSet:
    """Scratch sits at (right=0) or just above (right>0) the constant predictor when clean and
    at it under every perturbation; the fine-tuned model is perfect when clean and loses a
    fifth of its rows under every perturbation, staying well above scratch."""
    ft = [_confident(y)] + [_confident(y, len(y) // 5)] * 3
    scratch = [_constant(y, right)] + [_constant(y)] * 3
    return _set("small", y, {("finetune", "ptbxl", "cnn", 0): ft,
                             ("scratch", "", "cnn", 0): scratch})


# --------------------------------------------------------------------------------------------
# The defect


def test_a_scratch_model_at_the_constant_predictor_does_not_make_fine_tuning_look_less_robust():
    y = _labels(0)
    tables = robustness_tables([_defect(y, right=30)], **BOOT)
    harsh = tables.pairs[tables.pairs["harshest"]]
    # the old rule: fine-tuned "degrades more", clearly, so it would not support robustness
    assert tables.harshest.high < 0
    assert (harsh["finetune_degradation"] < harsh["scratch_degradation"]).all()
    # yet the fine-tuned model scores higher at every level and keeps more of its skill
    assert (tables.pairs["f1_difference_low"] > 0).all()
    assert harsh["scratch_retention"].to_numpy() == pytest.approx(0.0)
    assert (harsh["finetune_retention"] > 0.3).all()
    claims = _claims(tables)
    assert claims["robustness_retention"].verdict == rules.SUPPORTED
    assert claims["robustness_f1"].verdict == rules.SUPPORTED
    for c in claims.values():
        assert c.low > 0 and c.n_tests == 1 and c.selection is None
        assert "reported, not the verdict: -0." in c.evidence
        assert c.extra["degradation_difference"] == pytest.approx(tables.harshest.delta)


def test_a_scratch_model_exactly_at_the_constant_has_no_retention_and_the_f1_claim_decides():
    y = _labels(0)
    tables = robustness_tables([_defect(y, right=0)], **BOOT)
    pairs = tables.pairs
    assert pairs["scratch_clean_f1"].to_numpy() == pytest.approx(constant_baseline_f1(y, y))
    assert not pairs["retention_defined"].any()
    assert pairs["retention_difference"].isna().all()
    assert pairs["scratch_retention"].isna().all() and pairs["finetune_retention"].notna().all()
    assert tables.harshest.high < 0  # the old rule: "fine-tuned models degrade more"
    claims = _claims(tables)
    retention = claims["robustness_retention"]
    assert retention.verdict == rules.NOT_TESTABLE and retention.excluded == 1
    assert "at or below the constant predictor" in retention.evidence
    assert "cnn from ptbxl on small" in retention.evidence
    assert claims["robustness_f1"].verdict == rules.SUPPORTED
    assert "undefined" in robustness_markdown(tables, level=0.95)


def test_a_test_split_too_small_to_judge_makes_both_claims_not_testable_as_the_paper_s_are():
    # A downstream set of one's own with 5 test records gave a robustness verdict while every
    # paper claim on the same set was not testable (issue 20's recipe on 15 genuine records).
    y = _labels(0, n=20)
    tables = robustness_tables([_defect(y, right=3)], **BOOT)
    assert tables.splits == {"small": (20, tuple(int(n) for n in y.sum(axis=0)))}
    assert _claims(tables, _plan())["robustness_f1"].verdict != rules.NOT_TESTABLE
    plan = default_plan(min_test_records=30, min_class_positives=5)
    for claim in _claims(tables, plan).values():
        assert claim.verdict == rules.NOT_TESTABLE and claim.n_tests == 0
        assert "small: its test split has 20 record(s); a claim needs at least 30" in \
            claim.evidence
    # pooled with a set large enough, the claim is judged on both, as the paper's pooled claims
    # (CNN vs RNN) are
    big = replace(_defect(_labels(1), right=30), downstream="big")
    pooled = robustness_tables([_defect(y, right=3), big], **BOOT)
    assert _claims(pooled, plan)["robustness_f1"].verdict != rules.NOT_TESTABLE


# --------------------------------------------------------------------------------------------
# The arithmetic


def _seeded_study() -> list[RobustnessSet]:
    """Two downstream sets, the first with two architectures, the second with one (so a mean
    over pairs and a mean over sets differ); several seeds of different counts."""
    sets = []
    for s, name in enumerate(("large", "small")):
        y = _labels(10 + s, 240 if s else 180)
        rng = np.random.default_rng(20 + s)

        models = {}
        for arch, skill in (("cnn", 0.5), ("gru", 0.3))[:2 - s]:
            for regime, up, n_seeds, extra in (("finetune", "ptbxl", 2, 0.2),
                                               ("scratch", "", 3, 0.0)):
                for seed in range(n_seeds):
                    models[regime, up, arch, seed] = _noisy(y, skill + extra, rng)
        sets.append(_set(name, y, models))
    return sets


def _noisy(y: np.ndarray, skill: float, rng: np.random.Generator) -> list[np.ndarray]:
    """A model that leans towards the labels by ``skill``, more blurred at harsher levels."""
    base = np.clip(skill * y + rng.normal(0.5 * (1 - skill), 0.25, y.shape), 0, 1)
    return [np.clip(base + rng.normal(0, sd, y.shape), 0, 1) for sd in (0.0, 0.2, 0.4, 0.3)]


def _plain_loop(rs: RobustnessSet, arch: str) -> dict[str, np.ndarray]:
    """Seed-mean F1 of each arm per condition and the constant, one F1 call at a time."""
    y = rs.y_true
    constant = constant_baseline_f1(y, y)
    out: dict[str, np.ndarray] = {}
    for arm, regime in (("finetune", "finetune"), ("scratch", "scratch")):
        keys = [k for k in rs.probs if k[0] == regime and k[2] == arch]
        f1 = np.mean([[weighted_f1(y, rs.probs[k][i].astype(np.float64))
                       for i in range(len(CONDITIONS))] for k in keys], axis=0)
        out[arm] = f1
        out[f"{arm}_retention"] = (f1 - constant) / (f1[0] - constant)
    out["constant"] = np.array(constant)
    return out


def test_retention_and_perturbed_f1_differences_equal_a_plain_loop_on_the_full_sample():
    sets = _seeded_study()
    tables = robustness_tables(sets, **BOOT)
    pairs = tables.pairs
    assert list(pairs.columns) == list(PAIR_COLUMNS)
    assert len(pairs) == 3 * 3 and pairs["retention_defined"].all()
    set_means: dict[str, dict[str, list[float]]] = {"retention": {}, "f1": {}}
    for rs in sets:
        for arch in sorted({k[2] for k in rs.probs}):
            truth = _plain_loop(rs, arch)
            rows = pairs[(pairs["downstream"] == rs.downstream) & (pairs["arch"] == arch)]
            assert list(rows["seeds_finetune"]) == [2] * 3
            assert list(rows["seeds_scratch"]) == [3] * 3
            for i, row in zip((1, 2, 3), rows.to_dict("records"), strict=True):
                assert row["constant_f1"] == pytest.approx(float(truth["constant"]))
                assert row["finetune_f1"] == pytest.approx(truth["finetune"][i])
                assert row["finetune_retention"] == pytest.approx(truth["finetune_retention"][i])
                assert row["scratch_retention"] == pytest.approx(truth["scratch_retention"][i])
                keep = truth["finetune_retention"][i] - truth["scratch_retention"][i]
                diff = truth["finetune"][i] - truth["scratch"][i]
                assert row["retention_difference"] == pytest.approx(keep)
                assert row["f1_difference"] == pytest.approx(diff)
                assert (row["retention_difference_low"] <= row["retention_difference"]
                        <= row["retention_difference_high"])
                assert row["f1_difference_low"] <= row["f1_difference"] <= row[
                    "f1_difference_high"]
                if i in HARSHEST:
                    set_means["retention"].setdefault(rs.downstream, []).append(keep)
                    set_means["f1"].setdefault(rs.downstream, []).append(diff)
    # every downstream set weighs the same, whatever its number of (pair, kind) values
    for measure, by_set in set_means.items():
        expected = np.mean([np.mean(v) for v in by_set.values()])
        assert tables.summary[measure].point == pytest.approx(expected)
        assert expected != pytest.approx(np.mean([x for v in by_set.values() for x in v]))
    claims = _claims(tables)
    assert claims["robustness_retention"].estimate == pytest.approx(
        tables.summary["retention"].point)
    assert claims["robustness_f1"].sets == ("large", "small")
    assert claims["robustness_f1"].pairings == 3 and claims["robustness_f1"].models == 6
    assert claims["robustness_f1"].seeds == (2, 3)


def test_the_constant_predictor_is_rescored_on_the_same_record_resamples_as_the_models():
    (rs, _) = _seeded_study()
    n_boot, n = 5, len(rs.y_true)
    scored, constant = _set_replicates(rs, n_boot, np.random.default_rng(7))
    rng = np.random.default_rng(7)
    draws = rng.integers(0, n, size=(n_boot, n), dtype=np.int32)  # as _resample_counts draws
    key = ("finetune", "ptbxl", "cnn", 1)
    for b in range(n_boot):
        idx = np.repeat(np.arange(n), np.bincount(draws[b], minlength=n))
        y = rs.y_true[idx]
        assert constant.reps[b] == pytest.approx(constant_baseline_f1(y, y))
        assert scored[key][1][b, 2] == pytest.approx(
            weighted_f1(y, rs.probs[key][2][idx].astype(np.float64)))
    assert constant.point == constant_baseline_f1(rs.y_true, rs.y_true)


# --------------------------------------------------------------------------------------------
# Undefined retention, untestable claims, margins


def test_a_pair_whose_scratch_model_learnt_nothing_is_kept_out_of_the_retention_mean_and_counted():
    y = _labels(3)
    models = {("finetune", "ptbxl", "cnn", 0): [_confident(y)] + [_confident(y, 60)] * 3,
              ("scratch", "", "cnn", 0): [_constant(y)] * 4,  # at the constant: undefined
              ("finetune", "ptbxl", "gru", 0): [_confident(y)] + [_confident(y, 40)] * 3,
              ("scratch", "", "gru", 0): [_confident(y, 10)] + [_confident(y, 150)] * 3}
    tables = robustness_tables([_set("small", y, models)], **BOOT)
    pairs = tables.pairs.set_index("arch")
    assert not pairs.loc["cnn", "retention_defined"].any()
    assert pairs.loc["gru", "retention_defined"].all()
    assert tables.retention_excluded == ("cnn from ptbxl on small",)
    gru = pairs.loc["gru"]
    gru_harsh = gru[gru["harshest"]]
    assert tables.summary["retention"].point == pytest.approx(
        gru_harsh["retention_difference"].mean())
    both_harsh = tables.pairs[tables.pairs["harshest"]]
    assert tables.summary["f1"].point == pytest.approx(both_harsh["f1_difference"].mean())
    claims = _claims(tables)
    retention, f1 = claims["robustness_retention"], claims["robustness_f1"]
    assert retention.excluded == 1 and retention.pairings == 1
    assert "1 pair(s) left out" in retention.evidence
    assert "cnn from ptbxl on small" in retention.evidence
    assert f1.excluded == 0 and f1.pairings == 2


def test_without_robustness_or_without_a_pair_both_claims_are_not_testable_and_say_why():
    for c in robustness_claims(None, _plan()):
        assert c.verdict == rules.NOT_TESTABLE and c.n_tests == 0
        assert c.evidence == ("Robustness is not part of this run (config key "
                              "robustness.enabled).")
    assert [c.key for c in robustness_claims(None, _plan())] == ["robustness_retention",
                                                                 "robustness_f1"]
    y = _labels(4, 60)
    lone = _set("small", y, {("finetune", "ptbxl", "cnn", 0): [_confident(y)] * 4,
                             ("scratch", "", "gru", 0): [_confident(y)] * 4})
    tables = robustness_tables([lone], **BOOT)
    assert tables.pairs.empty and tables.summary == {}
    for c in robustness_claims(tables, _plan()):
        assert c.verdict == rules.NOT_TESTABLE
        assert "No fine-tuned model has a scratch model of its architecture" in c.evidence
        assert "cnn fine-tuned from ptbxl on small" in c.evidence
    empty = robustness_tables([], **BOOT)
    assert all(c.evidence == "No robustness result in this run."
               for c in robustness_claims(empty, _plan()))


def _close_call() -> RobustnessTables:
    """Fine-tuned and scratch of the same skill, wrong on different rows: differences near 0
    with intervals on both sides of it."""
    y = _labels(5, 400)
    flip = np.random.default_rng(6).permutation(len(y))

    def model(order: np.ndarray, wrong: tuple[int, ...]) -> list[np.ndarray]:
        out = []
        for w in wrong:
            p = _confident(y)
            p[order[:w]] = 1.0 - p[order[:w]]
            out.append(p)
        return out

    models = {("finetune", "ptbxl", "cnn", 0): model(flip, (40, 80, 120, 100)),
              ("scratch", "", "cnn", 0): model(flip[::-1], (40, 80, 120, 100))}
    return robustness_tables([_set("small", y, models)], **BOOT)


@pytest.mark.parametrize("key, margin_name", [("robustness_retention", "margin_retention"),
                                              ("robustness_f1", "margin_f1")])
def test_an_interval_around_zero_is_inconclusive_within_the_margin_and_not_supported_below_it(
        key, margin_name):
    tables = _close_call()
    claim = _claims(tables)[key]
    assert claim.low <= 0 < claim.high
    wide = _claims(tables, _plan(**{margin_name: claim.high + 0.01}))[key]
    narrow = _claims(tables, _plan(**{margin_name: claim.high - 1e-6}))[key]
    assert wide.verdict == rules.NOT_SUPPORTED and wide.margin == pytest.approx(claim.high + 0.01)
    assert narrow.verdict == rules.INCONCLUSIVE
    assert f"margin +{claim.high + 0.01:g}" in wide.evidence


def test_the_claims_read_the_interval_at_the_plans_level_from_the_same_replicates():
    tables = _close_call()
    at_95 = _claims(tables)["robustness_f1"]
    at_99 = _claims(tables, _plan(level=0.99))["robustness_f1"]
    assert at_99.estimate == at_95.estimate
    assert (at_99.low, at_99.high) == tables.summary["f1"].interval(0.99)
    assert at_99.low <= at_95.low and at_95.high <= at_99.high
    assert "the robustness tables print 95% intervals" in at_99.evidence
    assert "the robustness tables print" not in at_95.evidence
