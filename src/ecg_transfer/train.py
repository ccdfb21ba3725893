"""The training engine: pretraining, fine-tuning and training from scratch are one loop.

As in nanoGPT, a job is ``init_from = scratch | pretrained``; a checkpoint is one dict (model,
optimizer, config, epoch, best metric). The shard is loaded into memory once (on the GPU when
training there) and batches are sliced from tensors: no DataLoader, no per-sample Python work.

Three things the paper's code did not do, each because the study needs it:

* **Honest model selection.** Every epoch is scored on a validation split (the shard's own, or
  one carved from train) as well as on test. ``selection="paper"`` keeps the epoch with the best
  *test* F1, as the paper did; ``selection="validation"`` keeps the epoch with the best
  validation F1. metrics.csv and the sidecar carry the numbers of both.
* **Resume.** With ``resume_dir`` the job writes its whole state after every epoch; a job killed
  at any moment and started again continues from its last completed epoch and ends with the
  same numbers and weights (bit-for-bit on CPU) as one that was never interrupted.
* **Fine-tuning strategies**: ``full`` (the paper), ``linear_probe``, ``discriminative``.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import json
import logging
import math
import os
import pickle
import random
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ecg_transfer import __version__, models
from ecg_transfer.codehash import code_hash
from ecg_transfer.fileio import atomic_path
from ecg_transfer.metrics import constant_baseline_f1, weighted_f1
from ecg_transfer.shards import TEST, TRAIN, VAL, Shard, read_shard
from ecg_transfer.splits import carve_validation

log = logging.getLogger(__name__)

METRIC_COLUMNS = ("epoch", "train_loss", "val_loss", "val_f1", "test_loss", "test_f1", "seconds",
                  "baseline_f1")
INIT_FROM = ("scratch", "pretrained")
#: Which epoch's weights become model.pt: best test F1 (the paper) or best validation F1.
SELECTIONS = ("paper", "validation")
STRATEGIES = ("full", "linear_probe", "discriminative")
PRECISIONS = ("fp32", "bf16")
#: The config keys of a stage section (``training.pretrain`` ...) and of ``training`` itself
#: that map onto TrainSettings fields of the same name.
STAGE_KEYS = ("epochs", "batch_size", "lr", "strategy", "backbone_lr_factor")
STUDY_KEYS = ("selection", "validation_fraction", "precision")
#: Settings that do not change a job's numbers, so a resume state written under other values
#: is still that job's state (a preempted job may come back with other threads or another GPU).
_NOT_IN_FINGERPRINT = ("threads", "device")

ShardPaths = str | os.PathLike | Sequence[str | os.PathLike]


@dataclass
class TrainSettings:
    """Everything that decides a training job's numbers (and nothing that does not)."""

    arch: str
    epochs: int
    batch_size: int
    lr: float
    seed: int = 0
    init_from: str = "scratch"  # scratch | pretrained
    threads: int = 1
    device: str | None = None  # None: cuda when visible, else cpu
    # Adam's state is twice the model (a ResNet1d101 checkpoint: 117 MB of weights, 351 MB with
    # it). Pretrained models keep it, to continue upstream training; downstream jobs drop it.
    save_optimizer: bool = True
    selection: str = "paper"
    # Fraction of train carved out as validation when the shard has no validation split
    # (paper-protocol shards); seeded by ``seed``. 0 trains on the whole train split, as the
    # paper did, and leaves only the paper selection.
    validation_fraction: float = 0.1
    strategy: str = "full"  # only with init_from="pretrained"
    backbone_lr_factor: float = 0.1  # discriminative: backbone lr = lr * factor
    # fp32: float32 everywhere, TF32 matmuls/convolutions allowed on CUDA. bf16: bfloat16
    # autocast on CUDA; CPU jobs always train in float32.
    precision: str = "fp32"

    def __post_init__(self) -> None:
        for name, allowed in (("init_from", INIT_FROM), ("selection", SELECTIONS),
                              ("strategy", STRATEGIES), ("precision", PRECISIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"TrainSettings.{name} is {getattr(self, name)!r}; expected one "
                                 f"of {', '.join(allowed)}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError("TrainSettings.validation_fraction must be in [0, 1), got "
                             f"{self.validation_fraction}")
        if not self.backbone_lr_factor > 0:
            raise ValueError("TrainSettings.backbone_lr_factor must be positive, got "
                             f"{self.backbone_lr_factor}")
        if self.strategy != "full" and self.init_from != "pretrained":
            raise ValueError(f"TrainSettings.strategy={self.strategy!r} needs "
                             "init_from='pretrained': a randomly initialised backbone has nothing "
                             "to keep")


def settings_from_config(
    stage: Mapping[str, Any],
    training: Mapping[str, Any],
    *,
    arch: str,
    seed: int,
    init_from: str,
    threads: int = 1,
    save_optimizer: bool = True,
) -> TrainSettings:
    """A job's settings from its config: ``training.<stage>`` and the study-wide ``training`` keys.

    Unknown keys are errors (naming the section), so a typo in a config cannot silently leave a
    default in force.
    """
    for section, values, known in (("training.<stage>", stage, STAGE_KEYS),
                                   ("training", training, STUDY_KEYS)):
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"config section {section} has unknown key(s) {unknown}; "
                             f"known: {', '.join(known)}")
    return TrainSettings(arch=arch, seed=int(seed), init_from=init_from, threads=threads,
                         save_optimizer=save_optimizer, **dict(stage), **dict(training))


class NonFiniteLossError(RuntimeError):
    """Training diverged; continuing would only produce garbage metrics."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(requested: str | None) -> torch.device:
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def configure_device(device: torch.device, settings: TrainSettings
                     ) -> Callable[[], contextlib.AbstractContextManager]:
    """Set the process-wide numerics for ``device``; return the context each forward runs in.

    CPU: the job's thread count, deterministic algorithms (same seed, same numbers), float32.
    CUDA: TF32 for matmuls and convolutions (float32 storage, ~8x the fp32 tensor throughput on
    Ampere and later; the paper's float64 bought nothing) and cuDNN autotuning for the fixed
    batch shapes; ``precision="bf16"`` adds bfloat16 autocast (no loss scaling needed).
    """
    if device.type == "cpu":
        torch.set_num_threads(max(1, settings.threads))
        torch.use_deterministic_algorithms(True)
        if settings.precision != "fp32":
            log.info("precision %s applies on CUDA only; this CPU job trains in float32",
                     settings.precision)
        return contextlib.nullcontext
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
        if settings.precision == "bf16":
            return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def load_pretrained_backbone(path: str | os.PathLike, n_classes: int) -> torch.nn.Module:
    """Rebuild the upstream model from its checkpoint and give it a fresh top layer."""
    model = models.load_pretrained(path)
    return models.replace_head(model, n_classes)


def make_optimizer(model: torch.nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    """Adam over what ``settings.strategy`` trains; a linear probe's backbone is frozen here.

    ``full`` is the paper's fine-tuning (every layer, one learning rate). ``linear_probe``
    measures how good the transferred features are as they are. ``discriminative`` lets the
    backbone adapt, but slower than the new head, so early large head gradients do not wreck it.
    """
    head = models.head_parameters(model)
    backbone = models.backbone_parameters(model)
    if settings.strategy == "linear_probe":
        for p in backbone:
            p.requires_grad_(False)
        groups: list[dict] = [{"params": head}]
    elif settings.strategy == "discriminative":
        groups = [{"params": backbone, "lr": settings.lr * settings.backbone_lr_factor},
                  {"params": head}]
    else:
        groups = [{"params": list(model.parameters())}]
    # fused: one kernel for all parameters; the same update, 4x faster on CPU for ResNet1d101
    return torch.optim.Adam(groups, lr=settings.lr, fused=True)


def _set_train_mode(model: torch.nn.Module, strategy: str) -> None:
    # A linear probe's backbone stays in eval mode: in train mode BatchNorm would keep updating
    # its running statistics, i.e. the "frozen" features would drift.
    model.train(strategy != "linear_probe")


def _shard_label(shard_path: ShardPaths) -> str:
    if isinstance(shard_path, (str, os.PathLike)):
        return str(shard_path)
    return "+".join(str(p) for p in shard_path)


def _shard_files(shard_path: ShardPaths) -> list[Path]:
    if isinstance(shard_path, (str, os.PathLike)):
        return [Path(shard_path)]
    return [Path(p) for p in shard_path]


def _file_identity(path: Path) -> list:
    """Cheap identity of an input file: a rebuilt shard or checkpoint invalidates a resume state."""
    st = path.stat()
    return [str(path), st.st_size, st.st_mtime_ns]


def split_with_validation(shard: Shard, settings: TrainSettings, where: str) -> np.ndarray:
    """The shard's split vector, with a validation split carved from train if it has none."""
    if (shard.split == VAL).any():
        log.info("using the shard's own validation split (%d records); "
                 "validation_fraction is not used", int((shard.split == VAL).sum()))
        return shard.split
    if settings.validation_fraction == 0:
        return shard.split
    try:
        # patient ids keep one patient's records on one side, where the shard carries them
        return carve_validation(shard.split, shard.labels, settings.validation_fraction,
                                settings.seed, groups=shard.patient_ids)
    except ValueError as e:
        raise ValueError(f"{where}: cannot carve a validation split with "
                         f"training.validation_fraction={settings.validation_fraction}: {e}"
                         ) from e


@dataclass
class _Selected:
    """The state of the epoch that model.pt will hold."""

    epoch: int
    metric: float
    model: dict
    optimizer: dict | None


def train(
    shard_path: ShardPaths,
    settings: TrainSettings,
    *,
    metrics_path: str | os.PathLike,
    checkpoint_path: str | os.PathLike,
    pretrained: str | os.PathLike | None = None,
    resume_dir: str | os.PathLike | None = None,
) -> dict:
    """Train one model; score validation and test after every epoch.

    Writes ``metrics_path`` (one row per epoch, :data:`METRIC_COLUMNS`), ``checkpoint_path``
    (the epoch chosen by ``settings.selection``) and a JSON sidecar beside the checkpoint saying
    what the model expects as input and how it scored under both selections. ``resume_dir``
    (a folder outside the job's outputs, which a workflow manager deletes when a job fails)
    holds the per-epoch resume state; it is removed once the outputs are written.
    """
    seed_everything(settings.seed)
    device = pick_device(settings.device)
    autocast = configure_device(device, settings)
    where = _shard_label(shard_path)
    shard = read_shard(shard_path)
    split = split_with_validation(shard, settings, where)
    if settings.selection == "validation" and not (split == VAL).any():
        raise ValueError(f"{where}: training.selection is 'validation' but there is no "
                         "validation split (the shard has none and "
                         f"training.validation_fraction is {settings.validation_fraction})")
    parts = {k: (shard.signals[split == k], shard.labels[split == k]) for k in (TRAIN, VAL, TEST)}
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = parts[TRAIN], parts[VAL], parts[TEST]
    if len(x_train) == 0 or len(x_test) == 0:
        raise ValueError(f"{where}: empty train ({len(x_train)}) or test ({len(x_test)}) split")
    n_classes, n_leads, n_samples = y_train.shape[1], x_train.shape[1], x_train.shape[2]
    baseline = constant_baseline_f1(y_train, y_test)

    upstream = None
    if settings.init_from == "pretrained":
        if pretrained is None:
            raise ValueError("init_from='pretrained' needs the path of a pretrained checkpoint")
        model = load_pretrained_backbone(pretrained, n_classes)
        up = model.checkpoint_config
        upstream = {"dataset": up.get("dataset"), "protocol": up.get("protocol"),
                    "arch": up.get("arch"), "checkpoint": str(pretrained)}
        if up.get("arch") != settings.arch:
            raise ValueError(f"{pretrained}: checkpoint is a {up.get('arch')!r}, the job trains "
                             f"{settings.arch!r}")
        log.info("initialised from pretrained checkpoint %s; new top layer for %d classes; "
                 "strategy %s", pretrained, n_classes, settings.strategy)
    else:
        model = models.build(settings.arch, n_classes=n_classes, n_leads=n_leads,
                             n_samples=n_samples)
    model.to(device)
    optimizer = make_optimizer(model, settings)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(x).to(device), torch.from_numpy(y.astype(np.float32)).to(device)

    config = {
        **asdict(settings),
        "classes": shard.classes,
        "leads": shard.leads,
        "fs": shard.fs,
        "n_leads": int(n_leads),
        "n_samples": int(n_samples),
        "dataset": shard.dataset,
        "protocol": shard.protocol,
        # per-record scaling/normalisation, where the shard records it
        "scaling": getattr(shard, "scaling", None),
        "records": {"train": len(x_train), "val": len(x_val), "test": len(x_test)},
        "upstream": upstream,
        "code_version": f"{__version__}+{code_hash('ecg_transfer.train')}",
    }
    xt, yt = tensors(x_train, y_train)
    xv, yv = tensors(x_val, y_val)
    xs, ys = tensors(x_test, y_test)
    del shard, parts, x_train, x_val, x_test  # the device tensors are the only copy needed now
    order_gen = torch.Generator().manual_seed(settings.seed)
    criterion = "test_f1" if settings.selection == "paper" else "val_f1"

    store = None
    if resume_dir is not None:
        fingerprint = {
            "config": {k: v for k, v in config.items() if k not in _NOT_IN_FINGERPRINT},
            "inputs": [_file_identity(p) for p in _shard_files(shard_path)]
            + ([_file_identity(Path(pretrained))] if pretrained is not None else []),
        }
        store = ResumeStore(resume_dir, fingerprint)
    rows: list[dict] = []
    best: _Selected | None = None
    start_epoch = 0
    if store is not None and (state := store.load()) is not None:
        start_epoch, rows, best = _restore(state, model, optimizer, order_gen, settings)
        log.info("resuming after epoch %d of %d from %s", start_epoch, settings.epochs,
                 store.folder)

    metrics_path, checkpoint_path = Path(metrics_path), Path(checkpoint_path)
    log.info(
        "%s %s on %s: %d train / %d val / %d test records, %d classes, input (%d, %d), "
        "device %s; constant-predictor test F1 %.3f",
        settings.init_from, settings.arch, config["dataset"], len(xt), len(xv), len(xs),
        n_classes, n_leads, n_samples, device, baseline,
    )
    started = time.monotonic()
    try:
        for epoch in range(start_epoch + 1, settings.epochs + 1):
            t0 = time.monotonic()
            train_loss = _train_epoch(model, optimizer, loss_fn, xt, yt, settings, order_gen,
                                      epoch, autocast)
            val_loss, val_f1 = _score(model, loss_fn, xv, yv, y_val, settings.batch_size, autocast)
            test_loss, test_f1 = _score(model, loss_fn, xs, ys, y_test, settings.batch_size,
                                        autocast)
            seconds = time.monotonic() - t0
            row = dict(epoch=epoch, train_loss=train_loss, val_loss=val_loss, val_f1=val_f1,
                       test_loss=test_loss, test_f1=test_f1, seconds=round(seconds, 3),
                       baseline_f1=baseline)
            rows.append(row)
            if best is None or row[criterion] > best.metric:
                # Kept in memory and written once at the end: a ResNet1d101 checkpoint with Adam
                # state is ~350 MB, too slow to rewrite at every improvement (the resume state
                # keeps it on disk as the snapshot of its epoch).
                best = _Selected(epoch, row[criterion], _cpu_copy(model.state_dict()),
                                 _cpu_copy(optimizer.state_dict())
                                 if settings.save_optimizer else None)
            if store is not None:
                # the selected epoch's CPU copy doubles as the snapshot when it is this epoch
                fresh = best.epoch == epoch
                store.save(epoch, {
                    "model": best.model if fresh else _cpu_copy(model.state_dict()),
                    "optimizer": best.optimizer if fresh and best.optimizer is not None
                    else _cpu_copy(optimizer.state_dict()),
                }, _resume_extras(rows, best, order_gen))
            done = epoch - start_epoch
            eta = (time.monotonic() - started) / done * (settings.epochs - epoch)
            log.info("epoch %d/%d  train_loss %.4f  val_loss %.4f  val_f1 %.4f  test_loss %.4f  "
                     "test_f1 %.4f  %.1f s  ETA %.0f s", epoch, settings.epochs, train_loss,
                     val_loss, val_f1, test_loss, test_f1, seconds, eta)
    finally:
        if store is not None:
            store.close()  # a write in flight completes (or raises) before anything else
    assert best is not None  # epochs >= 1: at least one epoch ran or was restored

    checkpoint = {"model": best.model, "config": config, "epoch": best.epoch,
                  "best_metric": best.metric, "selection": settings.selection}
    if best.optimizer is not None:
        checkpoint["optimizer"] = best.optimizer
    with atomic_path(checkpoint_path) as tmp:
        torch.save(checkpoint, tmp)
    with atomic_path(metrics_path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    chosen = selections(rows)
    summary = {
        **config, **chosen, "checkpoint_epoch": best.epoch, "baseline_f1": baseline,
        "epochs_run": len(rows), "resumed_after_epoch": start_epoch or None,
        # the same numbers, labelled for a reader of the sidecar
        "metrics": {
            "paper_selection": {"what": "best test F1 over epochs (chosen on test: optimistic)",
                                "epoch": chosen["best_epoch"],
                                "test_f1": chosen["best_test_f1"]},
            "validation_selection": {"what": "test F1 at the epoch of best validation F1",
                                     "epoch": chosen["val_selected_epoch"],
                                     "val_f1": chosen["val_selected_val_f1"],
                                     "test_f1": chosen["val_selected_test_f1"]},
            "constant_baseline_test_f1": baseline,
        },
    }
    with atomic_path(checkpoint_path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(summary, indent=2, allow_nan=False))
    if store is not None:
        store.clear()
    log.info("paper selection: best test F1 %.4f at epoch %d; validation selection: %s; "
             "constant predictor %.4f; model.pt holds epoch %d (%s selection)",
             summary["best_test_f1"], summary["best_epoch"],
             "none (no validation split)" if summary["val_selected_epoch"] is None else
             f"test F1 {summary['val_selected_test_f1']:.4f} at epoch "
             f"{summary['val_selected_epoch']}", baseline, best.epoch, settings.selection)
    return summary


def selections(rows: Sequence[Mapping[str, float]]) -> dict[str, Any]:
    """Both selections' numbers from the per-epoch rows; ties go to the earliest epoch.

    ``best_test_f1``/``best_epoch``: the paper's (maximum test F1, chosen on test itself, so
    optimistic). ``val_selected_*``: the epoch with the best validation F1 and its test F1, an
    honest held-out estimate; None without a validation split.
    """
    paper = max(rows, key=lambda r: r["test_f1"])  # max() keeps the first of equal keys
    out: dict[str, Any] = {"best_test_f1": paper["test_f1"], "best_epoch": paper["epoch"],
                           "val_selected_epoch": None, "val_selected_val_f1": None,
                           "val_selected_test_f1": None}
    scored = [r for r in rows if not math.isnan(r["val_f1"])]
    if scored:
        val = max(scored, key=lambda r: r["val_f1"])
        out.update(val_selected_epoch=val["epoch"], val_selected_val_f1=val["val_f1"],
                   val_selected_test_f1=val["test_f1"])
    return out


def _train_epoch(model, optimizer, loss_fn, x, y, settings, gen, epoch, autocast) -> float:
    _set_train_mode(model, settings.strategy)
    n, batch_size = len(x), settings.batch_size
    perm = torch.randperm(n, generator=gen).to(x.device)
    starts = range(0, n, batch_size)
    # Losses stay on the device until the epoch ends: a per-batch .item() would make the CPU
    # wait for the GPU after every step.
    losses = torch.zeros(len(starts), dtype=torch.float32, device=x.device)
    sizes = torch.zeros(len(starts), dtype=torch.float64)
    for b, start in enumerate(starts):
        idx = perm[start : start + batch_size]
        if len(idx) < 2 and n > 1:
            continue  # BatchNorm cannot train on one sample; a lone last sample waits a turn
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = loss_fn(model(x[idx]).float(), y[idx])
        loss.backward()
        optimizer.step()
        losses[b] = loss.detach()
        sizes[b] = len(idx)
    losses = losses.double().cpu()
    bad = torch.nonzero(~torch.isfinite(losses))
    if len(bad):
        b = int(bad[0])
        raise NonFiniteLossError(f"loss is {losses[b].item()} at epoch {epoch}, batch {b + 1}; "
                                 "lower the learning rate or check the data for NaN/inf")
    return float((losses * sizes).sum() / max(sizes.sum().item(), 1))


@torch.no_grad()
def _score(model, loss_fn, x, y, y_np, batch_size, autocast) -> tuple[float, float]:
    """Loss and weighted F1 from one batched no-grad pass; (nan, nan) for an empty split."""
    if len(x) == 0:
        return math.nan, math.nan
    model.eval()
    with autocast():
        logits = torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    logits = logits.float()
    loss = loss_fn(logits, y).item()
    probs = torch.sigmoid(logits).cpu().numpy()
    return loss, weighted_f1(y_np, probs)


# --------------------------------------------------------------------------------------------
# Resume


def _rng_state(order_gen: torch.Generator) -> dict:
    """Every random state the rest of the job can touch, as tensors and lists (weights_only)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {"torch": torch.get_rng_state(), "order": order_gen.get_state(),
             "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
             "python": [version, list(internal), gauss_next]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, order_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    order_gen.set_state(state["order"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _resume_extras(rows: list[dict], best: _Selected, order_gen: torch.Generator) -> dict:
    return {"rows": rows, "best_epoch": best.epoch, "best_metric": best.metric,
            "rng": _rng_state(order_gen)}


def _restore(state: dict, model, optimizer, order_gen, settings) -> tuple[int, list, _Selected]:
    model.load_state_dict(state["current"]["model"])
    optimizer.load_state_dict(state["current"]["optimizer"])
    _set_rng_state(state["rng"], order_gen)
    snap = state["best"]
    best = _Selected(state["best_epoch"], state["best_metric"], _cpu_copy(snap["model"]),
                     _cpu_copy(snap["optimizer"]) if settings.save_optimizer else None)
    return state["epoch"], state["rows"], best


def _cpu_copy(obj: Any) -> Any:
    """A copy of a (nested) state dict with every tensor cloned onto the CPU.

    The selected epoch is kept on the CPU: it must not alias the live parameters, and on a GPU
    it would otherwise hold up to three model-sized buffers of device memory for nothing.
    """
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cpu_copy(v) for v in obj]
    return copy.deepcopy(obj)


class ResumeStore:
    """A job's resume state: ``state.pt`` plus one ``epochNNNN.pt`` snapshot per kept epoch.

    Each epoch writes one snapshot (model and optimizer: what continuing needs) and then
    ``state.pt`` (epoch, metric rows, RNG states, which snapshot holds the selected epoch), each
    atomically, so a kill at any moment leaves the previous consistent state. The selected
    epoch's weights are not written again: its snapshot is simply kept while it stays best.

    The writes run on a background thread, overlapping the next epoch: a ResNet1d101 snapshot
    with Adam state is ~350 MB, over a second to write, while a GPU epoch on PTB-XL takes
    seconds. The caller hands over CPU copies, which the training loop never touches again.
    """

    STATE = "state.pt"

    def __init__(self, folder: str | os.PathLike, fingerprint: dict) -> None:
        self.folder = Path(folder)
        self.fingerprint = fingerprint
        self._writer: ThreadPoolExecutor | None = None
        self._pending: Future | None = None

    def _snapshot(self, epoch: int) -> Path:
        return self.folder / f"epoch{epoch:04d}.pt"

    def load(self) -> dict | None:
        """The saved state with its snapshots loaded (on CPU), or None to start from epoch 0."""
        for stale in self.folder.glob(".*.tmp"):  # a write cut short by a kill
            stale.unlink()
        path = self.folder / self.STATE
        if not path.is_file():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            mismatch = _differences(state.get("fingerprint"), self.fingerprint)
            if mismatch:
                log.warning("ignoring resume state %s: it was written for another configuration "
                            "or other inputs (differs in %s); starting from epoch 0",
                            path, ", ".join(mismatch))
                self.clear()
                return None
            state["current"] = torch.load(self._snapshot(state["epoch"]), map_location="cpu",
                                          weights_only=True)
            state["best"] = (state["current"] if state["best_epoch"] == state["epoch"] else
                             torch.load(self._snapshot(state["best_epoch"]),
                                        map_location="cpu", weights_only=True))
        except (OSError, EOFError, KeyError, RuntimeError, TypeError, ValueError,
                pickle.UnpicklingError) as e:
            log.warning("ignoring unreadable resume state in %s (%s); starting from epoch 0",
                        self.folder, e)
            self.clear()
            return None
        return state

    def save(self, epoch: int, snapshot: dict, extras: dict) -> None:
        """Queue the state after ``epoch``; waits for the previous epoch's write first."""
        self.wait()
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="resume-writer")
        extras = {**extras, "rows": list(extras["rows"])}  # the loop appends to its own list
        self._pending = self._writer.submit(self._write, epoch, snapshot, extras)

    def _write(self, epoch: int, snapshot: dict, extras: dict) -> None:
        with atomic_path(self._snapshot(epoch)) as tmp:
            torch.save(snapshot, tmp)
        with atomic_path(self.folder / self.STATE) as tmp:
            torch.save({"fingerprint": self.fingerprint, "epoch": epoch, **extras}, tmp)
        keep = {self._snapshot(epoch).name, self._snapshot(extras["best_epoch"]).name}
        for old in self.folder.glob("epoch*.pt"):
            if old.name not in keep:
                old.unlink()

    def wait(self) -> None:
        """Block until the queued write is on disk; re-raise its error, if any."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self._writer is not None:
                self._writer.shutdown()
                self._writer = None

    def clear(self) -> None:
        self.close()
        if self.folder.exists():
            shutil.rmtree(self.folder)


def _differences(saved: object, current: dict) -> list[str]:
    """Names of the fingerprint entries that differ (all of them if ``saved`` is no dict)."""
    if not isinstance(saved, dict):
        return ["format"]
    diff = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diff += [f"{key}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            diff.append(key)
    return diff

