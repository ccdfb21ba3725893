"""The six architectures of the study, behind one registry.

The definitions follow the paper's code (github.com/cuongvng/transfer-learning-ecg-diagnosis,
``pretrain/resnet50.py``, ``downstream/resnet1d18.py``, ``pretrain/lstm.py``,
``downstream/gru.py``) so that parameter counts and initialisation match what was trained there.
Deliberate differences, none of which changes the function computed:

* inputs are ``(batch, n_leads, n_samples)`` float32 for every model (the paper fed
  ``(batch, n_samples, n_leads)`` float64 and permuted inside the ResNets);
* the paper's RNNs pass ``dropout=0.3`` to a one-layer ``nn.LSTM``/``nn.GRU``, where PyTorch
  ignores it (it only acts between stacked layers), so it is left out here;
* the paper's explicit zero initial states are PyTorch's default, so they are left out too.

Fine-tuning in the paper replaces exactly one layer (``fc2`` of the ResNets, ``fc`` of the RNNs,
called ``head`` here). Each model class names that layer in ``head_name`` so that
:func:`replace_head` and :func:`head_parameters` work for any registered architecture, including
ones added by users with :func:`register`.
"""

from __future__ import annotations

import os
import pickle
import struct
from collections.abc import Callable
from numbers import Integral
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor, nn

__all__ = [
    "ARCHITECTURES",
    "backbone_parameters",
    "build",
    "build_with_weights",
    "head_parameters",
    "load_pretrained",
    "read_weights",
    "register",
    "registered",
    "replace_head",
]

#: A builder takes ``(n_classes, n_leads, n_samples)`` and returns a freshly initialised model.
Builder = Callable[[int, int, int], nn.Module]

_REGISTRY: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    """Add an architecture under ``name``, so that config files can refer to it by name.

    The builder's model must set a class attribute ``head_name`` naming its last ``nn.Linear``
    (the layer fine-tuning replaces). Registering a name twice is an error rather than a silent
    override, because two modules fighting over a name would change results without a trace.
    """

    def decorator(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"architecture {name!r} is already registered")
        _REGISTRY[name] = builder
        return builder

    return decorator


def registered() -> tuple[str, ...]:
    """Names registered so far, in registration order (built-ins first, then user additions)."""
    return tuple(_REGISTRY)


def build(name: str, n_classes: int, n_leads: int = 12, n_samples: int = 1000) -> nn.Module:
    """Build a freshly initialised model by registry name.

    ``n_samples`` matters only for architectures whose head sees every time step (the RNNs);
    the ResNets pool over time and accept any length.
    """
    try:
        builder = _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown architecture {name!r}; known architectures: {', '.join(_REGISTRY)}"
        ) from None
    n_classes, n_leads, n_samples = (
        _positive_int(arg, value)
        for arg, value in (("n_classes", n_classes), ("n_leads", n_leads), ("n_samples", n_samples))
    )
    model = builder(n_classes, n_leads, n_samples)
    _head(model)  # fail at build time, not at fine-tuning time, if the head is not declared
    return model


def _positive_int(arg: str, value: object) -> int:
    """Accept numpy integers too (sizes often come from array shapes or saved configs)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{arg} must be a positive integer, got {value!r}")
    return int(value)


def _head(model: nn.Module) -> nn.Linear:
    name = getattr(model, "head_name", None)
    if not isinstance(name, str):
        raise TypeError(
            f"{type(model).__name__} has no 'head_name' class attribute naming its output layer"
        )
    layer = getattr(model, name, None)
    if not isinstance(layer, nn.Linear):
        raise TypeError(
            f"{type(model).__name__}.{name} (its head_name) is {type(layer).__name__}, "
            "expected nn.Linear"
        )
    return layer


def replace_head(model: nn.Module, n_classes: int) -> nn.Module:
    """Swap the output layer for a freshly initialised one with ``n_classes`` outputs, in place.

    This is the paper's fine-tuning step: the whole pretrained network is kept except the layer
    whose size depends on the upstream label set. The new layer uses PyTorch's default
    ``nn.Linear`` initialisation (as the paper did) and the old layer's device and dtype. Returns
    ``model`` for chaining.
    """
    n_classes = _positive_int("n_classes", n_classes)
    old = _head(model)
    new = nn.Linear(
        old.in_features,
        n_classes,
        bias=old.bias is not None,
        device=old.weight.device,
        dtype=old.weight.dtype,
    )
    setattr(model, model.head_name, new)
    return model


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters of the output layer, for optimisers that train only the head (linear probe)."""
    return list(_head(model).parameters())


def backbone_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every parameter except the output layer's, in ``model.parameters()`` order.

    The part of a pretrained model that fine-tuning transfers: frozen by a linear probe, given a
    smaller learning rate by discriminative fine-tuning.
    """
    head = {id(p) for p in head_parameters(model)}
    return [p for p in model.parameters() if id(p) not in head]


# --------------------------------------------------------------------------------------------
# ResNets: torchvision's ResNet (v1.5: stride on the 3x3 conv of the bottleneck) with Conv1d.


def _conv3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv1d:
    return nn.Conv1d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv1d:
    return nn.Conv1d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)


class BasicBlock1d(nn.Module):
    """Two 3-tap convolutions with a skip connection (ResNet-18/34 block)."""

    expansion: ClassVar[int] = 1

    def __init__(
        self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = _conv3(in_ch, planes, stride)
        self.bn1 = nn.BatchNorm1d(planes)
        self.conv2 = _conv3(planes, planes)
        self.bn2 = nn.BatchNorm1d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck1d(nn.Module):
    """1-3-1 bottleneck with 4x expansion (ResNet-50/101 block), stride on the 3-tap conv."""

    expansion: ClassVar[int] = 4

    def __init__(
        self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = _conv1(in_ch, planes)
        self.bn1 = nn.BatchNorm1d(planes)
        self.conv2 = _conv3(planes, planes, stride)
        self.bn2 = nn.BatchNorm1d(planes)
        self.conv3 = _conv1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm1d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet1d(nn.Module):
    """1-D ResNet with the paper's two-layer head (``fc1`` -> ReLU -> ``fc2``).

    ``fc1`` gives a 512-d embedding whatever the block type; only ``fc2`` depends on the label
    set, so it is the layer fine-tuning replaces.
    """

    head_name: ClassVar[str] = "fc2"
    embedding_size: ClassVar[int] = 512

    def __init__(
        self,
        block: type[BasicBlock1d | Bottleneck1d],
        layers: tuple[int, int, int, int],
        n_classes: int,
        n_leads: int = 12,
    ) -> None:
        super().__init__()
        self._in_ch = 64
        self.conv1 = nn.Conv1d(n_leads, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm1d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool1d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0], stride=1)
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool1d(1)
        self.fc1 = nn.Linear(512 * block.expansion, self.embedding_size)
        self.fc2 = nn.Linear(self.embedding_size, n_classes)

        # torchvision's initialisation; Linear layers keep PyTorch's default, as there.
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm1d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(
        self,
        block: type[BasicBlock1d | Bottleneck1d],
        planes: int,
        n_blocks: int,
        stride: int,
    ) -> nn.Sequential:
        out_ch = planes * block.expansion
        downsample = None
        if stride != 1 or self._in_ch != out_ch:
            downsample = nn.Sequential(_conv1(self._in_ch, out_ch, stride), nn.BatchNorm1d(out_ch))
        blocks = [block(self._in_ch, planes, stride, downsample)]
        self._in_ch = out_ch
        blocks += [block(out_ch, planes) for _ in range(1, n_blocks)]
        return nn.Sequential(*blocks)

    def embed(self, x: Tensor) -> Tensor:
        """The 512-d ``fc1`` output (before its ReLU), the representation transferred."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc1(torch.flatten(self.avgpool(x), 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(torch.relu(self.embed(x)))


@register("resnet1d18")
def _resnet1d18(n_classes: int, n_leads: int, n_samples: int) -> nn.Module:
    return ResNet1d(BasicBlock1d, (2, 2, 2, 2), n_classes, n_leads)


@register("resnet1d50")
def _resnet1d50(n_classes: int, n_leads: int, n_samples: int) -> nn.Module:
    return ResNet1d(Bottleneck1d, (3, 4, 6, 3), n_classes, n_leads)


@register("resnet1d101")
def _resnet1d101(n_classes: int, n_leads: int, n_samples: int) -> nn.Module:
    return ResNet1d(Bottleneck1d, (3, 4, 23, 3), n_classes, n_leads)


# --------------------------------------------------------------------------------------------
# RNNs: one recurrent layer, then a linear layer over the flattened outputs of all time steps.


class RecurrentClassifier(nn.Module):
    """One-layer LSTM/GRU whose every time step's output feeds the linear head.

    Because the head sees all ``n_samples`` steps, the model is tied to one input length: the
    head alone holds ``n_samples * hidden * directions * n_classes`` weights (about 92% of the
    LSTM's parameters at 1000 samples and 5 classes), and fine-tuning discards it.
    """

    head_name: ClassVar[str] = "head"

    def __init__(
        self,
        cell: type[nn.LSTM | nn.GRU],
        n_classes: int,
        n_leads: int = 12,
        n_samples: int = 1000,
        hidden_size: int = 100,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        self.n_samples = n_samples
        self.rnn = cell(
            input_size=n_leads,
            hidden_size=hidden_size,
            batch_first=True,
            bidirectional=bidirectional,
        )
        directions = 2 if bidirectional else 1
        self.head = nn.Linear(n_samples * hidden_size * directions, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.n_samples:
            raise ValueError(
                f"{type(self).__name__} was built for {self.n_samples} samples per record, "
                f"got input of shape {tuple(x.shape)}"
            )
        out, _ = self.rnn(x.transpose(1, 2))
        return self.head(torch.flatten(out, 1))


@register("lstm")
def _lstm(n_classes: int, n_leads: int, n_samples: int) -> nn.Module:
    return RecurrentClassifier(nn.LSTM, n_classes, n_leads, n_samples)


@register("bilstm")
def _bilstm(n_classes: int, n_leads: int, n_samples: int) -> nn.Module:
    return RecurrentClassifier(nn.LSTM, n_classes, n_leads, n_samples, bidirectional=True)


@register("gru")
def _gru(n_classes: int, n_leads: int, n_samples: int) -> nn.Module:
    return RecurrentClassifier(nn.GRU, n_classes, n_leads, n_samples)


#: The study's architectures, in the order tables and figures list them.
ARCHITECTURES: tuple[str, ...] = registered()


def load_pretrained(path: str | os.PathLike, n_classes: int | None = None) -> nn.Module:
    """Rebuild a trained model from one of the study's checkpoints (``model.pt``).

    The checkpoint's ``config`` names the architecture, classes and input shape, so this is the
    one line a user needs to fine-tune a pretrained model outside the study. With ``n_classes``
    (and a different class count) the top layer is replaced by a fresh one of that size. The
    checkpoint's config is attached as ``model.checkpoint_config`` (classes, leads, fs, ...).
    """
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        cfg = ckpt["config"]
        model = build(cfg["arch"], n_classes=len(cfg["classes"]), n_leads=cfg["n_leads"],
                      n_samples=cfg["n_samples"])
        model.load_state_dict(ckpt["model"])
    except (OSError, EOFError, KeyError, RuntimeError, TypeError, ValueError,
            pickle.UnpicklingError, struct.error) as e:
        raise ValueError(f"{path}: not a loadable ecg-transfer checkpoint ({e})") from e
    model.checkpoint_config = cfg
    if n_classes is not None and n_classes != len(cfg["classes"]):
        replace_head(model, n_classes)
    return model


#: Key prefixes that wrappers put before every parameter name: DataParallel/DDP and
#: torch.compile. A state_dict saved from such a wrapper is the same model.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def read_weights(path: str | os.PathLike) -> tuple[dict[str, Tensor], dict | None]:
    """The weights in a model file and, where it is one of the study's checkpoints, its config.

    Read with ``weights_only=True``, so a file from elsewhere can hold tensors and plain
    containers, never code to run. Accepted: the study's ``model.pt`` (``model`` and
    ``config``); a plain ``state_dict``; a dict holding one under ``state_dict`` or ``model``
    (as many training scripts save). A ``module.`` or ``_orig_mod.`` prefix on every key is
    removed. The config is None for anything but the study's own checkpoint.
    """
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, EOFError, RuntimeError, pickle.UnpicklingError, struct.error) as e:
        raise ValueError(f"{path}: not a model file torch can load safely (weights_only) "
                         f"({e})") from e
    config = None
    if isinstance(obj, dict) and isinstance(obj.get("config"), dict) and "model" in obj:
        obj, config = obj["model"], obj["config"]
    elif isinstance(obj, dict) and not _is_state_dict(obj):
        inner = [k for k in ("state_dict", "model") if _is_state_dict(obj.get(k))]
        if not inner:
            raise ValueError(f"{path}: holds neither a state_dict (parameter name -> tensor) "
                             f"nor one under 'state_dict' or 'model'; top-level keys: "
                             f"{sorted(map(str, obj))[:10]}")
        obj = obj[inner[0]]
    if not _is_state_dict(obj):
        raise ValueError(f"{path}: expected a state_dict (parameter name -> tensor), got "
                         f"{type(obj).__name__}")
    for prefix in _WRAPPER_PREFIXES:
        if obj and all(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix):]: v for k, v in obj.items()}
    return dict(obj), config


def _is_state_dict(obj: object) -> bool:
    return (isinstance(obj, dict) and bool(obj)
            and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()))


def build_with_weights(arch: str, state: dict[str, Tensor], *, n_classes: int, n_leads: int,
                       n_samples: int, source: str | os.PathLike) -> nn.Module:
    """Architecture ``arch`` built for this input and head, holding ``state`` exactly.

    Every parameter and buffer must be there with its shape (a strict load): weights of
    another architecture, or a head of another class count, are refused with the names and
    shapes that differ, naming ``source`` (the file).
    """
    model = build(arch, n_classes=n_classes, n_leads=n_leads, n_samples=n_samples)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k].shape)})"
              for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or shapes:
        details = [f"{what}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
                   for what, keys in (("missing", missing), ("unexpected", unexpected),
                                      ("other shape", shapes)) if keys]
        raise ValueError(f"{source}: not the weights of a {arch} with {n_classes} classes, "
                         f"{n_leads} leads and {n_samples} samples per lead ("
                         + "; ".join(details) + ")")
    model.load_state_dict(state)
    return model
