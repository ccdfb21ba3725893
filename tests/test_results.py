"""Unit tests of the results layer: transfer, convergence, family and size tables, figures and
the claims, on studies built by hand.

The inputs are hand-written ``metrics.csv`` and ``predictions.npz`` files (the latter in
train.write_predictions' format, written with numpy so that torch is never imported): those
files are this module's input, so writing them directly pins what the results must say.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tiny_study import default_plan

from ecg_transfer.answer.claims import claims_json, claims_markdown, judge
from ecg_transfer.answer.evidence import convergence_pairs, selection_evidence
from ecg_transfer.answer.figures import plot_gain_heatmap
from ecg_transfer.answer.rules import (
    INCONCLUSIVE,
    NOT_SUPPORTED,
    NOT_TESTABLE,
    SUPPORTED,
    Plan,
)
from ecg_transfer.answer.runs import load_runs
from ecg_transfer.answer.tables import (
    TRANSFER_COLUMNS,
    compute_tables,
    convergence_markdown,
    convergence_table,
    family_markdown,
    family_table,
    size_markdown,
    size_table,
    transfer_markdown,
    transfer_table,
)
from ecg_transfer.answer.write import results_output_paths, write_results
from ecg_transfer.metrics import weighted_f1

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLASSES = ("NORM", "MI", "STTC")
FAMILIES = {"resnet1d18": "CNN", "resnet1d50": "CNN", "lstm": "RNN"}
ARCHS = ["resnet1d18", "resnet1d50", "lstm"]
BOOT = {"n_boot": 200, "seed": 0, "level": 0.95}
PLAN = default_plan()
RUN = {"n_boot": 200, "seed": 0, "plan": PLAN}
#: Curves where fine-tuning reaches the scratch best (0.7, target 0.69) at epoch 2, scratch at 4.
SCRATCH_CURVE = [0.3, 0.5, 0.6, 0.7]
FINETUNE_CURVE = [0.65, 0.7, 0.7, 0.7]


# --------------------------------------------------------------------------------------------
# Writing a study by hand


def _labels(rng: np.random.Generator, n: int) -> np.ndarray:
    y = (rng.random((n, len(CLASSES))) < [0.5, 0.3, 0.4]).astype(np.uint8)
    y[:2] = [[1, 1, 1], [0, 0, 0]]  # every class has positives and negatives: AUROC defined
    return y


def _probs(rng: np.random.Generator, y: np.ndarray, correct: float) -> np.ndarray:
    """Confident probabilities whose thresholded prediction is right on about ``correct`` of
    the cells."""
    right = rng.random(y.shape) < correct
    return np.where(np.where(right, y, 1 - y) == 1, 0.9, 0.1).astype(np.float16)


def _write_metrics(path: Path, test_f1: list[float], val: bool) -> str:
    n = len(test_f1)
    pd.DataFrame({
        "epoch": range(1, n + 1),
        "train_loss": [1.0 / e for e in range(1, n + 1)],
        "val_loss": [1.1 / e if val else None for e in range(1, n + 1)],
        "val_f1": [f - 0.05 if val else None for f in test_f1],
        "test_loss": [1.2 / e for e in range(1, n + 1)],
        "test_f1": test_f1,
        "test_macro_f1": test_f1,
        "seconds": [2.0] * n,
        "baseline_f1": [0.4] * n,
    }).to_csv(path, index=False)
    return str(path)


def _write_predictions(path: Path, ids: list[str], y: np.ndarray, probs: np.ndarray,
                       val: bool) -> str:
    arrays = {"record_ids": np.array(ids, dtype=str), "y_true": y.astype(np.uint8),
              "classes": np.array(CLASSES, dtype=str),
              "paper_epoch": np.array(3), "paper_probs": probs.astype(np.float16)}
    if val:
        arrays |= {"validation_epoch": np.array(2), "validation_probs": probs.astype(np.float16)}
    np.savez_compressed(path, **arrays)
    return str(path)


def _job(root: Path, regime: str, upstream: str | None, downstream: str, arch: str, *,
         y: np.ndarray, probs: np.ndarray, n_train: int, seed: int = 0,
         size: int | None = None, curve: list[float] | None = None, val: bool = True,
         ids: list[str] | None = None) -> dict:
    folder = root / regime / str(upstream) / downstream / arch / f"size{size}" / f"seed{seed}"
    folder.mkdir(parents=True)
    ids = ids if ids is not None else [f"{downstream}_{i}" for i in range(len(y))]
    curve = curve or (SCRATCH_CURVE if regime == "scratch" else FINETUNE_CURVE)
    return {"regime": regime, "upstream": upstream, "downstream": downstream, "arch": arch,
            "seed": seed, "size": size, "n_train": n_train,
            "metrics": _write_metrics(folder / "metrics.csv", curve, val),
            "predictions": _write_predictions(folder / "predictions.npz", ids, y, probs, val)}


def _study(root: Path, *, val: bool = True, archs: list[str] = ARCHS) -> list[dict]:
    """Two downstream sets. ``small`` (800 training records): CNNs fine-tuned from either
    upstream are right on 95% of the label cells, scratch on 60%; the RNN's fine-tuned
    predictions equal its scratch ones. ``large`` (6000): every fine-tuned prediction equals
    scratch's. A pretraining job rides along and must be ignored."""
    rng = np.random.default_rng(0)
    jobs = [{"regime": "pretrain", "upstream": None, "downstream": "ptbxl", "arch": archs[0],
             "seed": 0, "metrics": "/nonexistent/metrics.csv"}]
    for downstream, n_train in (("small", 800), ("large", 6000)):
        y = _labels(rng, 300)
        for arch in archs:
            scratch = _probs(rng, y, 0.6)
            jobs.append(_job(root, "scratch", None, downstream, arch, y=y, probs=scratch,
                             n_train=n_train, val=val))
            better = downstream == "small" and FAMILIES[arch] == "CNN"
            for upstream in ("cpsc2018", "ptbxl"):
                probs = _probs(rng, y, 0.95) if better else scratch
                jobs.append(_job(root, "finetune", upstream, downstream, arch, y=y, probs=probs,
                                 n_train=n_train, val=val))
    return jobs


def _size_study(root: Path) -> list[dict]:
    """One downstream set (6000 records) with a size axis of a record count and a fraction
    (0.25, which trained on 1500 records): at 500 records fine-tuning is clearly better, at 1500
    and on the full split identical to scratch."""
    rng = np.random.default_rng(1)
    y = _labels(rng, 300)
    jobs = []
    for size, n_train in ((500, 500), (0.25, 1500), (None, 6000)):
        scratch = _probs(rng, y, 0.6)
        fine = _probs(rng, y, 0.95) if size == 500 else scratch
        jobs.append(_job(root, "scratch", None, "ptbxl", "resnet1d18", y=y, probs=scratch,
                         n_train=n_train, size=size))
        jobs.append(_job(root, "finetune", "cpsc2018", "ptbxl", "resnet1d18", y=y, probs=fine,
                         n_train=n_train, size=size))
    return jobs


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], list]:
    jobs = _study(tmp_path_factory.mktemp("study"))
    return jobs, load_runs(jobs)


@pytest.fixture(scope="module")
def tables(study):
    _, runs = study
    return compute_tables(runs, families=FAMILIES, arch_order=ARCHS, **RUN)


def _judged(runs: list, plan: Plan = PLAN) -> dict:
    tables = compute_tables(runs, families=FAMILIES, n_boot=200, seed=0, plan=plan)
    return {(c.key, c.selection): c for c in judge(tables, plan, n_boot=200, seed=0)}


def _evidence(runs: list, selection: str = "paper"):
    return selection_evidence(runs, selection, families=FAMILIES, n_boot=200, seed=0)


# --------------------------------------------------------------------------------------------
# Transfer table


def test_the_transfer_table_has_one_row_per_full_split_pairing_in_a_stable_order(
        tables) -> None:
    df = tables.transfer["paper"]
    assert list(df.columns) == list(TRANSFER_COLUMNS)
    assert len(df) == 2 * 3 * 2  # downstream x arch x upstream; the pretraining job is ignored
    assert df["downstream"].tolist()[:6] == ["large"] * 6
    assert df["arch"].tolist()[:6] == ["resnet1d18"] * 2 + ["resnet1d50"] * 2 + ["lstm"] * 2
    assert set(df["n_train"]) == {800, 6000}
    assert (df["seeds_scratch"] == 1).all() and df["scratch_sd"].isna().all()
    assert (df["baseline_f1"] == 0.4).all()


def test_identical_predictions_give_delta_zero_and_an_interval_of_width_zero(tables) -> None:
    df = tables.transfer["paper"]
    same = df[(df["downstream"] == "large") | (df["arch"] == "lstm")]
    assert (same["delta"] == 0).all() and (same["low"] == 0).all() and (same["high"] == 0).all()
    assert not same["excludes_zero"].any()
    assert (same["delta_auroc"] == 0).all()


def test_better_fine_tuned_predictions_give_an_interval_above_zero(study, tables) -> None:
    jobs, _ = study
    df = tables.transfer["paper"]
    gain = df[(df["downstream"] == "small") & (df["arch"] != "lstm")]
    assert len(gain) == 4
    assert (gain["low"] > 0.2).all() and gain["excludes_zero"].all()
    assert (gain["delta_auroc"] > 0).all()
    # F1 is recomputed from the saved probabilities, not taken from metrics.csv
    job = next(j for j in jobs if j["regime"] == "finetune" and j["downstream"] == "small"
               and j["arch"] == "resnet1d18" and j["upstream"] == "cpsc2018")
    with np.load(job["predictions"]) as f:
        expected = weighted_f1(f["y_true"], f["paper_probs"].astype(np.float64))
    row = gain[(gain["arch"] == "resnet1d18") & (gain["upstream"] == "cpsc2018")].iloc[0]
    assert row["finetune_f1"] == pytest.approx(expected)
    assert row["delta"] == pytest.approx(row["finetune_f1"] - row["scratch_f1"])


def test_several_seeds_give_mean_and_sd_in_the_table(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    y = _labels(rng, 100)
    jobs = [_job(tmp_path, "scratch", None, "ptb", "lstm", y=y, probs=_probs(rng, y, 0.6),
                 n_train=500, seed=s) for s in (0, 1)]
    jobs += [_job(tmp_path, "finetune", "ptbxl", "ptb", "lstm", y=y,
                  probs=_probs(rng, y, 0.9), n_train=500, seed=s) for s in (0, 1, 2)]
    df = transfer_table(load_runs(jobs), "paper", **BOOT)
    row = df.iloc[0]
    assert (row["seeds_scratch"], row["seeds_finetune"]) == (2, 3)
    assert row["scratch_sd"] > 0 and row["finetune_sd"] > 0
    assert "±" in transfer_markdown(df, "paper")


def test_a_selection_no_job_could_make_yields_no_rows_and_the_markdown_says_so(
        tmp_path: Path) -> None:
    runs = load_runs(_study(tmp_path, val=False, archs=["resnet1d18"]))
    df = transfer_table(runs, "validation", **BOOT)
    assert df.empty and list(df.columns) == list(TRANSFER_COLUMNS)
    assert len(transfer_table(runs, "paper", **BOOT)) == 4
    md = transfer_markdown(df, "validation", runs=runs)
    assert "No job could make the validation selection" in md
    tables = compute_tables(runs, families=FAMILIES, **RUN)
    claims = judge(tables, PLAN, n_boot=200, seed=0)
    assert {c.verdict for c in claims if c.selection == "validation"} == {NOT_TESTABLE}
    text = claims_markdown(claims, PLAN, n_boot=200, seed=0, tables=tables)
    assert "**paper**: 4 full-split pairing(s)" in text
    assert "**validation**: not made (no scratch/fine-tuned pairing saved `validation_probs`: " \
           "no validation split)" in text


def test_jobs_lacking_a_selection_are_left_out_of_it_and_listed(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    y = _labels(rng, 80)
    jobs = [_job(tmp_path, "scratch", None, "ptb", "lstm", y=y, probs=_probs(rng, y, 0.6),
                 n_train=500),
            _job(tmp_path, "finetune", "ptbxl", "ptb", "lstm", y=y, probs=_probs(rng, y, 0.9),
                 n_train=500, val=False),
            _job(tmp_path, "finetune", "georgia", "ptb", "lstm", y=y,
                 probs=_probs(rng, y, 0.9), n_train=500)]
    runs = load_runs(jobs)
    df = transfer_table(runs, "validation", **BOOT)
    assert df["upstream"].tolist() == ["georgia"]
    md = transfer_markdown(df, "validation", runs=runs)
    assert "1 of 3 jobs could not make the validation selection" in md
    assert jobs[1]["predictions"] in md


def test_jobs_without_a_counterpart_of_the_other_regime_are_listed(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    y = _labels(rng, 40)
    jobs = [_job(tmp_path, "scratch", None, "ptb", "lstm", y=y, probs=_probs(rng, y, 0.6),
                 n_train=500),
            _job(tmp_path, "finetune", "ptbxl", "ptb", "resnet1d18", y=y,
                 probs=_probs(rng, y, 0.9), n_train=500)]
    runs = load_runs(jobs)
    df = transfer_table(runs, "paper", **BOOT)
    assert df.empty
    md = transfer_markdown(df, "paper", runs=runs)
    assert "Jobs without a counterpart" in md
    assert jobs[0]["predictions"] in md and jobs[1]["predictions"] in md


def test_the_same_inputs_and_seed_give_the_same_tables(study) -> None:
    _, runs = study
    first = transfer_table(runs, "paper", **BOOT)
    pd.testing.assert_frame_equal(first, transfer_table(runs, "paper", **BOOT))


# --------------------------------------------------------------------------------------------
# Convergence, families, sizes


def test_convergence_table_on_hand_made_curves(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    y = _labels(rng, 40)
    p = _probs(rng, y, 0.7)
    jobs = [
        # two scratch seeds: mean curve [0.2, 0.5, 0.8, 0.9]; best 3-epoch mean 0.7333, target
        # 0.7233 (not the single best epoch's 0.89): reached at epoch 3
        _job(tmp_path, "scratch", None, "ptb", "lstm", y=y, probs=p, n_train=500, seed=0,
             curve=[0.1, 0.4, 0.8, 0.9]),
        _job(tmp_path, "scratch", None, "ptb", "lstm", y=y, probs=p, n_train=500, seed=1,
             curve=[0.3, 0.6, 0.8, 0.9]),
        _job(tmp_path, "finetune", "georgia", "ptb", "lstm", y=y, probs=p, n_train=500,
             curve=[0.85, 0.9, 0.9]),
        _job(tmp_path, "finetune", "ptbxl", "ptb", "lstm", y=y, probs=p, n_train=500,
             curve=[0.3, 0.4, 0.5]),
    ]
    df = convergence_table(convergence_pairs(load_runs(jobs)), 0.01)
    assert df["upstream"].tolist() == ["georgia", "ptbxl"]
    assert df["target"].tolist() == pytest.approx([0.72333, 0.72333], abs=1e-4)
    assert df["scratch_epoch"].tolist() == [3, 3]
    # never reached: kept, censored at the epochs trained + 1 (an upper bound on the saving)
    assert df["finetune_epoch"].tolist() == [1, 4] and df["censored"].tolist() == [False, True]
    assert df["epochs_saved"].tolist() == [2, -1]
    assert df["seeds_scratch"].tolist() == [1, 1]  # the fine-tuned side has one seed
    md = convergence_markdown(df)
    assert "| >3 | <=-1 |" in md and "| 1 | +2 |" in md
    assert "1 of 2 fine-tuning run(s) censored" in md


def test_family_table_with_only_cnns_has_no_difference_and_the_claim_is_not_testable(
        tmp_path: Path) -> None:
    runs = load_runs(_study(tmp_path, archs=["resnet1d18", "resnet1d50"]))
    df = family_table(_evidence(runs), 0.95)
    assert df["family"].tolist() == ["CNN"] * 3 and df["arch"].tolist()[-1] == ""
    claim = _judged(runs)["families", "paper"]
    assert claim.verdict == NOT_TESTABLE and "RNN: fewer than two architectures" in claim.evidence


def test_family_table_gives_each_architecture_family_and_the_difference(tables) -> None:
    df = tables.families["paper"]
    assert df["family"].tolist() == ["CNN"] * 3 + ["RNN"] * 2 + ["CNN - RNN"]
    assert df["arch"].tolist() == ["resnet1d18", "resnet1d50", "", "lstm", "", ""]
    rows = df.set_index(["family", "arch"])
    assert rows.loc[("RNN", ""), "delta"] == 0 and rows.loc[("RNN", ""), "high"] == 0
    assert rows.loc[("CNN", ""), "n_pairs"] == 8 and rows.loc[("CNN", ""), "n_downstream"] == 2
    assert rows.loc[("CNN", ""), "n_archs"] == 2
    assert rows.loc[("CNN - RNN", ""), "delta"] == pytest.approx(rows.loc[("CNN", ""), "delta"])
    assert rows.loc[("CNN - RNN", ""), "n_pairs"] == 12 and rows.loc[("CNN - RNN", ""), "low"] > 0
    # the family's interval resamples the architectures: at least as wide as their spread
    cnn = rows.loc[("CNN", "")]
    arch_points = rows.loc[[("CNN", "resnet1d18"), ("CNN", "resnet1d50")], "delta"]
    assert cnn["low"] <= arch_points.min() + 1e-9 and cnn["high"] >= arch_points.max() - 1e-9


def test_size_table_counts_the_full_split_as_the_largest_point_and_finds_the_crossover(
        tmp_path: Path) -> None:
    runs = load_runs(_size_study(tmp_path))
    df = size_table(_evidence(runs), 0.95, 0.02)
    assert df["n_train"].tolist() == [500, 1500, 6000]
    assert df["size"].tolist()[:2] == [500, 0.25] and pd.isna(df["size"].iloc[2])
    assert df["full_split"].tolist() == [False, False, True]
    assert df["excludes_zero"].tolist() == [True, False, False]
    assert (df["crossover"] == 1500).all()
    md = size_markdown(df, "paper")
    assert "crossover at 1500 training records" in md
    assert "| 0.25 | 1500 |" in md and "| full | 6000 |" in md
    sized = load_runs([j for j in _size_study(tmp_path / "b") if j["size"] is None])
    assert size_table(_evidence(sized), 0.95, 0.02).empty


def test_a_curve_whose_largest_size_shows_a_gain_again_has_no_crossover(tmp_path: Path) -> None:
    """The old rule called the first size whose interval includes 0 the crossover, even where
    a larger size excludes 0 again."""
    jobs = _size_study(tmp_path)
    rng = np.random.default_rng(5)
    for job in jobs:  # make the full split clearly better again
        if job["size"] is None and job["regime"] == "finetune":
            with np.load(job["predictions"]) as f:
                arrays = {k: f[k] for k in f.files}
            arrays["paper_probs"] = _probs(rng, arrays["y_true"], 0.97)
            np.savez_compressed(job["predictions"], **arrays)
    df = size_table(_evidence(load_runs(jobs)), 0.95, 0.02)
    assert df["crossover"].isna().all()
    assert "not reached" in size_markdown(df, "paper")


def test_a_wide_interval_that_includes_zero_is_not_a_crossover(tmp_path: Path) -> None:
    """A size whose interval includes 0 but reaches past the margin says only that the test
    set cannot tell: equivalence needs the interval inside the margin."""
    rng = np.random.default_rng(9)
    y = _labels(rng, 40)
    jobs = []
    for size, n_train in ((500, 500), (None, 6000)):
        scratch = _probs(rng, y, 0.75)
        jobs.append(_job(tmp_path, "scratch", None, "ptbxl", "resnet1d18", y=y, probs=scratch,
                         n_train=n_train, size=size))
        jobs.append(_job(tmp_path, "finetune", "cpsc2018", "ptbxl", "resnet1d18", y=y,
                         probs=_probs(rng, y, 0.75), n_train=n_train, size=size))
    df = size_table(_evidence(load_runs(jobs)), 0.95, 0.02)
    assert (df["low"] < 0).all() and (df["high"] > 0).all()  # the old rule: crossover at 500
    assert (df["high"] - df["low"] > 0.04).all() and df["crossover"].isna().all()


# --------------------------------------------------------------------------------------------
# Claims


def test_claims_on_a_study_where_transfer_helps_small_sets_only(study, tables) -> None:
    claims = judge(tables, PLAN, n_boot=200, seed=0)
    got = {(c.key, c.selection): c for c in claims}
    for selection in ("paper", "validation"):
        small = got["small_set_gain", selection]
        assert small.verdict == SUPPORTED and small.low > 0.2 and small.sets == ("small",)
        assert "small (800 training records)" in small.evidence
        assert "CNNs on the smallest downstream set, small" in small.title
        large = got["vanishes_largest", selection]
        assert large.verdict == SUPPORTED and (large.low, large.high) == (0.0, 0.0)
        assert large.sets == ("large",)
        assert got["vanishes_near_6000", selection].verdict == SUPPORTED
        assert got["gain_trend", selection].verdict == SUPPORTED
        # one RNN architecture: CNN vs RNN cannot be told apart from which networks were chosen
        assert got["families", selection].verdict == NOT_TESTABLE
        assert small.seeds == (1,) and "training randomness (another seed) is outside" in \
            small.seeds_words()
    # four epochs: a saving of more than the margin (5 epochs) could not be observed
    assert got["faster", None].verdict == NOT_TESTABLE
    assert got["faster_by_paper", None].verdict == NOT_TESTABLE
    text = claims_markdown(claims, PLAN, n_boot=200, seed=0, tables=tables)
    assert text.index("### Paper selection (primary") < text.index("### Validation selection")
    assert "**validation**: 12 full-split pairing(s)" in text
    assert text.count("**Verdict: supported.**") == 8
    assert "alpha = 0.025" in text and "F1 ±0.02" in text


def test_claims_json_holds_every_claim_with_its_numbers(study, tables) -> None:
    import json

    claims = judge(tables, PLAN, n_boot=200, seed=0)
    doc = json.loads(claims_json(claims, PLAN, n_boot=200, seed=0))
    assert doc["plan"]["margin_f1"] == 0.02 and doc["plan"]["alpha"] == pytest.approx(0.025)
    assert len(doc["claims"]) == len(claims)
    first = doc["claims"][0]
    assert first["key"] == "small_set_gain" and first["selection"] == "paper"
    assert first["verdict"] == SUPPORTED and first["low"] > 0.2 and first["margin"] == 0.02
    assert first["sets"] == ["small"] and first["seeds"] == [1] and first["models"] == 6


def test_the_gain_claims_are_not_testable_or_not_supported_when_the_data_say_so(
        tmp_path: Path) -> None:
    jobs = [j for j in _study(tmp_path, archs=["resnet1d18"]) if j.get("downstream") == "small"]
    got = _judged(load_runs(jobs))
    assert got["vanishes_largest", "paper"].verdict == NOT_TESTABLE  # one downstream set
    # the same study with the gain removed: fine-tuned = scratch everywhere
    for job in jobs:
        if job["regime"] == "finetune":
            scratch = next(j for j in jobs if j["regime"] == "scratch")
            Path(job["predictions"]).write_bytes(Path(scratch["predictions"]).read_bytes())
    got = _judged(load_runs(jobs))
    assert got["small_set_gain", "paper"].verdict == NOT_SUPPORTED


def test_a_noisy_large_set_does_not_make_the_gain_vanish(tmp_path: Path) -> None:
    """The old rule said "vanishes: supported" whenever the interval included 0, so a noisier
    test set was *more* likely to support the claim."""
    rng = np.random.default_rng(10)
    jobs = []
    for downstream, n_train, n_test in (("small", 800, 300), ("large", 6000, 40)):
        y = _labels(rng, n_test)
        jobs.append(_job(tmp_path, "scratch", None, downstream, "resnet1d18", y=y,
                         probs=_probs(rng, y, 0.7), n_train=n_train))
        jobs.append(_job(tmp_path, "finetune", "ptbxl", downstream, "resnet1d18", y=y,
                         probs=_probs(rng, y, 0.72), n_train=n_train))
    claim = _judged(load_runs(jobs))["vanishes_largest", "paper"]
    assert claim.low < 0 < claim.high  # the old rule: supported
    assert claim.verdict == INCONCLUSIVE


def test_the_validation_selection_judges_the_smallest_set_of_the_run_not_of_the_selection(
        tmp_path: Path) -> None:
    """Only the large set has a validation split: the small-set claim of the validation
    selection must not move to the large set (it did: both gain claims judged the same set)."""
    rng = np.random.default_rng(11)
    jobs = []
    for downstream, n_train, val in (("small", 800, False), ("large", 6000, True)):
        y = _labels(rng, 100)
        for regime, up, correct in (("scratch", None, 0.6), ("finetune", "ptbxl", 0.9)):
            jobs.append(_job(tmp_path, regime, up, downstream, "resnet1d18", y=y,
                             probs=_probs(rng, y, correct), n_train=n_train, val=val))
    got = _judged(load_runs(jobs))
    claim = got["small_set_gain", "validation"]
    assert claim.verdict == NOT_TESTABLE and claim.sets == ("small",)
    assert "no validation split" in claim.evidence
    assert got["small_set_gain", "paper"].sets == ("small",)
    assert got["vanishes_largest", "validation"].sets == ("large",)


def test_a_test_split_too_small_to_say_anything_makes_the_claim_not_testable(
        tmp_path: Path) -> None:
    """A genuine-records study said "vanishes: supported, [+0.000, +0.000]" from one test
    record."""
    rng = np.random.default_rng(12)
    jobs = []
    for downstream, n_train, n_test in (("small", 800, 300), ("large", 6000, 1)):
        y = _labels(rng, n_test) if n_test > 2 else np.array([[1, 0, 1]], dtype=np.uint8)
        p = _probs(rng, y, 0.7)
        for regime, up in (("scratch", None), ("finetune", "ptbxl")):
            jobs.append(_job(tmp_path, regime, up, downstream, "resnet1d18", y=y, probs=p,
                             n_train=n_train))
    claim = _judged(load_runs(jobs))["vanishes_largest", "paper"]
    assert claim.verdict == NOT_TESTABLE
    assert "large: its test split has 1 record(s); a claim needs at least 30" in claim.evidence


def test_a_size_axis_makes_the_vanishing_claim_testable_on_one_set_and_reports_crossovers(
        tmp_path: Path) -> None:
    got = _judged(load_runs(_size_study(tmp_path)))
    near = got["vanishes_near_6000", "paper"]
    assert near.verdict == SUPPORTED and near.extra["n_train"] == 6000
    assert "resnet1d18 from cpsc2018 on ptbxl: 1500 records" in near.evidence
    assert got["vanishes_largest", "paper"].verdict == NOT_TESTABLE  # one downstream set


# --------------------------------------------------------------------------------------------
# Files


def test_write_results_writes_every_file_atomically(study, tmp_path: Path) -> None:
    jobs, _ = study
    out = tmp_path / "results"
    paths = write_results(jobs, out, families=FAMILIES, arch_order=ARCHS, dpi=40, **RUN)
    assert paths == results_output_paths(out, sizes=False)
    for path in paths.values():
        assert path.is_file() and path.stat().st_size > 0
    for name in ("gain_heatmap_paper", "gain_heatmap_validation"):
        assert paths[name].read_bytes().startswith(PNG_MAGIC)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                  if p.is_file()) == sorted(p.relative_to(out).as_posix()
                                            for p in paths.values())
    assert not list(out.rglob("*.tmp"))
    assert pd.read_csv(paths["transfer_paper_csv"]).shape == (12, len(TRANSFER_COLUMNS))
    assert "Verdict" in paths["claims"].read_text()


def test_write_results_with_a_size_axis_draws_the_size_curves(tmp_path: Path) -> None:
    jobs = _size_study(tmp_path / "runs")
    out = tmp_path / "results"
    paths = write_results(jobs, out, families=FAMILIES, dpi=40, **RUN)
    assert paths == results_output_paths(out, sizes=True)
    assert paths["size_curve_paper"].read_bytes().startswith(PNG_MAGIC)
    assert not list(out.rglob("*.tmp"))


def test_a_figure_of_a_selection_without_rows_is_still_a_png(study, tmp_path: Path) -> None:
    path = plot_gain_heatmap(pd.DataFrame(columns=list(TRANSFER_COLUMNS)), tmp_path / "g.png",
                             dpi=40, selection="validation")
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert [p.name for p in tmp_path.iterdir()] == ["g.png"]


# --------------------------------------------------------------------------------------------
# Bad input


def test_record_ids_that_differ_within_a_downstream_set_name_both_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    y = _labels(rng, 30)
    p = _probs(rng, y, 0.7)
    scratch = _job(tmp_path, "scratch", None, "ptb", "lstm", y=y, probs=p, n_train=500)
    ids = [f"ptb_{i}" for i in range(30)]
    ids[7] = "ptb_other"
    fine = _job(tmp_path, "finetune", "ptbxl", "ptb", "lstm", y=y, probs=p, n_train=500,
                ids=ids)
    with pytest.raises(ValueError, match="record_ids differ") as err:
        load_runs([scratch, fine])
    assert scratch["predictions"] in str(err.value) and fine["predictions"] in str(err.value)
    assert "position 7" in str(err.value)


def test_other_bad_inputs_raise_a_value_error_that_says_what_was_wrong(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    y = _labels(rng, 30)
    p = _probs(rng, y, 0.7)
    scratch = _job(tmp_path, "scratch", None, "ptb", "lstm", y=y, probs=p, n_train=500)
    fine = _job(tmp_path, "finetune", "ptbxl", "ptb", "lstm", y=y, probs=p, n_train=400)
    with pytest.raises(ValueError, match=r"n_train 500 .* vs 400"):
        load_runs([scratch, fine])
    sized = _job(tmp_path, "scratch", None, "ptb", "lstm", y=y, probs=p, n_train=600, size=600)
    with pytest.raises(ValueError, match="not fewer than its full training split"):
        load_runs([scratch, sized])
    half = _job(tmp_path, "scratch", None, "ptb", "lstm", y=y, probs=p, n_train=250, size=0.5)
    same = _job(tmp_path, "scratch", None, "ptb", "lstm", y=y, probs=p, n_train=250, size=250)
    with pytest.raises(ValueError, match="both trained on 250 records"):
        load_runs([scratch, half, same])
    with pytest.raises(ValueError, match="a fraction of the train split in"):
        load_runs([{**scratch, "size": 1.5}])
    with pytest.raises(ValueError, match="no family for architecture"):
        compute_tables(load_runs([scratch]), families={"gru": "RNN"}, **RUN)
    with pytest.raises(ValueError, match="missing key"):
        load_runs([{k: v for k, v in scratch.items() if k != "n_train"}])
    Path(fine["predictions"]).write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="not a readable predictions"):
        load_runs([fine])


def test_n_train_is_read_from_the_sidecar_when_not_given(tmp_path):
    import json

    from ecg_transfer.answer.runs import _sidecar_n_train

    side = tmp_path / "model.json"
    side.write_text(json.dumps({"records": {"train": 123, "val": 0, "test": 40}}))
    assert _sidecar_n_train(side) == 123
    side.write_text("{}")
    with pytest.raises(ValueError, match=r"model\.json: cannot read records\.train"):
        _sidecar_n_train(side)


def test_pairings_where_both_models_failed_to_learn_are_flagged_and_kept_out(
        tmp_path: Path) -> None:
    """Both arms at the constant predictor (F1 0 here, constant 0.4): Δ = 0 says nothing about
    transfer, so the old family mean read it as "RNNs do not transfer"."""
    jobs = _study(tmp_path)
    for job in jobs:
        if job.get("arch") == "lstm" and job["regime"] != "pretrain":
            with np.load(job["predictions"]) as f:
                arrays = {k: f[k] for k in f.files}
            for name in ("paper_probs", "validation_probs"):
                arrays[name] = np.full_like(arrays[name], 0.1)
            np.savez_compressed(job["predictions"], **arrays)
    tables = compute_tables(load_runs(jobs), families=FAMILIES, arch_order=ARCHS, **RUN)
    transfer = tables.transfer["paper"]
    assert transfer.loc[transfer["arch"] == "lstm", "failed"].all()
    assert not transfer.loc[transfer["arch"] != "lstm", "failed"].any()
    families = tables.families["paper"]
    assert set(families["family"]) == {"CNN"} and (families["excluded"] == 4).all()
    assert "4 pairing(s) left out" in family_markdown(families, "paper")
    assert "(failed)" in transfer_markdown(transfer, "paper")


def test_starred_rows_say_whether_they_survive_holm(tables) -> None:
    df = tables.transfer["paper"]
    # four clear gains among twelve rows survive; rows whose interval includes 0 never do
    assert df.loc[df["holm"], "excludes_zero"].all()
    assert df["holm"].sum() == 4 and (df.loc[df["holm"], "p_value"] < 0.05 / 12).all()
    assert "4 of 12 row(s) starred; 4 survive Holm's correction" in transfer_markdown(df, "paper")
