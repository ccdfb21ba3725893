"""The training engine on small in-memory shards: regimes, outputs, determinism, divergence."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from ecg_transfer import models, optim, train
from ecg_transfer.datasets import STANDARD_LEADS, RecordSet
from ecg_transfer.metrics import EPOCH_COLUMNS, select_epochs, weighted_f1
from ecg_transfer.shards import read_shard, write_shard
from ecg_transfer.splits import TEST, TRAIN, VAL, SplitSpec, split_records


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


def _run(tmp_path, shard, name, pretrained=None, resume_dir=None, **kw):
    kw.setdefault("resume_interval_s", 0.0)  # tests of resume want a state after every epoch
    settings = train.TrainSettings(arch=kw.pop("arch", "resnet1d18"), epochs=kw.pop("epochs", 3),
                                   batch_size=16, lr=kw.pop("lr", 0.001), seed=kw.pop("seed", 0),
                                   **kw)
    out = tmp_path / name
    summary = train.train(shard, settings, metrics_path=out / "metrics.csv",
                          checkpoint_path=out / "model.pt", predictions_path=out / "pred.npz",
                          pretrained=pretrained, resume_dir=resume_dir)
    return out, summary


def test_scratch_training_writes_metrics_checkpoint_and_sidecar(tmp_path):
    shard = _shard(tmp_path / "toy.h5")
    out, summary = _run(tmp_path, shard, "scratch", epochs=4)
    m = pd.read_csv(out / "metrics.csv")
    assert list(m.columns) == list(EPOCH_COLUMNS)
    assert list(m.epoch) == [1, 2, 3, 4]
    assert m.test_f1.between(0, 1).all() and (m.seconds > 0).all()
    ckpt = torch.load(out / "model.pt", weights_only=True)
    assert set(ckpt) >= {"model", "optimizer", "config", "epoch", "best_metric"}
    out2, _ = _run(tmp_path, shard, "no_opt", epochs=1, save_optimizer=False)
    assert "optimizer" not in torch.load(out2 / "model.pt", weights_only=True)
    assert ckpt["epoch"] == int(m.test_f1.idxmax()) + 1
    assert ckpt["best_metric"] == pytest.approx(m.test_f1.max())
    assert ckpt["selection"] == "paper"
    assert ckpt["config"]["classes"] == ["c0", "c1", "c2"]
    assert summary["best_test_f1"] == pytest.approx(m.test_f1.max())
    # a validation split was carved from train (10%, seeded) and scored every epoch
    assert summary["records"] == {"train": 32, "val": 4, "test": 12}
    assert m.val_f1.between(0, 1).all() and (m.val_loss > 0).all()
    val_epoch = int(m.val_f1.idxmax()) + 1
    assert summary["val_selected_epoch"] == val_epoch
    assert summary["val_selected_test_f1"] == m.test_f1[val_epoch - 1]
    sidecar = json.loads((out / "model.json").read_text())
    for key in ("arch", "classes", "leads", "fs", "n_samples", "dataset", "protocol", "scaling",
                "upstream", "code_version"):
        assert key in sidecar, key
    assert sidecar["metrics"]["paper_selection"] == {
        "what": "best test F1 over epochs (chosen on test: optimistic)",
        "epoch": ckpt["epoch"], "test_f1": ckpt["best_metric"]}
    assert sidecar["metrics"]["validation_selection"]["epoch"] == val_epoch


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


# --------------------------------------------------------------------------------------------
# Model selection


def test_validation_selection_saves_the_best_validation_epoch(tmp_path):
    shard = _shard(tmp_path / "toy.h5", n=96)
    out, summary = _run(tmp_path, shard, "val", epochs=4, lr=0.003, selection="validation",
                        validation_fraction=0.2)
    m = pd.read_csv(out / "metrics.csv")
    ckpt = torch.load(out / "model.pt", weights_only=True)
    assert ckpt["selection"] == "validation"
    assert ckpt["epoch"] == int(m.val_f1.idxmax()) + 1 == summary["val_selected_epoch"]
    assert ckpt["best_metric"] == m.val_f1.max()
    assert summary["val_selected_test_f1"] == m.test_f1[ckpt["epoch"] - 1]
    assert summary["best_test_f1"] == m.test_f1.max()  # the paper's number is reported too
    assert summary["records"]["val"] == 14  # 20% of the 72 train records, carved seeded


def test_the_shards_own_validation_split_is_used(tmp_path):
    shard = read_shard(_shard(tmp_path / "toy.h5", n=40))
    split = shard.split.copy()
    split[np.flatnonzero(split == TRAIN)[:7]] = VAL
    rs = RecordSet(signals=shard.signals, labels=shard.labels, classes=shard.classes,
                   record_ids=shard.record_ids, fs=shard.fs, leads=shard.leads, patient_ids=None,
                   folds=None, dropped=[], protocol="paper")
    path = write_shard(tmp_path / "with_val.h5", "toy", rs, split, "given")
    _, summary = _run(tmp_path, path, "own", epochs=1, validation_fraction=0.5)
    assert summary["records"] == {"train": 23, "val": 7, "test": 10}


def test_no_validation_split_leaves_val_columns_empty(tmp_path):
    shard = _shard(tmp_path / "toy.h5")
    out, summary = _run(tmp_path, shard, "noval", arch="gru", epochs=2, validation_fraction=0)
    m = pd.read_csv(out / "metrics.csv")
    assert m.val_f1.isna().all() and m.val_loss.isna().all()
    assert summary["records"]["train"] == 36 and summary["val_selected_epoch"] is None
    with pytest.raises(ValueError, match=r"toy\.h5: training\.selection is 'validation'"):
        _run(tmp_path, shard, "noval2", arch="gru", epochs=1, validation_fraction=0,
             selection="validation")


def test_settings_are_checked_with_field_names():
    with pytest.raises(ValueError, match=r"TrainSettings\.selection is 'best'"):
        train.TrainSettings("gru", 1, 8, 0.1, selection="best")
    with pytest.raises(ValueError, match="strategy='linear_probe' needs init_from='pretrained'"):
        train.TrainSettings("gru", 1, 8, 0.1, strategy="linear_probe")
    with pytest.raises(ValueError, match="validation_fraction must be in"):
        train.TrainSettings("gru", 1, 8, 0.1, validation_fraction=1.0)
    with pytest.raises(ValueError, match=r"training.<stage> has unknown key\(s\) \['momentum'\]"):
        train.settings_from_config({"epochs": 1, "batch_size": 8, "lr": 0.1, "momentum": 0.9},
                                   {}, arch="gru", seed=0, init_from="scratch")
    s = train.settings_from_config(
        {"epochs": 3, "batch_size": 8, "lr": 0.1, "strategy": "discriminative",
         "backbone_lr_factor": 0.5},
        {"selection": "validation", "validation_fraction": 0.2, "precision": "bf16"},
        arch="gru", seed=4, init_from="pretrained", threads=2, save_optimizer=False)
    assert (s.strategy, s.backbone_lr_factor, s.selection, s.precision, s.seed) == (
        "discriminative", 0.5, "validation", "bf16", 4)


def test_bf16_on_cpu_trains_in_float32(tmp_path, caplog):
    shard = _shard(tmp_path / "toy.h5")
    a, _ = _run(tmp_path, shard, "fp32", arch="gru", epochs=1)
    with caplog.at_level(logging.INFO, logger="ecg_transfer.train"):
        b, _ = _run(tmp_path, shard, "bf16", arch="gru", epochs=1, precision="bf16")
    assert "applies on CUDA only" in caplog.text
    cols = ["train_loss", "val_loss", "val_f1", "test_loss", "test_f1"]
    pd.testing.assert_frame_equal(pd.read_csv(a / "metrics.csv")[cols],
                                  pd.read_csv(b / "metrics.csv")[cols])


# --------------------------------------------------------------------------------------------
# Fine-tuning strategies


@pytest.fixture
def pretrained(tmp_path):
    up = _shard(tmp_path / "up.h5", n_classes=4, dataset="up")
    down = _shard(tmp_path / "down.h5", n_classes=2, seed=1, dataset="down")
    up_out, _ = _run(tmp_path, up, "pre", epochs=1)
    return up_out / "model.pt", down


def _initial_head(path, seed=0):
    """The fresh top layer a fine-tune job starts with (same seed, same RNG use as the engine)."""
    train.seed_everything(seed)
    return train.load_pretrained_backbone(path, n_classes=2).fc2.weight.detach().clone()


def test_linear_probe_leaves_the_backbone_bit_identical(tmp_path, pretrained):
    path, down = pretrained
    out, summary = _run(tmp_path, down, "lp", init_from="pretrained", pretrained=path, epochs=2,
                        lr=0.01, strategy="linear_probe")
    pre = torch.load(path, weights_only=True)["model"]
    ft = torch.load(out / "model.pt", weights_only=True)["model"]
    backbone = [k for k in pre if not k.startswith("fc2.")]
    assert any("running_mean" in k for k in backbone)  # BatchNorm statistics are checked too
    for key in backbone:
        assert torch.equal(pre[key], ft[key]), key
    assert not torch.equal(ft["fc2.weight"], _initial_head(path))
    assert summary["upstream"]["dataset"] == "up"


def test_discriminative_learning_rates(tmp_path, pretrained):
    path, down = pretrained
    factor, lr = 1e-6, 0.01
    out, _ = _run(tmp_path, down, "disc", init_from="pretrained", pretrained=path, epochs=2,
                  lr=lr, strategy="discriminative", backbone_lr_factor=factor)
    full, _ = _run(tmp_path, down, "full", init_from="pretrained", pretrained=path, epochs=2,
                   lr=lr)
    pre = torch.load(path, weights_only=True)["model"]

    def backbone_shift(run):
        ft = torch.load(run / "model.pt", weights_only=True)["model"]
        return max((ft[k] - pre[k]).abs().max().item() for k in pre
                   if not k.startswith("fc2.") and ft[k].is_floating_point()
                   and "running" not in k)

    # Adam moves a weight by about lr per step: 3 steps per epoch, 2 epochs, lr x factor
    assert backbone_shift(out) < 10 * 6 * lr * factor
    assert backbone_shift(full) > 1e-3
    head = torch.load(out / "model.pt", weights_only=True)["model"]["fc2.weight"]
    assert (head - _initial_head(path)).abs().max() > 1e-3


def test_make_optimizer_groups():
    model = models.build("gru", n_classes=2, n_samples=16)
    s = train.TrainSettings("gru", 1, 8, 0.01, init_from="pretrained",
                            strategy="discriminative", backbone_lr_factor=0.1)
    opt = train.make_optimizer(model, s)
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(0.001), 0.01]
    assert opt.param_groups[1]["params"] == models.head_parameters(model)


# --------------------------------------------------------------------------------------------
# Resume

RESUME_KW = {"arch": "resnet1d18", "epochs": 5, "lr": 0.003, "seed": 2,
             "resume_interval_s": 0.0}
_CHILD = """
import json, sys
from ecg_transfer import train
shard, out, resume, kw = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
settings = train.TrainSettings(batch_size=16, **kw)
train.train(shard, settings, metrics_path=out + "/metrics.csv",
            checkpoint_path=out + "/model.pt", resume_dir=resume)
"""


def _same_checkpoint(a, b):
    ca, cb = (torch.load(p / "model.pt", weights_only=True) for p in (a, b))
    assert (ca["epoch"], ca["best_metric"]) == (cb["epoch"], cb["best_metric"])
    assert ca["model"].keys() == cb["model"].keys()
    for key in ca["model"]:
        assert torch.equal(ca["model"][key], cb["model"][key]), key
    for i, state in ca["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, cb["optimizer"]["state"][i][name]), (i, name)


def _same_metrics(a, b):
    ma, mb = (pd.read_csv(p / "metrics.csv").drop(columns="seconds") for p in (a, b))
    pd.testing.assert_frame_equal(ma, mb, check_exact=True)
    pa, pb = (train.read_predictions(p / "pred.npz") for p in (a, b))
    assert pa.keys() == pb.keys()
    assert pa["epoch_probs"].shape[0] == len(ma)  # every epoch's, the restored ones included
    for key in pa:
        # byte for byte: the results stage must see the same numbers, not close ones
        assert (pa[key].dtype, pa[key].shape) == (pb[key].dtype, pb[key].shape), key
        assert pa[key].tobytes() == pb[key].tobytes(), key


def _final_snapshot(folder, epoch):
    return torch.load(folder / f"epoch{epoch:04d}.pt", weights_only=True)


def test_killed_job_resumes_and_ends_bit_identical(tmp_path, caplog, monkeypatch):
    shard = _shard(tmp_path / "toy.h5", n=96, n_samples=256)
    resume = tmp_path / "resume"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(shard), str(tmp_path / "killed"), str(resume),
         json.dumps(RESUME_KW)],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 300
        while not (resume / "state.pt").exists():
            assert child.poll() is None, child.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.3)  # into the next epoch
    finally:
        child.kill()  # SIGKILL: no handler, no cleanup, as on preemption
        child.wait()
    assert child.returncode == -signal.SIGKILL
    saved = torch.load(resume / "state.pt", weights_only=True)["epoch"]
    assert 1 <= saved < RESUME_KW["epochs"]
    assert not (tmp_path / "killed" / "metrics.csv").exists()

    # keep the final resume state of both runs, to compare the last epoch's weights too
    monkeypatch.setattr(train.ResumeStore, "clear", lambda self: None)
    with caplog.at_level(logging.INFO, logger="ecg_transfer.train"):
        _run(tmp_path, shard, "killed", resume_dir=resume, **RESUME_KW)
    assert f"resuming after epoch {saved} of 5" in caplog.text
    assert f"epoch {saved}/5" not in caplog.text  # the completed epochs did not run again
    reference = tmp_path / "ref_resume"
    _run(tmp_path, shard, "reference", resume_dir=reference, **RESUME_KW)
    _same_metrics(tmp_path / "killed", tmp_path / "reference")
    _same_checkpoint(tmp_path / "killed", tmp_path / "reference")
    last_a, last_b = _final_snapshot(resume, 5), _final_snapshot(reference, 5)
    for key, value in last_a["model"].items():
        assert torch.equal(value, last_b["model"][key]), key
    # writing resume states changes nothing: same numbers as a run without them
    _run(tmp_path, shard, "plain", **RESUME_KW)
    _same_metrics(tmp_path / "plain", tmp_path / "reference")


def _die_after(monkeypatch, epochs):
    """Make the job fail after ``epochs`` completed epochs (two scored splits per epoch)."""
    real, calls = train._score, []

    def scoring(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2 * epochs:
            raise RuntimeError("node preempted")
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "_score", scoring)


def test_resume_state_is_removed_after_success(tmp_path, monkeypatch):
    shard = _shard(tmp_path / "toy.h5")
    resume = tmp_path / "resume"
    with monkeypatch.context() as m:
        _die_after(m, 2)
        with pytest.raises(RuntimeError, match="preempted"):
            _run(tmp_path, shard, "a", arch="gru", epochs=3, resume_dir=resume)
    kept = {p.name for p in resume.iterdir()}
    # the last completed epoch, plus the selected epoch's snapshot where that is another one
    best = torch.load(resume / "state.pt", weights_only=True)["best_epoch"]
    assert kept == {"state.pt", "epoch0002.pt", f"epoch{best:04d}.pt"}
    _, summary = _run(tmp_path, shard, "a", arch="gru", epochs=3, resume_dir=resume)
    assert summary["resumed_after_epoch"] == 2
    assert not resume.exists()


@pytest.mark.parametrize("killed_after", [1, 2, 3])
def test_a_resumed_job_writes_the_same_per_epoch_probabilities_as_an_uninterrupted_one(
        tmp_path, monkeypatch, killed_after):
    shard = _shard(tmp_path / "toy.h5", n=96)
    kw = {"arch": "gru", "epochs": 4, "lr": 0.003, "validation_fraction": 0.2}
    resume = tmp_path / "resume"
    with monkeypatch.context() as m:
        _die_after(m, killed_after)
        with pytest.raises(RuntimeError, match="preempted"):
            _run(tmp_path, shard, "resumed", resume_dir=resume, **kw)
    assert torch.load(resume / "state.pt", weights_only=True)["epoch"] == killed_after
    _, summary = _run(tmp_path, shard, "resumed", resume_dir=resume, **kw)
    assert summary["resumed_after_epoch"] == killed_after
    _run(tmp_path, shard, "uninterrupted", **kw)
    _same_metrics(tmp_path / "resumed", tmp_path / "uninterrupted")
    pred = train.read_predictions(tmp_path / "resumed" / "pred.npz")
    assert pred["epoch_probs"].shape == (4, 24, 3)


def test_resume_state_of_another_config_is_ignored(tmp_path, monkeypatch, caplog):
    shard = _shard(tmp_path / "toy.h5")
    resume = tmp_path / "resume"
    with monkeypatch.context() as m:
        _die_after(m, 1)
        with pytest.raises(RuntimeError, match="preempted"):
            _run(tmp_path, shard, "a", arch="gru", epochs=2, resume_dir=resume)
    with caplog.at_level(logging.INFO, logger="ecg_transfer.train"):
        _, summary = _run(tmp_path, shard, "b", arch="gru", epochs=2, lr=0.002,
                          resume_dir=resume)
    assert "ignoring resume state" in caplog.text and "config.lr" in caplog.text
    assert summary["resumed_after_epoch"] is None
    _run(tmp_path, shard, "fresh", arch="gru", epochs=2, lr=0.002)
    _same_metrics(tmp_path / "b", tmp_path / "fresh")


def test_predictions_hold_the_test_probabilities_of_both_selections_epochs(tmp_path):
    shard = _shard(tmp_path / "toy.h5", n=96)
    out, summary = _run(tmp_path, shard, "p", arch="gru", epochs=4, validation_fraction=0.2)
    pred = train.read_predictions(out / "pred.npz")
    m = pd.read_csv(out / "metrics.csv")
    chosen = select_epochs(m.to_dict("records"))
    assert int(pred["paper_epoch"]) == chosen["best_epoch"] == summary["best_epoch"]
    assert int(pred["validation_epoch"]) == chosen["val_selected_epoch"]
    full = read_shard(shard)
    test = full.split == TEST
    assert list(pred["record_ids"]) == [r for r, t in zip(full.record_ids, test, strict=True) if t]
    assert np.array_equal(pred["y_true"], full.labels[test])
    assert list(pred["classes"]) == full.classes
    for name, epoch in (("paper", chosen["best_epoch"]),
                        ("validation", chosen["val_selected_epoch"])):
        probs = pred[f"{name}_probs"]
        # float32, as scored: AUROC from float16 probabilities ties near 1
        assert probs.dtype == np.float32 and probs.shape == full.labels[test].shape
        # the very numbers metrics.csv's test F1 was computed from
        assert weighted_f1(pred["y_true"], probs) == m.loc[m.epoch == epoch, "test_f1"].item()
        # and the per-epoch array holds the same epoch, rounded to float16
        assert np.array_equal(pred["epoch_probs"][epoch - 1], probs.astype(np.float16))


def test_predictions_hold_the_test_probabilities_after_every_epoch(tmp_path):
    shard = _shard(tmp_path / "toy.h5", n=96)
    out, _ = _run(tmp_path, shard, "p", arch="gru", epochs=5, lr=0.003, validation_fraction=0.2)
    pred = train.read_predictions(out / "pred.npz")
    m = pd.read_csv(out / "metrics.csv")
    per_epoch = pred["epoch_probs"]
    assert per_epoch.dtype == np.float16 and per_epoch.shape == (5, *pred["y_true"].shape)
    assert ((per_epoch >= 0) & (per_epoch <= 1)).all()
    assert not np.array_equal(per_epoch[0], per_epoch[-1])  # the model moved between epochs
    exact = 0
    for epoch, logged in zip(m.epoch, m.test_f1, strict=True):
        probs = per_epoch[epoch - 1]
        # Rounding to float16 keeps every probability on its side of 0.5, except one in the
        # 1.2e-4 just below, which becomes exactly 0.5: without a 0.5 the F1 is the logged one.
        if (probs == 0.5).any():
            assert weighted_f1(pred["y_true"], probs) == pytest.approx(logged, abs=0.1)
        else:
            assert weighted_f1(pred["y_true"], probs) == logged, epoch
            exact += 1
    assert exact >= 4  # this run has no 0.5 at all; one epoch may land on one elsewhere
    # the paper selection redone from the per-epoch array (argmax of test F1, the earliest)
    # finds the job's own, where rounding moved no F1
    f1 = [weighted_f1(pred["y_true"], p) for p in per_epoch]
    if exact == len(m):
        assert int(np.argmax(f1)) + 1 == int(pred["paper_epoch"])
    assert np.array_equal(per_epoch[int(pred["paper_epoch"]) - 1],
                          pred["paper_probs"].astype(np.float16))


def test_progress_keeps_each_epochs_probabilities_as_float16_on_the_cpu():
    model = models.build("gru", n_classes=2, n_samples=16)
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    progress = train.Progress(criterion="test_f1")
    probs = torch.tensor([[0.1, 0.9], [0.6, 0.4]])
    for epoch, f1 in ((1, 0.5), (2, 0.7), (3, 0.6)):
        row = {"epoch": epoch, "test_f1": f1, "test_macro_f1": f1, "val_f1": float("nan")}
        progress.record(row, probs * epoch / 3, model, optimizer, save_optimizer=False)
    assert len(progress.epoch_probs) == 3
    assert all(p.dtype == torch.float16 and p.device.type == "cpu"
               for p in progress.epoch_probs)
    epoch, kept = progress.predictions["paper"]
    assert epoch == 2 and kept.dtype == torch.float32
    assert torch.equal(kept, probs * 2 / 3)


def test_without_validation_split_predictions_have_only_the_paper_selection(tmp_path):
    shard = _shard(tmp_path / "toy.h5")
    out, _ = _run(tmp_path, shard, "p", arch="gru", epochs=2, validation_fraction=0.0)
    assert {k for k in train.read_predictions(out / "pred.npz") if k.endswith("_epoch")} == {
        "paper_epoch"}


def test_paper_pretraining_keeps_the_epoch_of_best_unweighted_mean_f1(tmp_path):
    shard = _shard(tmp_path / "toy.h5", n=96, n_classes=4)
    out, summary = _run(tmp_path, shard, "p", arch="gru", epochs=5, lr=0.01,
                        paper_metric="test_macro_f1")
    m = pd.read_csv(out / "metrics.csv")
    ckpt = torch.load(out / "model.pt", weights_only=True)
    first_best = int(m.test_macro_f1.to_numpy().argmax()) + 1
    assert ckpt["epoch"] == first_best == summary["checkpoint_epoch"]
    assert ckpt["criterion"] == "test_macro_f1"
    assert ckpt["best_metric"] == m.test_macro_f1.max()


def test_paper_metric_must_be_a_known_column():
    with pytest.raises(ValueError, match="paper_metric"):
        train.TrainSettings(arch="gru", epochs=1, batch_size=2, lr=0.1, paper_metric="auc")


def test_pretraining_on_all_records_has_no_test_split_and_keeps_the_last_epoch(tmp_path):
    shard = _shard(tmp_path / "toy.h5", n=64)
    out, summary = _run(tmp_path, shard, "full", arch="gru", epochs=3, train_on="full",
                        validation_fraction=0.0, paper_metric="test_macro_f1")
    m = pd.read_csv(out / "metrics.csv")
    assert m.test_f1.isna().all() and m.baseline_f1.isna().all()
    assert summary["records"]["train"] == 64 and summary["records"]["test"] == 0
    assert summary["best_epoch"] is None and summary["baseline_f1"] is None
    ckpt = torch.load(out / "model.pt", weights_only=True)
    assert ckpt["epoch"] == 3 and ckpt["criterion"] == "epoch"
    pred = train.read_predictions(out / "pred.npz")
    assert len(pred["record_ids"]) == 0
    # nothing to select on, nothing per epoch: absent, like the selections
    assert not {k for k in pred if k.endswith(("_epoch", "_probs"))}
    json.loads((out / "model.json").read_text())  # strict JSON: no NaN
    # the tables show it without a test F1
    from ecg_transfer.aggregate import collect

    row = collect([{"regime": "pretrain", "upstream": "toy", "downstream": "toy",
                    "arch": "gru", "seed": 0, "metrics": str(out / "metrics.csv")}]).iloc[0]
    assert pd.isna(row.best_test_f1) and pd.isna(row.best_epoch)


def test_a_short_job_writes_its_resume_state_only_once_the_interval_has_passed(tmp_path,
                                                                               monkeypatch):
    shard = _shard(tmp_path / "toy.h5")
    saved = []
    real = train.ResumeStore.save
    monkeypatch.setattr(train.ResumeStore, "save",
                        lambda self, epoch, *a: saved.append(epoch) or real(self, epoch, *a))
    _run(tmp_path, shard, "quick", arch="gru", epochs=3, resume_dir=tmp_path / "r",
         resume_interval_s=3600.0)
    assert saved == []  # three epochs of a second each: nothing worth a write
    _run(tmp_path, shard, "every", arch="gru", epochs=3, resume_dir=tmp_path / "r2")
    assert saved == [1, 2, 3]


def _kill_point_between_writes(metrics: pd.DataFrame, column: str) -> int:
    """The first epoch K whose best-so-far epoch (by ``column``, ties: the earliest) is earlier."""
    for k in range(2, len(metrics) + 1):
        if int(metrics[column][:k].idxmax()) + 1 < k:
            return k
    raise AssertionError(f"{column} improves at every epoch: no selected epoch between writes")


@pytest.mark.parametrize("selection", ["paper", "validation"])
def test_a_job_killed_after_a_write_whose_selected_epoch_fell_between_writes_resumes(
        tmp_path, monkeypatch, caplog, selection):
    shard = _shard(tmp_path / "toy.h5", n=96)
    kw = {"arch": "gru", "epochs": 6, "lr": 0.003, "validation_fraction": 0.2,
          "selection": selection}
    reference, _ = _run(tmp_path, shard, "uninterrupted", **kw)
    column = "val_f1" if selection == "validation" else "test_f1"
    kill = _kill_point_between_writes(pd.read_csv(reference / "metrics.csv"), column)
    # A clock at 10 s per epoch and an interval of 10 * kill: the only state written is after
    # epoch `kill`, and it names an earlier, never written, epoch as the selected one.
    clock = [0.0]
    real_epoch = train.run_epoch

    def timed_epoch(*args):
        result = real_epoch(*args)
        clock[0] = 10.0 * args[5]  # args[5]: the epoch number
        return result

    resume = tmp_path / "resume"
    with monkeypatch.context() as m:
        m.setattr(train, "time", type("Clock", (), {"monotonic": staticmethod(lambda: clock[0])}))
        m.setattr(train, "run_epoch", timed_epoch)
        _die_after(m, kill)
        with pytest.raises(RuntimeError, match="preempted"):
            _run(tmp_path, shard, "resumed", resume_dir=resume, **kw,
                 resume_interval_s=10.0 * kill)
    state = torch.load(resume / "state.pt", weights_only=True)
    assert state["epoch"] == kill and state["best_epoch"] < kill
    with caplog.at_level(logging.INFO, logger="ecg_transfer.train"):
        _, summary = _run(tmp_path, shard, "resumed", resume_dir=resume, **kw)
    assert "ignoring" not in caplog.text
    assert summary["resumed_after_epoch"] == kill
    _same_metrics(tmp_path / "resumed", reference)
    _same_checkpoint(tmp_path / "resumed", reference)
