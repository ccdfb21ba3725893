"""ecg_transfer.optim.Adam: torch.optim.Adam(fused=True)'s numbers without torch._dynamo."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_train import _run, _same_checkpoint, _same_metrics, _shard

from ecg_transfer import models, optim, train


def _model_and_batches(seed=0, steps=6):
    torch.manual_seed(seed)
    model = models.build("resnet1d18", n_classes=3, n_samples=64)
    gen = torch.Generator().manual_seed(seed + 1)
    batches = [(torch.randn(8, 12, 64, generator=gen),
                torch.randint(0, 2, (8, 3), generator=gen).float()) for _ in range(steps)]
    return model, batches


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


def _groups(model, kind):
    head, backbone = models.head_parameters(model), models.backbone_parameters(model)
    if kind == "one":
        return [{"params": list(model.parameters())}]
    if kind == "discriminative":
        return [{"params": backbone, "lr": 1e-5}, {"params": head}]
    return list(model.parameters())  # a bare parameter list


def _train(model, opt, batches, frozen_at=None):
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    for i, (x, y) in enumerate(batches):
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        if i == frozen_at:  # a parameter without a gradient this step: no update, no step count
            model.fc2.bias.grad = None
        opt.step()


@pytest.mark.parametrize("kind", ["one", "discriminative", "bare"])
def test_the_same_update_and_state_as_torch_adam_fused_bit_for_bit(kind):
    torch.use_deterministic_algorithms(True)
    ours_model, batches = _model_and_batches()
    ref_model, _ = _model_and_batches()
    ours = optim.Adam(_groups(ours_model, kind), lr=3e-3)
    ref = torch.optim.Adam(_groups(ref_model, kind), lr=3e-3, fused=True)
    _train(ours_model, ours, batches, frozen_at=2)
    _train(ref_model, ref, batches, frozen_at=2)
    _same_weights(ours_model, ref_model)
    mine, theirs = ours.state_dict(), ref.state_dict()
    assert mine["param_groups"] == theirs["param_groups"]
    assert mine["state"].keys() == theirs["state"].keys()
    for i, state in theirs["state"].items():
        assert mine["state"][i].keys() == state.keys()
        for key, value in state.items():
            assert value.dtype == mine["state"][i][key].dtype, (i, key)
            assert torch.equal(value, mine["state"][i][key]), (i, key)


@pytest.mark.parametrize("direction", ["torch to ours", "ours to torch"])
def test_each_loads_the_others_state_and_continues_identically(direction):
    model_a, batches = _model_and_batches(steps=8)
    model_b, _ = _model_and_batches(steps=8)
    first = (torch.optim.Adam(model_a.parameters(), lr=1e-3, fused=True)
             if direction == "torch to ours" else optim.Adam(model_a.parameters(), lr=1e-3))
    _train(model_a, first, batches[:4])
    model_b.load_state_dict(model_a.state_dict())
    second = (optim.Adam(model_b.parameters(), lr=1e-3) if direction == "torch to ours"
              else torch.optim.Adam(model_b.parameters(), lr=1e-3, fused=True))
    # a copy, as a state read from disk is: loading shares the tensors it is given (torch too)
    second.load_state_dict(copy.deepcopy(first.state_dict()))
    _train(model_a, first, batches[4:])
    _train(model_b, second, batches[4:])
    _same_weights(model_a, model_b)


def test_a_state_of_other_group_sizes_is_refused():
    model, _ = _model_and_batches()
    opt = optim.Adam(_groups(model, "discriminative"), lr=1e-3)
    other = optim.Adam(model.parameters(), lr=1e-3)
    with pytest.raises(ValueError, match="groups of other sizes"):
        opt.load_state_dict(other.state_dict())


def test_options_it_does_not_implement_are_refused():
    model, _ = _model_and_batches()
    with pytest.raises(ValueError, match=r"unsupported Adam option.*momentum"):
        optim.Adam([{"params": list(model.parameters()), "momentum": 0.9}], lr=1e-3)
    with pytest.raises(ValueError, match="amsgrad=True"):
        optim.Adam([{"params": list(model.parameters()), "amsgrad": True}], lr=1e-3)
    with pytest.raises(ValueError, match="float CPU or CUDA"):
        optim.Adam([torch.zeros(3, dtype=torch.int64)], lr=1e-3)


# The job a fresh process runs: what it imports is the point (torch._dynamo costs ~0.9 s).
_JOB = """
import sys
from ecg_transfer import train
from test_train import _run, _shard
from pathlib import Path
tmp = Path(sys.argv[1])
_run(tmp, _shard(tmp / "toy.h5"), "job", arch=sys.argv[2], epochs=2, threads=1)
print(sorted(m for m in sys.modules if m.startswith(("torch._dynamo", "torch._inductor"))))
"""


@pytest.mark.parametrize("arch", ["resnet1d18", "gru"])
def test_a_training_job_does_not_import_torch_dynamo(tmp_path, arch):
    env = os.environ | {"PYTHONPATH": str(Path(__file__).parent)}
    out = subprocess.run([sys.executable, "-c", _JOB, str(tmp_path), arch], capture_output=True,
                         text=True, check=True, cwd=tmp_path, env=env)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_job_has_the_numbers_it_had_with_torch_adam(tmp_path, monkeypatch):
    """Issue 21: the job's metrics, predictions and checkpoint (weights and Adam state) are
    those the engine produced with torch.optim.Adam(fused=True) before the change."""
    shard = _shard(tmp_path / "toy.h5", n=64)
    ours, _ = _run(tmp_path, shard, "ours", epochs=3, seed=4)

    def torch_adam(model, settings):
        return torch.optim.Adam(model.parameters(), lr=settings.lr, fused=True)

    monkeypatch.setattr(train, "make_optimizer", torch_adam)
    before, _ = _run(tmp_path, shard, "before", epochs=3, seed=4)
    _same_metrics(ours, before)
    _same_checkpoint(ours, before)
