"""The training engine on small in-memory shards: regimes, outputs, determinism, divergence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ecg_transfer import models, train
from ecg_transfer.datasets import STANDARD_LEADS, RecordSet
from ecg_transfer.shards import SplitSpec, read_shard, split_records, write_shard


def _shard(path, n=48, n_classes=3, n_samples=64, seed=0, dataset="toy"):
    """A learnable toy problem: class k adds a sine of frequency k+1 to lead k."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, n_classes)) < 0.4).astype(np.uint8)
    t = np.linspace(0, 1, n_samples, dtype=np.float32)
    x = rng.normal(0, 0.3, (n, 12, n_samples)).astype(np.float32)
    for k in range(n_classes):
        x[:, k, :] += labels[:, k : k + 1] * np.sin(2 * np.pi * (k + 1) * 3 * t)
    rs = RecordSet(signals=x, labels=labels, classes=[f"c{k}" for k in range(n_classes)],
                   record_ids=[f"r{i:03d}" for i in range(n)], fs=50.0,
                   leads=list(STANDARD_LEADS), patient_ids=None, folds=None, dropped=[],
                   protocol="paper")
    split, method = split_records(rs, SplitSpec(test_size=0.25, random_state=1))
    return write_shard(path, dataset, rs, split, method)


def _run(tmp_path, shard, name, pretrained=None, **kw):
    settings = train.TrainSettings(arch=kw.pop("arch", "resnet1d18"), epochs=kw.pop("epochs", 3),
                                   batch_size=16, lr=kw.pop("lr", 0.001), seed=kw.pop("seed", 0),
                                   **kw)
    out = tmp_path / name
    summary = train.train(shard, settings, metrics_path=out / "metrics.csv",
                          checkpoint_path=out / "model.pt",
                          pretrained=pretrained)
    return out, summary


def test_scratch_training_writes_metrics_checkpoint_and_sidecar(tmp_path):
    shard = _shard(tmp_path / "toy.h5")
    out, summary = _run(tmp_path, shard, "scratch", epochs=4)
    m = pd.read_csv(out / "metrics.csv")
    assert list(m.columns) == list(train.METRIC_COLUMNS)
    assert list(m.epoch) == [1, 2, 3, 4]
    assert m.test_f1.between(0, 1).all() and (m.seconds > 0).all()
    ckpt = torch.load(out / "model.pt", weights_only=True)
    assert set(ckpt) >= {"model", "optimizer", "config", "epoch", "best_metric"}
    out2, _ = _run(tmp_path, shard, "no_opt", epochs=1, save_optimizer=False)
    assert "optimizer" not in torch.load(out2 / "model.pt", weights_only=True)
    assert ckpt["epoch"] == int(m.test_f1.idxmax()) + 1
    assert ckpt["best_metric"] == pytest.approx(m.test_f1.max())
    assert ckpt["config"]["classes"] == ["c0", "c1", "c2"]
    assert summary["best_test_f1"] == pytest.approx(m.test_f1.max())
    assert (out / "model.json").is_file()


def test_learns_the_toy_problem_better_than_a_constant(tmp_path):
    shard = _shard(tmp_path / "toy.h5", n=96)
    _, summary = _run(tmp_path, shard, "s", arch="resnet1d18", epochs=8, lr=0.003)
    assert summary["best_test_f1"] > summary["baseline_f1"] + 0.1


def test_finetune_loads_backbone_and_replaces_head(tmp_path):
    up = _shard(tmp_path / "up.h5", n_classes=4, dataset="up")
    down = _shard(tmp_path / "down.h5", n_classes=2, seed=1, dataset="down")
    up_out, _ = _run(tmp_path, up, "pre", epochs=1)
    backbone = train.load_pretrained_backbone(up_out / "model.pt", n_classes=2)
    pre = torch.load(up_out / "model.pt", weights_only=True)["model"]
    state = backbone.state_dict()
    assert state["fc2.weight"].shape == (2, 512)
    for key, value in pre.items():
        if not key.startswith("fc2."):
            assert torch.equal(state[key], value), key
    _, summary = _run(tmp_path, down, "ft", init_from="pretrained",
                      pretrained=up_out / "model.pt", epochs=1)
    assert summary["classes"] == ["c0", "c1"]


@pytest.mark.parametrize("arch", ["gru", "bilstm"])
def test_recurrent_finetune(tmp_path, arch):
    up = _shard(tmp_path / "up.h5", n_classes=4)
    down = _shard(tmp_path / "down.h5", n_classes=2, seed=1)
    up_out, _ = _run(tmp_path, up, "pre", arch=arch, epochs=1)
    _, summary = _run(tmp_path, down, "ft", arch=arch, init_from="pretrained",
                      pretrained=up_out / "model.pt", epochs=1)
    assert summary["epochs_run"] == 1


def test_same_seed_same_numbers_different_seed_different(tmp_path):
    shard = _shard(tmp_path / "toy.h5")
    a, _ = _run(tmp_path, shard, "a", arch="gru", epochs=2, seed=3)
    b, _ = _run(tmp_path, shard, "b", arch="gru", epochs=2, seed=3)
    c, _ = _run(tmp_path, shard, "c", arch="gru", epochs=2, seed=4)
    cols = ["train_loss", "test_loss", "test_f1"]
    ma, mb, mc = (pd.read_csv(p / "metrics.csv")[cols] for p in (a, b, c))
    pd.testing.assert_frame_equal(ma, mb)
    assert not ma.equals(mc)


def test_non_finite_loss_stops_with_epoch_and_batch(tmp_path):
    import h5py

    shard = _shard(tmp_path / "toy.h5")
    with h5py.File(shard, "r+") as f:  # one corrupt sample, as a broken record would give
        f["signals"][5, 0, 10] = np.nan
    with pytest.raises(train.NonFiniteLossError, match=r"epoch 1, batch \d+"):
        _run(tmp_path, shard, "nan", arch="lstm", epochs=2)
    assert not (tmp_path / "nan" / "metrics.csv").exists()


def test_read_shard_roundtrip_and_split(tmp_path):
    path = _shard(tmp_path / "toy.h5", n=40)
    s = read_shard(path)
    assert s.signals.shape == (40, 12, 64) and s.signals.dtype == np.float32
    assert (s.split == 1).sum() == 10
    assert s.classes == ["c0", "c1", "c2"]
    assert models.build("gru", 3, n_samples=64)(torch.from_numpy(s.signals[:2])).shape == (2, 3)


def test_load_pretrained_in_one_line(tmp_path):
    shard = _shard(tmp_path / "up.h5", n_classes=4)
    out, _ = _run(tmp_path, shard, "pre", arch="gru", epochs=1)
    model = models.load_pretrained(out / "model.pt")
    assert model.checkpoint_config["classes"] == ["c0", "c1", "c2", "c3"]
    x = torch.from_numpy(read_shard(shard).signals[:3])
    assert model(x).shape == (3, 4)
    assert models.load_pretrained(out / "model.pt", n_classes=2)(x).shape == (3, 2)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"bad\.pt: not a loadable"):
        models.load_pretrained(bad)
