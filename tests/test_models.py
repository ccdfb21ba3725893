"""Unit tests of the architecture registry and the six models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ecg_transfer import models
from ecg_transfer.models import (
    ARCHITECTURES,
    backbone_parameters,
    build,
    head_parameters,
    register,
    replace_head,
)

RESNETS = ("resnet1d18", "resnet1d50", "resnet1d101")
RNNS = ("lstm", "bilstm", "gru")


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registry_order_and_names() -> None:
    assert ARCHITECTURES == RESNETS + RNNS


@pytest.mark.parametrize("arch", RESNETS)
@pytest.mark.parametrize(("n_classes", "n_samples"), [(5, 250), (1, 250), (9, 130)])
def test_resnet_output_shape(arch: str, n_classes: int, n_samples: int) -> None:
    model = build(arch, n_classes=n_classes, n_samples=n_samples).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 12, n_samples))
    assert out.shape == (2, n_classes)
    assert out.dtype == torch.float32


@pytest.mark.parametrize("arch", RNNS)
@pytest.mark.parametrize(("n_classes", "n_samples"), [(5, 50), (1, 50), (9, 37)])
def test_rnn_output_shape(arch: str, n_classes: int, n_samples: int) -> None:
    model = build(arch, n_classes=n_classes, n_samples=n_samples)
    with torch.no_grad():
        out = model(torch.randn(2, 12, n_samples))
    assert out.shape == (2, n_classes)


def test_other_lead_count() -> None:
    for arch in ("resnet1d18", "gru"):
        model = build(arch, n_classes=3, n_leads=1, n_samples=40).eval()
        with torch.no_grad():
            assert model(torch.randn(2, 1, 40)).shape == (2, 3)


def test_rnn_rejects_wrong_length() -> None:
    model = build("lstm", n_classes=2, n_samples=30)
    with pytest.raises(ValueError, match="built for 30 samples"):
        model(torch.randn(2, 12, 31))


# Parameter counts for 12 leads, 1000 samples, 5 classes, computed from the specification (not
# from the code) and pinned. BatchNorm running statistics are buffers, not parameters.
#
# LSTM (hidden H=100, input I=12): 4 gates x (W_ih H*I + W_hh H*H + b_ih H + b_hh H)
#   = 4 * (100*12 + 100*100 + 100 + 100) = 4 * 11_400 = 45_600
#   head: (1000 * 100) * 5 + 5 = 500_005                        total 545_605
# GRU: 3 gates x 11_400 = 34_200; head 500_005                   total 534_205
# Bi-LSTM: 2 directions x 45_600 = 91_200;
#   head: (1000 * 200) * 5 + 5 = 1_000_005                       total 1_091_205
#
# ResNet1d18 (conv weights = in*out*k, no bias; BN = 2*channels):
#   stem: 12*64*7 = 5_376 + BN 128                                      =     5_504
#   layer1, 2 blocks of [64*64*3 + 128] * 2 = 24_832                    =    49_664
#   layer2 block1: 64*128*3 + 128*128*3 + ds 64*128 + 3 BN*256
#                = 24_576 + 49_152 + 8_192 + 768 = 82_688
#          block2: 2*49_152 + 2*256 = 98_816                            =   181_504
#   layer3 block1: 98_304 + 196_608 + 32_768 + 1_536 = 329_216
#          block2: 2*196_608 + 1_024 = 394_240                          =   723_456
#   layer4 block1: 393_216 + 786_432 + 131_072 + 3_072 = 1_313_792
#          block2: 2*786_432 + 2_048 = 1_574_912                        = 2_888_704
#   backbone 3_848_832; fc1 512*512 + 512 = 262_656; fc2 512*5 + 5 = 2_565
#                                                               total 4_114_053
# Bottleneck(in, p, ds): in*p + p*p*3 + p*4p + BN 2p + 2p + 8p [+ in*4p + 8p]
#   layer1: first (in 64)  50_432, then 2 x (in 256)  45_824        =   142_080
#   layer2: first (in 256) 281_088, then 3 x (in 512) 181_760       =   826_368
#   layer3: first (in 512) 1_119_232, then k x (in 1024) 723_968
#           k=5 (ResNet50) -> 4_739_072 ; k=22 (ResNet101) -> 17_046_528
#   layer4: first (in 1024) 4_466_688, then 2 x (in 2048) 2_889_728 = 10_246_144
#   head: fc1 2048*512 + 512 = 1_049_088; fc2 2_565
#   ResNet1d50:  5_504 + 142_080 + 826_368 + 4_739_072 + 10_246_144 + 1_049_088 + 2_565
#              = 17_010_821
#   ResNet1d101: 5_504 + 142_080 + 826_368 + 17_046_528 + 10_246_144 + 1_049_088 + 2_565
#              = 29_318_277
PARAM_COUNTS = {
    "resnet1d18": 4_114_053,
    "resnet1d50": 17_010_821,
    "resnet1d101": 29_318_277,
    "lstm": 545_605,
    "bilstm": 1_091_205,
    "gru": 534_205,
}


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_parameter_count(arch: str) -> None:
    assert _n_params(build(arch, n_classes=5, n_leads=12, n_samples=1000)) == PARAM_COUNTS[arch]


def test_resnet_init_follows_torchvision() -> None:
    model = build("resnet1d18", n_classes=5)
    assert all(torch.all(m.weight == 1) and torch.all(m.bias == 0)
               for m in model.modules() if isinstance(m, nn.BatchNorm1d))
    # kaiming_normal_(fan_out, relu): std = sqrt(2 / (out_channels * kernel)) = sqrt(2/(512*3))
    w = model.layer4[1].conv2.weight
    assert abs(w.std().item() - (2 / (512 * 3)) ** 0.5) < 0.002


@pytest.mark.parametrize(("arch", "head"), [("resnet1d18", "fc2"), ("resnet1d50", "fc2"),
                                            ("gru", "head"), ("bilstm", "head")])
def test_replace_head_keeps_backbone(arch: str, head: str) -> None:
    torch.manual_seed(0)
    model = build(arch, n_classes=5, n_samples=40)
    before = {k: v.clone() for k, v in model.state_dict().items()
              if not k.startswith(f"{head}.")}
    old_head = getattr(model, head)

    assert replace_head(model, 3) is model

    new_head = getattr(model, head)
    assert new_head is not old_head
    assert (new_head.out_features, new_head.in_features) == (3, old_head.in_features)
    after = model.state_dict()
    assert set(after) == set(before) | {f"{head}.weight", f"{head}.bias"}
    assert all(torch.equal(before[k], after[k]) for k in before)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, 12, 40)).shape == (2, 3)
    assert [p.shape for p in head_parameters(model)] == [(3, old_head.in_features), (3,)]


def test_head_parameters_only_train_the_head() -> None:
    model = build("lstm", n_classes=4, n_samples=20)
    head_ids = {id(p) for p in head_parameters(model)}
    assert head_ids == {id(model.head.weight), id(model.head.bias)}
    assert len(head_ids) < len(list(model.parameters()))


@pytest.mark.parametrize("arch", ["resnet1d18", "bilstm"])
def test_backbone_and_head_partition_the_parameters(arch: str) -> None:
    model = build(arch, n_classes=3, n_samples=20)
    backbone, head = backbone_parameters(model), head_parameters(model)
    assert {id(p) for p in backbone}.isdisjoint({id(p) for p in head})
    assert len(backbone) + len(head) == len(list(model.parameters()))
    # model order, so optimiser parameter groups built from it are reproducible
    assert backbone == [p for p in model.parameters() if all(p is not h for h in head)]


def test_unknown_architecture_lists_known_names() -> None:
    with pytest.raises(ValueError, match=r"unknown architecture 'vgg'.*resnet1d18.*gru"):
        build("vgg", n_classes=5)


def test_invalid_sizes_rejected() -> None:
    with pytest.raises(ValueError, match="n_classes"):
        build("gru", n_classes=0)
    with pytest.raises(ValueError, match="n_classes"):
        replace_head(build("gru", n_classes=2, n_samples=10), 0)


def test_register_user_architecture(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "_REGISTRY", dict(models._REGISTRY))

    class Tiny(nn.Module):
        head_name = "out"

        def __init__(self, n_classes: int, n_leads: int) -> None:
            super().__init__()
            self.out = nn.Linear(n_leads, n_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(x.mean(dim=-1))

    @register("tiny")
    def _tiny(n_classes: int, n_leads: int, n_samples: int) -> nn.Module:
        return Tiny(n_classes, n_leads)

    assert "tiny" in models.registered()
    model = replace_head(build("tiny", n_classes=2), 7)
    assert model(torch.randn(2, 12, 10)).shape == (2, 7)
    with pytest.raises(ValueError, match="already registered"):
        register("tiny")(_tiny)


def test_model_without_head_name_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "_REGISTRY", dict(models._REGISTRY))
    register("headless")(lambda c, n_leads, t: nn.Linear(n_leads, c))
    with pytest.raises(TypeError, match="head_name"):
        build("headless", n_classes=2)
