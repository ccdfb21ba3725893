"""Unit tests of the results beyond the paper (MELEP against the realised transfer, robustness to
perturbed ECGs) on inputs written by hand.

The MELEP JSONs and robustness .npz files are written as evaluate.transferability and
evaluate.robustness write them, and the training jobs' ``metrics.csv``/``predictions.npz`` as
train.py does, all with json and numpy, so torch is never imported.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tiny_study import default_plan

from ecg_transfer.answer.claims import beyond_section
from ecg_transfer.answer.figures import plot_robustness
from ecg_transfer.answer.robustness import (
    _parse_model_id,
    load_robustness,
    robustness_claims,
    robustness_model_id,
    robustness_tables,
)
from ecg_transfer.answer.rules import NOT_SUPPORTED, NOT_TESTABLE, SUPPORTED
from ecg_transfer.answer.runs import load_runs
from ecg_transfer.answer.stats import macro_auroc
from ecg_transfer.answer.transferability import (
    ALL_ARCHS,
    melep_claims,
    melep_correlations,
    melep_ranking,
    melep_table,
    ranking_words,
    read_melep,
)
from ecg_transfer.answer.write import beyond_output_paths, write_beyond
from ecg_transfer.metrics import weighted_f1

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLASSES = ("NORM", "MI", "STTC")
BOOT = {"n_boot": 200, "seed": 0, "level": 0.95}
PLAN = default_plan()
RUN = {"n_boot": 200, "seed": 0, "plan": PLAN}
SELECTIONS = ["paper", "validation"]


# --------------------------------------------------------------------------------------------
# Writing the inputs by hand


def _at(path: object) -> str:
    """A file's path as a regular expression matching it literally."""
    return re.escape(str(path))


def _labels(rng: np.random.Generator, n: int) -> np.ndarray:
    y = (rng.random((n, len(CLASSES))) < [0.5, 0.3, 0.4]).astype(np.uint8)
    y[:2] = [[1, 1, 1], [0, 0, 0]]  # every class has positives and negatives
    return y


def _confident(y: np.ndarray, wrong_rows: int = 0) -> np.ndarray:
    """0.9 where the label is 1, 0.1 where 0, every label flipped on the first rows."""
    probs = np.where(y == 1, 0.9, 0.1)
    probs[:wrong_rows] = 1.0 - probs[:wrong_rows]
    return probs.astype(np.float16)


def _write_metrics(path: Path) -> str:
    pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_loss": [1.1, 0.6],
                  "val_f1": [0.5, 0.6], "test_loss": [1.2, 0.7], "test_f1": [0.5, 0.6],
                  "test_macro_f1": [0.5, 0.6], "seconds": [2.0, 2.0],
                  "baseline_f1": [0.4, 0.4]}).to_csv(path, index=False)
    return str(path)


def _job(root: Path, regime: str, upstream: str | None, downstream: str, arch: str, seed: int,
         y: np.ndarray, probs: np.ndarray, ids: list[str] | None = None) -> dict:
    folder = root / "jobs" / regime / str(upstream) / downstream / arch / f"seed{seed}"
    folder.mkdir(parents=True)
    ids = ids if ids is not None else [f"{downstream}_{i}" for i in range(len(y))]
    np.savez_compressed(folder / "predictions.npz", record_ids=np.array(ids, dtype=str),
                        y_true=y.astype(np.uint8), classes=np.array(CLASSES, dtype=str),
                        paper_epoch=np.array(2), paper_probs=probs,
                        validation_epoch=np.array(2), validation_probs=probs)
    return {"regime": regime, "upstream": upstream, "downstream": downstream, "arch": arch,
            "seed": seed, "n_train": 800, "metrics": _write_metrics(folder / "metrics.csv"),
            "predictions": str(folder / "predictions.npz")}


def _melep_job(root: Path, upstream: str, downstream: str, arch: str, seed: int,
               score: float, reference: float | None = None, **override) -> dict:
    """One model's entry, added to its downstream set's file as the transferability rule's
    one job per downstream set writes them all."""
    path = root / "melep" / f"{downstream}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"source": {"checkpoint": "model.pt", "dataset": upstream, "arch": arch,
                       "classes": ["A", "B"]},
            "target": {"dataset": downstream, "classes": list(CLASSES), "records": 800},
            "melep": {"score": score, "per_label": [score], "weights": [1.0]},
            "leep_argmax": {"score": score if reference is None else reference,
                            "per_label": [score], "weights": [1.0]},
            "lower_is_better": True}
    for key, value in override.items():
        data[key] = {**data[key], **value}
    models = json.loads(path.read_text())["models"] if path.exists() else {}
    models[f"{upstream}/{arch}/seed{seed}"] = data
    path.write_text(json.dumps({"models": models}))
    return {"upstream": upstream, "downstream": downstream, "arch": arch, "seed": seed,
            "path": str(path)}


def _write_robustness(path: Path, y: np.ndarray, models: dict[str, dict[str, np.ndarray]],
                      ids: list[str] | None = None) -> Path:
    ids = ids if ids is not None else [f"{path.stem}_{i}" for i in range(len(y))]
    arrays = {"record_ids": np.array(ids, dtype=str), "y_true": y.astype(np.uint8),
              "classes": np.array(CLASSES, dtype=str), "models": np.array(list(models), dtype=str)}
    for model_id, conditions in models.items():
        for name, probs in conditions.items():
            arrays[f"{model_id}|{name}"] = probs.astype(np.float16)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


CONDITIONS = ("emg@24", "emg@6", "lead_dropout@3")


def _robust_vs_fragile(y: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """A fine-tuned model that noise leaves alone, a scratch model that it reduces to
    predicting nothing (F1 0)."""
    good, nothing = _confident(y), np.full(y.shape, 0.1, dtype=np.float16)
    return {"finetune/ptbxl/cnn/seed0": {"clean": good, **dict.fromkeys(CONDITIONS, good)},
            "scratch/cnn/seed0": {"clean": good, **dict.fromkeys(CONDITIONS, nothing)}}


# --------------------------------------------------------------------------------------------
# MELEP


def _scores(rows: list[tuple[str, str, str, int, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"upstream": u, "downstream": d, "arch": a, "seed": s, "melep": m,
                          "leep_argmax": m, "records": 800, "path": "x.json"}
                         for u, d, a, s, m in rows])


def _transfer(rows: list[tuple[str, str, str, float]]) -> dict[str, pd.DataFrame]:
    table = pd.DataFrame([{"downstream": d, "arch": a, "upstream": u, "finetune_f1": 0.5 + dl,
                           "delta": dl, "low": dl - 0.02, "high": dl + 0.02}
                          for d, a, u, dl in rows])
    return {"paper": table, "validation": table.iloc[:0]}


def test_a_lower_melep_with_a_higher_gain_gives_a_negative_correlation_excluding_zero():
    rng = np.random.default_rng(0)
    melep = np.linspace(0.3, 1.0, 8)
    delta = 0.25 - 0.2 * melep + rng.normal(0, 0.005, 8)
    # two downstream sets, four upstreams each (one architecture per set)
    keys = [(f"up{i % 4}", f"down{i // 4}", "cnn" if i < 4 else "rnn") for i in range(8)]
    scores = _scores([(u, d, a, 0, m) for (u, d, a), m in zip(keys, melep, strict=True)])
    table = melep_table(scores, _transfer([(d, a, u, x) for (u, d, a), x
                                           in zip(keys, delta, strict=True)]))
    assert table["delta_validation"].isna().all()
    corr = melep_correlations(table, **BOOT)
    overall = corr[(corr["selection"] == "paper") & (corr["score"] == "melep")
                   & (corr["arch"] == ALL_ARCHS)].set_index("method")
    for method in ("pearson", "spearman"):
        assert overall.loc[method, "r"] < -0.9
        assert overall.loc[method, "low"] <= overall.loc[method, "r"] <= overall.loc[method,
                                                                                     "high"]
        assert overall.loc[method, "high"] < 0
        assert overall.loc[method, "n_pairs"] == 8
    assert overall.loc["spearman", "r"] == pytest.approx(-1.0)
    per_arch = corr[(corr["selection"] == "paper") & (corr["arch"] == "cnn")]
    assert (per_arch["n_pairs"] == 4).all()
    # no Δ in the validation selection: no correlation, and the claim is not testable there
    assert corr.loc[corr["selection"] == "validation", "r"].isna().all()
    claims = {c.selection: c for c in melep_claims(table, PLAN, SELECTIONS)}
    # two sets of four (upstream, architecture) rows, perfectly ranked within each: the
    # within-set permutation test can reach p = 1/(4! 4!) and does
    assert claims["paper"].verdict == SUPPORTED
    assert claims["paper"].estimate == pytest.approx(-1.0)
    assert "pooled over sets" in claims["paper"].evidence
    assert claims["validation"].verdict == NOT_TESTABLE


def test_melep_that_rises_with_the_gain_or_has_too_few_pairs_does_not_support_the_claim():
    melep = np.linspace(0.3, 1.0, 6)
    keys = [(f"up{i}", "down", "cnn") for i in range(6)]
    scores = _scores([(u, d, a, 0, m) for (u, d, a), m in zip(keys, melep, strict=True)])
    rising = melep_table(scores, _transfer([(d, a, u, 0.1 * m) for (u, d, a), m
                                            in zip(keys, melep, strict=True)]))
    (claim, *_) = melep_claims(rising, PLAN, SELECTIONS)
    assert claim.verdict == NOT_SUPPORTED and claim.estimate == pytest.approx(1.0)
    few = melep_table(scores.iloc[:2], _transfer([(d, a, u, 0.1) for u, d, a in keys[:2]]))
    (claim, *_) = melep_claims(few, PLAN, SELECTIONS)
    assert claim.verdict == NOT_TESTABLE


def test_melep_is_averaged_over_seeds_and_a_pairing_without_a_delta_keeps_its_row():
    scores = _scores([("a", "d", "cnn", 0, 0.4), ("a", "d", "cnn", 1, 0.6),
                      ("b", "d", "cnn", 0, 0.5)])
    table = melep_table(scores, _transfer([("d", "cnn", "a", 0.1)]))
    a, b = table.set_index("upstream").loc["a"], table.set_index("upstream").loc["b"]
    assert a["seeds"] == 2 and a["melep"] == pytest.approx(0.5)
    assert a["melep_sd"] == pytest.approx(np.std([0.4, 0.6], ddof=1))
    assert a["delta_paper"] == pytest.approx(0.1) and math.isnan(b["delta_paper"])
    assert math.isnan(b["melep_sd"])


def _ranking_study(root: Path) -> tuple[list[dict], list[dict]]:
    """One downstream set, one architecture, two seeds, upstreams a, b, c. Fine-tuned F1 by
    seed: seed 0 a > b > c, seed 1 b > a > c (fewer flipped rows, higher F1). MELEP's lowest:
    a at seed 0 (a hit), c at seed 1 (a miss)."""
    y = _labels(np.random.default_rng(3), 60)
    wrong = {0: {"a": 0, "b": 6, "c": 12}, 1: {"a": 6, "b": 0, "c": 12}}
    melep = {0: {"a": 0.3, "b": 0.5, "c": 0.7}, 1: {"a": 0.5, "b": 0.6, "c": 0.2}}
    jobs, melep_jobs = [], []
    for seed in (0, 1):
        jobs.append(_job(root, "scratch", None, "small", "cnn", seed, y, _confident(y, 20)))
        for up in ("a", "b", "c"):
            jobs.append(_job(root, "finetune", up, "small", "cnn", seed, y,
                             _confident(y, wrong[seed][up])))
            melep_jobs.append(_melep_job(root, up, "small", "cnn", seed, melep[seed][up]))
    return jobs, melep_jobs


def test_the_ranking_counts_how_often_the_lowest_melep_picks_the_best_fine_tuned_upstream(
        tmp_path):
    jobs, melep_jobs = _ranking_study(tmp_path)
    ranking = melep_ranking(read_melep(melep_jobs), load_runs(jobs))
    paper = ranking[ranking["selection"] == "paper"].set_index("seed")
    assert list(paper.index) == [0, 1]
    assert paper.loc[0, "best_upstreams"] == "a" and paper.loc[0, "melep_pick"] == "a"
    assert paper.loc[1, "best_upstreams"] == "b" and paper.loc[1, "melep_pick"] == "c"
    assert list(paper["melep_hit"]) == [True, False]
    assert list(paper["chance"]) == pytest.approx([1 / 3, 1 / 3])
    assert (paper["n_upstreams"] == 3).all()
    y = load_runs(jobs)[0].y_true
    assert paper.loc[1, "best_f1"] == pytest.approx(weighted_f1(y, _confident(y)))
    (claim, *_) = melep_claims(melep_table(read_melep(melep_jobs), {}), PLAN, SELECTIONS,
                               ranking=ranking)
    assert claim.verdict == NOT_TESTABLE  # no Δ given: no correlation
    words = ranking_words(ranking, "paper", "melep")
    assert words.startswith("1 of 2 ") and "would hit 0.67" in words
    assert f"probability {1 - (2 / 3) ** 2:.3f}" in words


def test_a_melep_file_that_names_another_pairing_or_is_missing_is_an_error_naming_it(tmp_path):
    job = _melep_job(tmp_path, "ptbxl", "small", "cnn", 0, 0.4,
                     target={"dataset": "large"})
    with pytest.raises(ValueError, match=rf"{_at(job['path'])}: field target.dataset is 'large'"):
        read_melep([job])
    job = _melep_job(tmp_path, "ptbxl", "small", "cnn", 1, 0.4, melep={"score": None})
    with pytest.raises(ValueError, match=rf"{_at(job['path'])}: field melep.score must be"):
        read_melep([job])
    gone = {**job, "path": str(tmp_path / "nowhere.json")}
    with pytest.raises(ValueError, match=r"nowhere\.json: MELEP file does not exist"):
        read_melep([gone])


def test_a_melep_file_without_the_jobs_model_entry_is_an_error_naming_it(tmp_path):
    job = _melep_job(tmp_path, "ptbxl", "small", "cnn", 0, 0.4)
    other = _melep_job(tmp_path, "cpsc", "small", "cnn", 0, 0.5)
    scores = read_melep([job, other])  # one file, two entries
    assert list(scores["melep"]) == [0.4, 0.5] and scores["path"].nunique() == 1
    absent = {**job, "seed": 1}
    with pytest.raises(ValueError, match=rf"{_at(job['path'])}: no entry for model "
                                         r"'ptbxl/cnn/seed1'"):
        read_melep([job, absent])
    flat = tmp_path / "flat.json"  # one model's result, not under "models"
    flat.write_text(json.dumps({"melep": {"score": 0.4}}))
    with pytest.raises(ValueError, match=rf"{_at(flat)}: no mapping 'models'"):
        read_melep([{**job, "path": str(flat)}])


# --------------------------------------------------------------------------------------------
# Robustness


def test_a_fine_tuned_model_unaffected_by_noise_degrades_less_than_a_collapsing_scratch_model(
        tmp_path):
    y = _labels(np.random.default_rng(1), 200)
    path = _write_robustness(tmp_path / "small.npz", y, _robust_vs_fragile(y))
    (rs,) = load_robustness({"small": path})
    assert rs.kinds == ["emg", "lead_dropout"]
    assert [c[0] for c in rs.conditions] == ["clean", "emg", "emg", "lead_dropout"]
    assert [c[1] for c in rs.conditions[1:]] == [24.0, 6.0, 3.0]  # mild to harsh
    tables = robustness_tables([rs], **BOOT)
    clean_f1 = weighted_f1(y, _confident(y))
    pairs = tables.pairs
    assert len(pairs) == 3
    assert pairs["finetune_degradation"].to_numpy() == pytest.approx(0.0)
    assert pairs["scratch_degradation"].to_numpy() == pytest.approx(-clean_f1)
    assert pairs["difference"].to_numpy() == pytest.approx(clean_f1)
    assert (pairs["low"] > 0).all() and pairs["excludes_zero"].all()
    assert list(pairs["harshest"]) == [False, True, True]
    models = tables.models.set_index(["regime", "kind", "level"])
    scratch_clean = tables.models[(tables.models["regime"] == "scratch")
                                  & (tables.models["kind"] == "clean")].iloc[0]
    assert scratch_clean["f1"] == pytest.approx(clean_f1)
    assert scratch_clean["auroc"] == pytest.approx(
        macro_auroc(y, _confident(y).astype(np.float32)).value)
    assert models.loc[("scratch", "emg", 6.0), "f1"] == 0.0
    retention, f1 = robustness_claims(tables, PLAN)
    assert retention.verdict == SUPPORTED and retention.selection is None
    assert f1.verdict == SUPPORTED and f1.low > 0


def test_identical_fine_tuned_and_scratch_models_differ_by_exactly_zero(tmp_path):
    rng = np.random.default_rng(2)
    y = _labels(rng, 150)
    conditions = {"clean": _confident(y, 10), "emg@24": _confident(y, 30),
                  "emg@6": _confident(y, 60), "lead_dropout@3": _confident(y, 40)}
    models = {"finetune/ptbxl/cnn/seed0": conditions, "scratch/cnn/seed0": conditions}
    rs = load_robustness({"small": _write_robustness(tmp_path / "small.npz", y, models)})
    tables = robustness_tables(rs, **BOOT)
    pairs = tables.pairs
    assert (pairs["finetune_degradation"] < 0).all()
    assert (pairs["difference"] == 0).all()
    assert (pairs["low"] == 0).all() and (pairs["high"] == 0).all()
    for claim in robustness_claims(tables, PLAN):
        assert claim.verdict == NOT_SUPPORTED
        assert (claim.estimate, claim.low, claim.high) == (0.0, 0.0, 0.0)


def test_robustness_figures_are_pngs_written_atomically(tmp_path):
    y = _labels(np.random.default_rng(1), 80)
    rs = load_robustness({"small": _write_robustness(tmp_path / "r" / "small.npz", y,
                                                     _robust_vs_fragile(y))})
    tables = robustness_tables(rs, **BOOT)
    out = tmp_path / "figures"
    for kind in ("emg", "lead_dropout", "powerline"):  # powerline: nothing to show
        path = plot_robustness(tables.curves, kind, out / f"robustness_{kind}.png", dpi=40,
                               level=0.95)
        assert path.read_bytes().startswith(PNG_MAGIC)
    assert sorted(p.name for p in out.iterdir()) == [
        "robustness_emg.png", "robustness_lead_dropout.png", "robustness_powerline.png"]


def test_robustness_record_ids_other_than_the_transfer_jobs_are_an_error_naming_the_file(
        tmp_path):
    y = _labels(np.random.default_rng(1), 50)
    jobs = [_job(tmp_path, "scratch", None, "small", "cnn", 0, y, _confident(y))]
    ids = [f"small_{i}" for i in range(50)]
    ids[7] = "other_record"
    path = _write_robustness(tmp_path / "small.npz", y, _robust_vs_fragile(y), ids=ids)
    with pytest.raises(ValueError, match=rf"{_at(path)} \(robustness of 'small'\) and .*"
                                         r"record_ids differ \(first difference at position 7"):
        load_robustness({"small": path}, load_runs(jobs))


def test_a_model_without_its_conditions_is_an_error_naming_the_file(tmp_path):
    y = _labels(np.random.default_rng(1), 30)
    models = _robust_vs_fragile(y)
    no_clean = {**models, "scratch/cnn/seed0": {c: _confident(y) for c in CONDITIONS}}
    path = _write_robustness(tmp_path / "a.npz", y, no_clean)
    with pytest.raises(ValueError, match=rf"{_at(path)}: model 'scratch/cnn/seed0' has no "
                                         r"scratch/cnn/seed0\|clean"):
        load_robustness({"small": path})
    lacking = {**models, "scratch/cnn/seed0": {"clean": _confident(y),
                                               "emg@24": _confident(y)}}
    path = _write_robustness(tmp_path / "b.npz", y, lacking)
    with pytest.raises(ValueError, match=rf"{_at(path)}: model 'scratch/cnn/seed0' lacks "
                                         r"condition\(s\) \['emg@6', 'lead_dropout@3'\]"):
        load_robustness({"small": path})
    bad_id = {"resnet/seed0": models["scratch/cnn/seed0"]}
    path = _write_robustness(tmp_path / "c.npz", y, bad_id)
    with pytest.raises(ValueError, match=rf"{_at(path)}: model id 'resnet/seed0' is neither"):
        load_robustness({"small": path})
    with pytest.raises(ValueError, match=r"d\.npz: robustness file of 'small' does not exist"):
        load_robustness({"small": tmp_path / "d.npz"})


# --------------------------------------------------------------------------------------------
# Everything


def _study(root: Path) -> tuple[list[dict], list[dict], dict[str, Path]]:
    """Two downstream sets, one architecture, upstreams a and b; fine-tuning from a helps a
    lot and has the lower MELEP. Robustness: the fine-tuned models stand noise, scratch
    collapses."""
    rng = np.random.default_rng(5)
    jobs, melep_jobs, files = [], [], {}
    for down, gain in (("small", 40), ("large", 20)):
        y = _labels(rng, 120)
        jobs.append(_job(root, "scratch", None, down, "cnn", 0, y, _confident(y, 50)))
        for up, wrong, score in (("a", 50 - gain, 0.3), ("b", 48, 0.6)):
            jobs.append(_job(root, "finetune", up, down, "cnn", 0, y, _confident(y, wrong)))
            melep_jobs.append(_melep_job(root, up, down, "cnn", 0, score))
        files[down] = _write_robustness(root / "robustness" / f"{down}.npz", y,
                                        _robust_vs_fragile(y),
                                        ids=[f"{down}_{i}" for i in range(120)])
    return jobs, melep_jobs, files


def test_write_beyond_writes_exactly_the_files_output_paths_lists(tmp_path):
    jobs, melep_jobs, files = _study(tmp_path)
    out = tmp_path / "results"
    paths, claims = write_beyond(melep_jobs, files, jobs, out, dpi=40, **RUN)
    assert [c.key for c in claims] == ["melep", "melep", "robustness_retention",
                                       "robustness_f1"]
    assert paths == beyond_output_paths(out, melep=True, robustness=True,
                                        kinds=["emg", "lead_dropout"])
    written = sorted(p for p in out.rglob("*") if p.is_file())
    assert written == sorted(paths.values())  # nothing else, no temporary file left behind
    for name, path in paths.items():
        if path.suffix == ".png":
            assert path.read_bytes().startswith(PNG_MAGIC), name
    table = pd.read_csv(paths["melep_csv"])
    assert len(table) == 4 and table["delta_paper"].notna().all()
    assert (table.loc[table["upstream"] == "a", "delta_paper"] > 0).all()
    ranking = pd.read_csv(paths["melep_ranking_csv"])
    assert ranking["melep_hit"].all() and len(ranking) == 4  # 2 sets x 2 selections
    md = paths["melep_md"].read_text()
    assert "lower is better" in md and "2 of 2 " in md
    pairs = pd.read_csv(paths["robustness_pairs_csv"])
    assert len(pairs) == 6 and (pairs["low"] > 0).all()
    text = paths["claims_beyond"].read_text()
    assert text.startswith("## Beyond the paper")
    assert "**Verdict: supported.**" in text
    for c in claims:
        assert c.title in text


def test_declared_outputs_are_written_with_nothing_to_show_when_there_are_no_results(tmp_path):
    out = tmp_path / "results"
    paths, _ = write_beyond([], {}, [], out, melep=True, robustness=True, kinds=["emg"],
                            dpi=40, **RUN)
    assert set(paths) == {"melep_csv", "melep_md", "melep_correlations_csv",
                          "melep_ranking_csv", "melep_scatter", "robustness_csv",
                          "robustness_pairs_csv", "robustness_md", "robustness_emg",
                          "claims_beyond"}
    assert all(p.is_file() for p in paths.values())
    assert "Nothing to show" in paths["melep_md"].read_text()
    assert "Nothing to show" in paths["robustness_md"].read_text()
    assert paths["robustness_emg"].read_bytes().startswith(PNG_MAGIC)
    claims = paths["claims_beyond"].read_text()
    assert claims.count(f"**Verdict: {NOT_TESTABLE}.**") == 4
    only_claims, _ = write_beyond([], {}, [], tmp_path / "none", dpi=40, **RUN)
    assert list(only_claims) == ["claims_beyond"]
    assert "not part of this run" in only_claims["claims_beyond"].read_text()


def test_a_perturbation_kind_the_rule_did_not_declare_is_an_error_naming_the_file(tmp_path):
    y = _labels(np.random.default_rng(1), 30)
    path = _write_robustness(tmp_path / "small.npz", y, _robust_vs_fragile(y))
    with pytest.raises(ValueError, match=rf"{_at(path)}: perturbation kind\(s\) \['lead_dropout'\] "
                                         "are not among the kinds declared"):
        write_beyond([], {"small": path}, [], tmp_path / "out", kinds=["emg"], dpi=40, **RUN)


def test_the_claims_section_has_an_overview_and_each_claim_with_its_rule():
    text = beyond_section([*melep_claims(None, PLAN, SELECTIONS), *robustness_claims(None, PLAN)])
    assert text.splitlines()[0] == "## Beyond the paper"
    assert "| claim | paper selection | validation selection |" in text
    assert text.count("*Rule:*") == 4


@pytest.mark.parametrize("regime, upstream", [("finetune", "ptbxl"), ("scratch", None)])
def test_a_robustness_model_id_reads_back_as_the_model_it_names(regime, upstream):
    model_id = robustness_model_id(regime, upstream, "resnet1d18", 3)
    assert _parse_model_id(model_id, Path("r.npz")) == (
        regime, upstream or "", "resnet1d18", 3)


@pytest.mark.parametrize("regime, upstream", [("finetune", None), ("scratch", "ptbxl"),
                                              ("pretrain", "ptbxl")])
def test_no_robustness_model_id_for_a_model_robustness_does_not_score(regime, upstream):
    with pytest.raises(ValueError, match="no robustness model id"):
        robustness_model_id(regime, upstream, "gru", 0)
