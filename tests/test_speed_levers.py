"""The speed settings (train.SPEED_KEYS) change how fast a job runs, never its numbers.

Each lever runs here on the CPU, the path a GPU run takes too (torch.compile's inductor
backend; a larger no-grad scoring batch), against the plain path on the same toy job: the
per-epoch losses and F1 must agree up to floating-point noise, and the checkpoint must load
into a plain model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from test_train import _run, _shard

from ecg_transfer import evaluate, models, train
from ecg_transfer.shards import read_shard
from ecg_transfer.splits import TEST


def _metrics(out):
    return pd.read_csv(out / "metrics.csv")


def _same_numbers(a, b, rtol):
    for column in ("train_loss", "test_loss"):
        np.testing.assert_allclose(a[column], b[column], rtol=rtol, err_msg=column)
    # F1 counts thresholded predictions: noise could flip one in principle, not on this data
    np.testing.assert_allclose(a["test_f1"], b["test_f1"], atol=1e-9)


def test_a_larger_scoring_batch_gives_the_same_metrics(tmp_path):
    shard = _shard(tmp_path / "toy.h5", n=64)
    plain, _ = _run(tmp_path, shard, "plain", arch="resnet1d18", epochs=2)
    big, _ = _run(tmp_path, shard, "big", arch="resnet1d18", epochs=2, eval_batch_size=512)
    _same_numbers(_metrics(plain), _metrics(big), rtol=1e-5)


def test_torch_compile_trains_the_same_model_and_saves_a_plain_checkpoint(tmp_path):
    shard = _shard(tmp_path / "toy.h5", n=64)
    # one epoch: three Adam steps. Fused kernels sum in another order, and every further step
    # amplifies that (after two epochs the losses differ in the 3rd-4th digit).
    plain, _ = _run(tmp_path, shard, "plain", arch="resnet1d18", epochs=1,
                    save_optimizer=False)
    comp, summary = _run(tmp_path, shard, "compiled", arch="resnet1d18", epochs=1,
                         save_optimizer=False, compile="default")
    assert summary["compile"] == "default"
    _same_numbers(_metrics(plain), _metrics(comp), rtol=2e-4)
    state = torch.load(comp / "model.pt", weights_only=True)["model"]
    assert not any(k.startswith("_orig_mod") for k in state)  # the module's own names
    # the saved weights are the ones the compiled run scored: a plain model loaded from them
    # gives the test probabilities the job saved
    model = models.load_pretrained(comp / "model.pt")
    data = read_shard(shard)
    probs = evaluate.predict(model, data.signals[data.split == TEST])
    saved = train.read_predictions(comp / "pred.npz")["paper_probs"].astype(np.float32)
    np.testing.assert_allclose(probs, saved, atol=2e-3)


def test_speed_settings_are_checked_and_kept_apart_from_the_study_keys():
    with pytest.raises(ValueError, match="compile"):
        train.TrainSettings(arch="gru", epochs=1, batch_size=2, lr=0.1, compile="fast")
    with pytest.raises(ValueError, match="eval_batch_size"):
        train.TrainSettings(arch="gru", epochs=1, batch_size=2, lr=0.1, eval_batch_size=0)
    stage = {"epochs": 1, "batch_size": 8, "lr": 0.01}
    s = train.settings_from_config(stage, {}, arch="gru", seed=0, init_from="scratch",
                                   speed={"compile": "default", "eval_batch_size": 1024})
    assert (s.compile, s.eval_batch_size) == ("default", 1024)
    with pytest.raises(ValueError, match="compile"):  # not a study key: the workflow keeps
        train.settings_from_config(stage, {"compile": "default"}, arch="gru", seed=0,
                                   init_from="scratch")  # it out of job params
    assert set(train.SPEED_KEYS) <= set(train._NOT_IN_FINGERPRINT)
