"""Saved models on other inputs: MELEP of a pretrained head, predictions under perturbations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_train import _run, _shard

from ecg_transfer import evaluate, melep, train
from ecg_transfer.shards import read_shard
from ecg_transfer.splits import TEST, TRAIN


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evaluate")
    shard = _shard(tmp / "toy.h5", n=64)
    out, _ = _run(tmp, shard, "m", arch="gru", epochs=2, validation_fraction=0.0)
    return shard, out


def test_transferability_scores_the_training_records_through_the_source_head(trained, tmp_path):
    shard, out = trained
    written = evaluate.transferability({"m": out / "model.pt"}, shard, tmp_path / "melep.json")
    assert json.loads((tmp_path / "melep.json").read_text()) == written
    assert list(written["models"]) == ["m"]
    result = written["models"]["m"]
    s = read_shard(shard)
    train_mask = s.split == TRAIN
    assert result["target"]["records"] == int(train_mask.sum())
    assert result["source"]["checkpoint"] == str(out / "model.pt")
    model = evaluate.models.load_pretrained(out / "model.pt")
    theta = evaluate.predict(model, s.signals[train_mask])
    assert result["melep"]["score"] == pytest.approx(melep.melep(theta, s.labels[train_mask]).score)
    assert result["lower_is_better"] is True


def test_transferability_of_two_models_in_one_call_equals_each_scored_alone(trained, tmp_path):
    shard, out = trained
    other, _ = _run(tmp_path, shard, "other", arch="gru", epochs=1, seed=1,
                    validation_fraction=0.0)
    checkpoints = {"a/gru/seed0": out / "model.pt", "b/gru/seed1": other / "model.pt"}
    both = evaluate.transferability(checkpoints, shard, tmp_path / "two.json")
    assert json.loads((tmp_path / "two.json").read_text()) == both
    assert list(both["models"]) == list(checkpoints)
    for model_id, checkpoint in checkpoints.items():
        alone = evaluate.transferability({model_id: checkpoint}, shard,
                                         tmp_path / "one.json")["models"][model_id]
        entry = both["models"][model_id]
        assert entry["source"]["checkpoint"] == str(checkpoint)
        for name in ("melep", "leep_argmax"):
            assert entry[name]["score"] == pytest.approx(alone[name]["score"])
            assert entry[name]["per_label"] == pytest.approx(alone[name]["per_label"])
    # two different models: the entries are each its own, not one score copied
    assert both["models"]["a/gru/seed0"]["melep"]["score"] != pytest.approx(
        both["models"]["b/gru/seed1"]["melep"]["score"])


def test_transferability_of_no_model_is_an_error(trained, tmp_path):
    shard, _ = trained
    with pytest.raises(ValueError, match="no models given"):
        evaluate.transferability({}, shard, tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()


def test_robustness_clean_probabilities_are_the_saved_epochs_predictions(trained, tmp_path):
    shard, out = trained
    conditions = evaluate.robustness({"m": out / "model.pt", "again": out / "model.pt"}, shard,
                                     tmp_path / "r.npz",
                                     levels={"emg": [24, 6], "lead_dropout": [3]}, seed=0)
    assert conditions == ["clean", "emg@24", "emg@6", "lead_dropout@3"]
    r = evaluate.read_robustness(tmp_path / "r.npz")
    assert list(r["models"]) == ["m", "again"]
    saved = train.read_predictions(out / "pred.npz")
    assert list(r["record_ids"]) == list(saved["record_ids"])
    np.testing.assert_allclose(r["m|clean"].astype(float), saved["paper_probs"].astype(float),
                               atol=2e-3)
    assert not np.array_equal(r["m|emg@6"], r["m|clean"])
    # every model sees the same perturbed inputs: the same model gives the same probabilities
    assert np.array_equal(r["again|emg@6"], r["m|emg@6"])
    assert (read_shard(shard).split == TEST).sum() == len(r["y_true"])


def test_an_unknown_perturbation_and_a_misfit_shard_are_errors(trained, tmp_path):
    shard, out = trained
    with pytest.raises(ValueError, match="unknown perturbation 'hum'"):
        evaluate.robustness({"m": out / "model.pt"}, shard, tmp_path / "r.npz",
                            levels={"hum": [1]}, seed=0)
    other = _shard(tmp_path / "long.h5", n_samples=128)
    with pytest.raises(ValueError, match=r"takes \(leads, samples\) \(12, 64\)"):
        evaluate.transferability({"m": out / "model.pt"}, other, tmp_path / "m.json")
