"""The training engine: pretraining, fine-tuning and training from scratch are one loop.

As in nanoGPT, a job is ``init_from = scratch | pretrained``; a checkpoint is one dict (model,
optimizer, config, epoch, best metric). The shard is loaded into memory once (on the GPU when
training there) and batches are sliced from tensors: no DataLoader, no per-sample Python work.

Three things the paper's code did not do, each because the study needs it:

* **Honest model selection.** Every epoch is scored on a validation split (the shard's own, or
  one carved from train) as well as on test. ``selection="paper"`` keeps the epoch with the best
  *test* score, as the paper did (``paper_metric``: weighted F1 downstream, the unweighted mean
  of per-class F1 in its pretraining); ``selection="validation"`` keeps the epoch with the best
  validation F1. metrics.csv and the sidecar carry the numbers of both, and predictions.npz the
  test probabilities at both selections' epochs and after every epoch (so that the results
  stage can redo the paper selection inside each bootstrap replicate).
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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ecg_transfer import __version__, modelmeta, models, optim
from ecg_transfer.codehash import code_hash
from ecg_transfer.fileio import atomic_path
from ecg_transfer.metrics import (
    EPOCH_COLUMNS,
    SELECTIONS,
    constant_baseline_f1,
    macro_f1,
    select_epochs,
    weighted_f1,
)
from ecg_transfer.shards import Shard, read_shard
from ecg_transfer.splits import TEST, TRAIN, VAL, carve_validation, nested_subset

log = logging.getLogger(__name__)

INIT_FROM = ("scratch", "pretrained")
#: The metrics.csv column the paper selection maximises for model.pt: weighted test F1 (the
#: paper's downstream scripts) or the unweighted mean of per-class test F1 (its pretraining).
PAPER_METRICS = ("test_f1", "test_macro_f1")
TRAIN_ON = ("train", "full")
STRATEGIES = ("full", "linear_probe", "discriminative")
PRECISIONS = ("fp32", "bf16")
#: torch.compile modes (``none``: eager). ``reduce-overhead`` adds CUDA graphs on a GPU.
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune-no-cudagraphs")
#: The config keys of a stage section (``training.pretrain`` ...) and of ``training`` itself
#: that map onto TrainSettings fields of the same name.
STAGE_KEYS = ("epochs", "batch_size", "lr", "strategy", "backbone_lr_factor")
STUDY_KEYS = ("selection", "validation_fraction", "precision")
#: The keys of ``training.speed``: how fast a job runs, not its numbers (beyond floating-point
#: noise); the workflow does not re-run finished jobs when they change.
SPEED_KEYS = ("compile", "eval_batch_size")
#: Settings that do not change a job's numbers, so a resume state written under other values
#: is still that job's state (a preempted job may come back with other threads or another GPU).
_NOT_IN_FINGERPRINT = ("threads", "device", "resume_interval_s", *SPEED_KEYS)

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
    # Which epoch's weights become model.pt: paper = best ``paper_metric`` on test (the paper),
    # validation = best validation F1.
    selection: str = "paper"
    paper_metric: str = "test_f1"
    # Fraction of train carved out as validation when the shard has no validation split
    # (paper-protocol shards); seeded by ``seed``. 0 trains on the whole train split, as the
    # paper did, and leaves only the paper selection.
    validation_fraction: float = 0.1
    # train: the shard's train split; full: every record (train + validation + test), as the
    # paper's CPSC2018/Georgia notebooks also prepared for pretraining. A job trained on full
    # has no test split: its test columns are empty and model.pt holds the last epoch (the
    # paper's train.py without a test set saved every tenth epoch, so kept its last).
    train_on: str = "train"
    # The dataset-size axis: train on a nested, label-stratified subset of this many train
    # records (a count, or a fraction below 1), drawn with ``subset_seed`` (fixed across the
    # job seeds, so every seed sees the same records). None: all of train.
    train_size: float | None = None
    subset_seed: int = 0
    strategy: str = "full"  # only with init_from="pretrained"
    backbone_lr_factor: float = 0.1  # discriminative: backbone lr = lr * factor
    # The resume state (model, Adam, RNG) is written after an epoch once this many seconds have
    # passed since the last write (0: after every epoch). A kill loses at most this much work
    # plus one epoch; short jobs (the demo's epochs take a second) never pay for the writes.
    resume_interval_s: float = 30.0
    # fp32: float32 everywhere, TF32 matmuls/convolutions allowed on CUDA. bf16: bfloat16
    # autocast on CUDA; CPU jobs always train in float32.
    precision: str = "fp32"
    # Speed only (SPEED_KEYS). compile: torch.compile the model with this mode (compile time
    # counts against the job; on a CPU it needs a C++ compiler). eval_batch_size: the no-grad
    # scoring of validation and test after every epoch (None: batch_size).
    compile: str = "none"
    eval_batch_size: int | None = None

    def __post_init__(self) -> None:
        for name, allowed in (("init_from", INIT_FROM), ("selection", tuple(SELECTIONS)),
                              ("paper_metric", PAPER_METRICS), ("train_on", TRAIN_ON),
                              ("strategy", STRATEGIES), ("precision", PRECISIONS),
                              ("compile", COMPILE_MODES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"TrainSettings.{name} is {getattr(self, name)!r}; expected one "
                                 f"of {', '.join(allowed)}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError("TrainSettings.validation_fraction must be in [0, 1), got "
                             f"{self.validation_fraction}")
        if self.eval_batch_size is not None and self.eval_batch_size < 1:
            raise ValueError("TrainSettings.eval_batch_size must be a positive integer or None, "
                             f"got {self.eval_batch_size}")
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
    paper_metric: str = "test_f1",
    train_on: str = "train",
    train_size: float | None = None,
    subset_seed: int = 0,
    speed: Mapping[str, Any] | None = None,
) -> TrainSettings:
    """A job's settings from its config: ``training.<stage>`` and the study-wide ``training`` keys.

    ``speed`` is ``training.speed`` (:data:`SPEED_KEYS`), which the workflow keeps out of the
    jobs' parameters so that changing it re-runs nothing.

    Unknown keys are errors (naming the section), so a typo in a config cannot silently leave a
    default in force.
    """
    speed = dict(speed or {})
    for section, values, known in (("training.<stage>", stage, STAGE_KEYS),
                                   ("training", training, STUDY_KEYS),
                                   ("training.speed", speed, SPEED_KEYS)):
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"config section {section} has unknown key(s) {unknown}; "
                             f"known: {', '.join(known)}")
    return TrainSettings(arch=arch, seed=int(seed), init_from=init_from, threads=threads,
                         save_optimizer=save_optimizer, paper_metric=paper_metric,
                         train_on=train_on, train_size=train_size, subset_seed=subset_seed,
                         **dict(stage), **dict(training), **speed)


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
        if settings.compile == "none":
            # ATen's flag alone: torch.use_deterministic_algorithms also sets the inductor's,
            # and importing torch._inductor.config imports torch._dynamo, ~0.9 s of the job's
            # start-up (ecg_transfer.optim); only a compiled model reads that flag
            torch._C._set_deterministic_algorithms(True)
        else:
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


def make_optimizer(model: torch.nn.Module, settings: TrainSettings) -> optim.Adam:
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
    # torch.optim.Adam(groups, lr=settings.lr, fused=True)'s update without torch._dynamo's import
    # (ecg_transfer.optim). fused: one kernel for all parameters, 4x faster on CPU for ResNet1d101
    return optim.Adam(groups, lr=settings.lr)


def compiled(model: torch.nn.Module, settings: TrainSettings) -> torch.nn.Module:
    """``model``, or (``settings.compile`` other than none) a torch.compile wrapper of it that
    shares its parameters: state_dict and checkpoints stay those of ``model``."""
    if settings.compile == "none":
        return model
    log.info("torch.compile mode %s (the first steps of each input shape compile)",
             settings.compile)
    return torch.compile(model, mode=settings.compile)


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
    """The shard's split vector, with a validation split carved from train if it has none.

    With ``train_on="full"`` every record is train first (the shard's validation and test
    records included), then validation is carved from them as for a shard without one.
    """
    if settings.train_on == "full":
        log.info("train_on full: all %d records of the shard train; no test split",
                 len(shard.split))
        shard = replace(shard, split=np.full_like(shard.split, TRAIN))
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
class JobData:
    """A job's splits as device tensors, and what its outputs say about the data."""

    x: dict[int, torch.Tensor]  # TRAIN / VAL / TEST -> (N, leads, samples)
    y: dict[int, torch.Tensor]  # multi-hot labels as float32, for the loss
    y_np: dict[int, np.ndarray]  # the same labels on the host, for the F1 scores
    test_ids: list[str]  # record ids of the test split, in order (predictions.npz)
    meta: dict  # classes, leads, fs, dataset, protocol, scaling, n_leads, n_samples, records
    baseline: float  # test F1 of the best constant predictor

    @property
    def n_classes(self) -> int:
        return len(self.meta["classes"])


def load_data(shard_path: ShardPaths, settings: TrainSettings, device: torch.device) -> JobData:
    """Read the shard parts once, split them, and move every split to ``device``."""
    where = _shard_label(shard_path)
    shard = read_shard(shard_path)
    split = split_with_validation(shard, settings, where)
    if settings.train_size is not None:
        # after validation is carved: validation and test are the same records at every size
        split = nested_subset(split, shard.labels, settings.train_size, settings.subset_seed,
                              f"{where}: train_size")
        log.info("size axis: %d of the train records (train_size %s, subset seed %d)",
                 int((split == TRAIN).sum()), settings.train_size, settings.subset_seed)
    if settings.selection == "validation" and not (split == VAL).any():
        raise ValueError(f"{where}: training.selection is 'validation' but there is no "
                         "validation split (the shard has none and "
                         f"training.validation_fraction is {settings.validation_fraction})")
    y_np = {k: shard.labels[split == k] for k in (TRAIN, VAL, TEST)}
    n = {k: len(v) for k, v in y_np.items()}
    if n[TRAIN] == 0 or (n[TEST] == 0 and settings.train_on != "full"):
        raise ValueError(f"{where}: empty train ({n[TRAIN]}) or test ({n[TEST]}) split")
    x = {k: torch.from_numpy(shard.signals[split == k]).to(device) for k in (TRAIN, VAL, TEST)}
    y = {k: torch.from_numpy(v.astype(np.float32)).to(device) for k, v in y_np.items()}
    meta = {"classes": shard.classes, "leads": shard.leads, "fs": shard.fs,
            "n_leads": int(shard.signals.shape[1]), "n_samples": int(shard.signals.shape[2]),
            "dataset": shard.dataset, "protocol": shard.protocol,
            # per-record scaling/normalisation, where the shard records it
            "scaling": getattr(shard, "scaling", None),
            "records": {"train": n[TRAIN], "val": n[VAL], "test": n[TEST]}}
    test_ids = [r for r, s in zip(shard.record_ids, split, strict=True) if s == TEST]
    baseline = constant_baseline_f1(y_np[TRAIN], y_np[TEST]) if n[TEST] else math.nan
    return JobData(x, y, y_np, test_ids, meta, baseline)


def init_model(settings: TrainSettings, data: JobData, pretrained: str | os.PathLike | None
               ) -> tuple[torch.nn.Module, dict | None]:
    """A fresh model, or the pretrained one with a new top layer; and what it was trained on."""
    if settings.init_from == "scratch":
        return models.build(settings.arch, n_classes=data.n_classes,
                            n_leads=data.meta["n_leads"],
                            n_samples=data.meta["n_samples"]), None
    if pretrained is None:
        raise ValueError("init_from='pretrained' needs the path of a pretrained checkpoint")
    model = load_pretrained_backbone(pretrained, data.n_classes)
    up = model.checkpoint_config
    if up.get("arch") != settings.arch:
        raise ValueError(f"{pretrained}: checkpoint is a {up.get('arch')!r}, the job trains "
                         f"{settings.arch!r}")
    if up.get("imported"):
        # a model given by file: the plan could not always see what it takes (modelmeta)
        modelmeta.check_fits(up["dataset"], modelmeta.ModelInput.of(up), data.meta["dataset"],
                             modelmeta.ModelInput.of(data.meta),
                             model_where=up["imported"].get("source", ""))
    log.info("initialised from pretrained checkpoint %s; new top layer for %d classes; "
             "strategy %s", pretrained, data.n_classes, settings.strategy)
    return model, {"dataset": up.get("dataset"), "protocol": up.get("protocol"),
                   "arch": up.get("arch"), "checkpoint": str(pretrained),
                   **({"imported": up["imported"]} if up.get("imported") else {})}


@dataclass
class _Selected:
    """The state of the epoch that model.pt will hold."""

    epoch: int
    metric: float
    model: dict
    optimizer: dict | None


@dataclass
class Progress:
    """What the epochs have produced so far; the resume state saves and restores exactly this.

    ``rows`` are metrics.csv's rows; ``best`` the epoch model.pt will hold (by ``criterion``);
    ``predictions`` the test probabilities (float32, CPU) at the epoch each selection of
    :data:`metrics.SELECTIONS` chooses, as ``{selection: (epoch, probs)}``; ``epoch_probs``
    the test probabilities after every epoch (float16, CPU; item e-1 is epoch e), so that the
    paper selection can be redone on resampled test sets. float16 halves what a 100-epoch job
    holds in memory and writes; the selected epochs stay float32 because AUROC computed from
    float16 probabilities ties near 1.
    """

    criterion: str
    rows: list[dict] = field(default_factory=list)
    best: _Selected | None = None
    predictions: dict[str, tuple[int, torch.Tensor]] = field(default_factory=dict)
    epoch_probs: list[torch.Tensor] = field(default_factory=list)

    @property
    def epoch(self) -> int:
        return len(self.rows)

    def record(self, row: dict, test_probs: torch.Tensor, model: torch.nn.Module,
               optimizer: optim.Adam, save_optimizer: bool) -> None:
        """Add one epoch; keep its weights and predictions where it is the best so far."""
        self.rows.append(row)
        # (records, classes); (0, classes) without a test split, so item e-1 is always epoch e
        self.epoch_probs.append(test_probs.to(torch.float16))
        if self.best is None or row[self.criterion] > self.best.metric:
            # Kept in memory and written once at the end: a ResNet1d101 checkpoint with Adam
            # state is ~350 MB, too slow to rewrite at every improvement.
            self.best = _Selected(row["epoch"], row[self.criterion],
                                  _cpu_copy(model.state_dict()),
                                  _cpu_copy(optimizer.state_dict()) if save_optimizer else None)
        for name, (column, _) in SELECTIONS.items():
            value, kept = row[column], self.predictions.get(name)
            if math.isnan(value):
                continue
            if kept is None or value > self.rows[kept[0] - 1][column]:  # ties: the earliest
                self.predictions[name] = (row["epoch"], test_probs.to(torch.float32))


def train(
    shard_path: ShardPaths,
    settings: TrainSettings,
    *,
    metrics_path: str | os.PathLike,
    checkpoint_path: str | os.PathLike,
    pretrained: str | os.PathLike | None = None,
    resume_dir: str | os.PathLike | None = None,
    predictions_path: str | os.PathLike | None = None,
) -> dict:
    """Train one model; score validation and test after every epoch.

    Writes ``metrics_path`` (one row per epoch, :data:`metrics.EPOCH_COLUMNS`),
    ``checkpoint_path`` (the epoch chosen by ``settings.selection``), a JSON sidecar beside the
    checkpoint saying what the model expects as input and how it scored under both selections,
    and ``predictions_path`` (test-set probabilities at both selections' epochs and after every
    epoch, for the results stage). ``resume_dir`` (a folder outside the job's outputs, which a
    workflow manager deletes when a job fails) holds the per-epoch resume state; it is removed
    once the outputs are written.
    """
    seed_everything(settings.seed)
    device = pick_device(settings.device)
    autocast = configure_device(device, settings)
    data = load_data(shard_path, settings, device)
    model, upstream = init_model(settings, data, pretrained)
    model.to(device)
    optimizer = make_optimizer(model, settings)
    net = compiled(model, settings)  # what runs; model (its parameters) is what is saved
    config = {**asdict(settings), **data.meta, "upstream": upstream,
              "code_version": f"{__version__}+{code_hash('ecg_transfer.train')}"}
    order_gen = torch.Generator().manual_seed(settings.seed)
    progress = Progress(criterion=_criterion(settings))
    store = _resume_store(resume_dir, config, shard_path, pretrained)
    if store is not None and (state := store.load()) is not None:
        progress = _restore(state, model, optimizer, order_gen, settings)
        log.info("resuming after epoch %d of %d from %s", progress.epoch, settings.epochs,
                 store.folder)
    start_epoch, started = progress.epoch, time.monotonic()
    last_saved = started
    _log_start(settings, data, device)
    try:
        for epoch in range(start_epoch + 1, settings.epochs + 1):
            row, test_probs = run_epoch(net, optimizer, data, settings, order_gen, epoch,
                                        autocast)
            progress.record(row, test_probs, model, optimizer, settings.save_optimizer)
            due = time.monotonic() - last_saved >= settings.resume_interval_s
            if store is not None and due:
                store.save(epoch, _snapshot(progress, model, optimizer),
                           _resume_extras(progress, order_gen), _selected_snapshot(progress))
                last_saved = time.monotonic()
            eta = (time.monotonic() - started) / (epoch - start_epoch) * (settings.epochs - epoch)
            _log_epoch(row, settings.epochs, eta)
    finally:
        if store is not None:
            store.close()  # a write in flight completes (or raises) before anything else
    summary = write_outputs(progress, config, data, settings, Path(metrics_path),
                            Path(checkpoint_path), predictions_path,
                            resumed_after=start_epoch or None)
    if store is not None:
        store.clear()
    return summary


def _criterion(settings: TrainSettings) -> str:
    """The metrics.csv column whose best epoch model.pt holds (``epoch``: the last one)."""
    if settings.selection == "validation":
        return "val_f1"
    return "epoch" if settings.train_on == "full" else settings.paper_metric


def run_epoch(model, optimizer, data: JobData, settings: TrainSettings, order_gen, epoch: int,
              autocast) -> tuple[dict, torch.Tensor]:
    """Train one epoch and score it; metrics.csv's row and the test probabilities (CPU)."""
    t0 = time.monotonic()
    loss_fn = torch.nn.BCEWithLogitsLoss()
    train_loss = _train_epoch(model, optimizer, loss_fn, data.x[TRAIN], data.y[TRAIN], settings,
                              order_gen, epoch, autocast)
    eval_batch = settings.eval_batch_size or settings.batch_size
    val_loss, val_probs = _score(model, loss_fn, data.x[VAL], data.y[VAL], eval_batch, autocast)
    test_loss, test_probs = _score(model, loss_fn, data.x[TEST], data.y[TEST], eval_batch,
                                   autocast)
    probs, tested = test_probs.numpy(), len(test_probs) > 0
    row = dict(epoch=epoch, train_loss=train_loss, val_loss=val_loss,
               val_f1=weighted_f1(data.y_np[VAL], val_probs.numpy()) if len(val_probs)
               else math.nan,
               test_loss=test_loss,
               test_f1=weighted_f1(data.y_np[TEST], probs) if tested else math.nan,
               test_macro_f1=macro_f1(data.y_np[TEST], probs) if tested else math.nan,
               seconds=round(time.monotonic() - t0, 3), baseline_f1=data.baseline)
    return row, test_probs


def write_outputs(progress: Progress, config: dict, data: JobData, settings: TrainSettings,
                  metrics_path: Path, checkpoint_path: Path,
                  predictions_path: str | os.PathLike | None, *, resumed_after: int | None
                  ) -> dict:
    """model.pt, metrics.csv, the sidecar model.json and predictions.npz, each atomically."""
    best = progress.best
    assert best is not None  # epochs >= 1: at least one epoch ran or was restored
    checkpoint = {"model": best.model, "config": config, "epoch": best.epoch,
                  "best_metric": best.metric, "selection": settings.selection,
                  "criterion": progress.criterion}
    if best.optimizer is not None:
        checkpoint["optimizer"] = best.optimizer
    with atomic_path(checkpoint_path) as tmp:
        torch.save(checkpoint, tmp)
    with atomic_path(metrics_path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=EPOCH_COLUMNS)
        writer.writeheader()
        writer.writerows(progress.rows)
    if predictions_path is not None:
        write_predictions(predictions_path, progress, data)
    chosen = select_epochs(progress.rows)
    baseline = None if math.isnan(data.baseline) else data.baseline  # None: no test split
    summary = {
        **config, **chosen, "resumed_after_epoch": resumed_after, "checkpoint_epoch": best.epoch,
        "checkpoint_criterion": progress.criterion, "baseline_f1": baseline,
        "epochs_run": len(progress.rows),
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
    log.info("paper selection: %s; validation selection: %s; constant predictor %s; "
             "model.pt holds epoch %d (best %s)",
             "none (no test split)" if chosen["best_epoch"] is None else
             f"best test F1 {chosen['best_test_f1']:.4f} at epoch {chosen['best_epoch']}",
             "none (no validation split)" if chosen["val_selected_epoch"] is None else
             f"test F1 {chosen['val_selected_test_f1']} at epoch {chosen['val_selected_epoch']}",
             baseline, best.epoch, progress.criterion)
    return summary


def write_predictions(path: str | os.PathLike, progress: Progress, data: JobData) -> None:
    """Test-set probabilities at each selection's epoch and after every epoch, so later stages
    never re-run a model.

    ``record_ids``, ``y_true`` (uint8) and ``classes`` describe the test split; per selection
    ``<name>_epoch`` and ``<name>_probs`` (float32, records x classes: AUROC from float16
    probabilities ties near 1). A selection the job cannot make (validation without a
    validation split, either one without a test split) is absent.

    ``epoch_probs`` (float16, epochs x records x classes; row e-1 is metrics.csv's epoch e) lets
    the results stage redo the paper selection (the epoch of best test F1) inside every
    bootstrap replicate; float16 keeps it at 2 bytes per number, and only a probability in the
    1.2e-4 below 0.5 rounds across the F1 threshold. Like the selections, it is absent for a
    job without a test split (``train_on="full"``), whose ``record_ids`` are empty.
    """
    arrays = {"record_ids": np.array(data.test_ids, dtype=str),
              "y_true": data.y_np[TEST].astype(np.uint8),
              "classes": np.array(data.meta["classes"], dtype=str)}
    for name, (epoch, probs) in progress.predictions.items():
        arrays[f"{name}_epoch"] = np.array(epoch)
        arrays[f"{name}_probs"] = probs.to(torch.float32).numpy()
    if data.test_ids:
        assert len(progress.epoch_probs) == progress.epoch  # one per metrics.csv row
        arrays["epoch_probs"] = torch.stack(progress.epoch_probs).numpy()
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)


def read_predictions(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays :func:`write_predictions` wrote."""
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _log_start(settings: TrainSettings, data: JobData, device: torch.device) -> None:
    r = data.meta["records"]
    log.info("%s %s on %s: %d train / %d val / %d test records, %d classes, input (%d, %d), "
             "device %s; constant-predictor test F1 %.3f", settings.init_from, settings.arch,
             data.meta["dataset"], r["train"], r["val"], r["test"], data.n_classes,
             data.meta["n_leads"], data.meta["n_samples"], device, data.baseline)


def _log_epoch(row: dict, epochs: int, eta: float) -> None:
    log.info("epoch %d/%d  train_loss %.4f  val_loss %.4f  val_f1 %.4f  test_loss %.4f  "
             "test_f1 %.4f  %.1f s  ETA %.0f s", row["epoch"], epochs, row["train_loss"],
             row["val_loss"], row["val_f1"], row["test_loss"], row["test_f1"], row["seconds"],
             eta)


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
def _score(model, loss_fn, x, y, batch_size, autocast) -> tuple[float, torch.Tensor]:
    """Loss and sigmoid probabilities (CPU, float32) from one batched no-grad pass.

    (nan, empty) for an empty split.
    """
    if len(x) == 0:
        return math.nan, torch.empty((0, y.shape[1]))
    model.eval()
    with autocast():
        logits = torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    logits = logits.float()
    return loss_fn(logits, y).item(), torch.sigmoid(logits).cpu()


# --------------------------------------------------------------------------------------------
# Resume


def _resume_store(resume_dir: str | os.PathLike | None, config: dict, shard_path: ShardPaths,
                  pretrained: str | os.PathLike | None) -> ResumeStore | None:
    """The job's resume state, fingerprinted by its config and input files."""
    if resume_dir is None:
        return None
    inputs = _shard_files(shard_path) + ([Path(pretrained)] if pretrained is not None else [])
    return ResumeStore(resume_dir, {
        "config": {k: v for k, v in config.items() if k not in _NOT_IN_FINGERPRINT},
        "inputs": [_file_identity(p) for p in inputs],
    })


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


def _snapshot(progress: Progress, model, optimizer) -> dict:
    """What continuing needs: this epoch's model and Adam state, on the CPU."""
    best = progress.best
    if best is not None and best.epoch == progress.epoch:  # its CPU copy doubles as snapshot
        return {"model": best.model, "optimizer": best.optimizer
                if best.optimizer is not None else _cpu_copy(optimizer.state_dict())}
    return {"model": _cpu_copy(model.state_dict()),
            "optimizer": _cpu_copy(optimizer.state_dict())}


def _selected_snapshot(progress: Progress) -> dict:
    """The selected epoch's weights, already copied to the CPU when it became the selection.

    Handed to every write: the store puts them on disk the first time a state names an epoch
    that was selected between two writes (a write happens only every ``resume_interval_s``).
    """
    best = progress.best
    assert best is not None
    return {"model": best.model} | ({} if best.optimizer is None else
                                    {"optimizer": best.optimizer})


def _resume_extras(progress: Progress, order_gen: torch.Generator) -> dict:
    assert progress.best is not None
    return {"rows": progress.rows, "best_epoch": progress.best.epoch,
            "best_metric": progress.best.metric, "rng": _rng_state(order_gen),
            "predictions": {k: [e, p] for k, (e, p) in progress.predictions.items()},
            # a copy: the loop appends to its own list while the writer thread saves this one
            "epoch_probs": list(progress.epoch_probs)}


def _restore(state: dict, model, optimizer, order_gen, settings) -> Progress:
    model.load_state_dict(state["current"]["model"])
    optimizer.load_state_dict(state["current"]["optimizer"])
    _set_rng_state(state["rng"], order_gen)
    snap = state["best"]
    best = _Selected(state["best_epoch"], state["best_metric"], _cpu_copy(snap["model"]),
                     _cpu_copy(snap["optimizer"]) if settings.save_optimizer else None)
    predictions = {k: (int(e), p) for k, (e, p) in state.get("predictions", {}).items()}
    # No fallback for a state without epoch_probs: code_version is in the fingerprint, so a
    # state written by code that did not save them is never restored.
    return Progress(_criterion(settings), list(state["rows"]), best, predictions,
                    list(state["epoch_probs"]))


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

    Each write puts one snapshot (model and optimizer: what continuing needs) on disk, then the
    selected epoch's snapshot if no earlier write did (it was selected between two writes), and
    then ``state.pt`` (epoch, metric rows, RNG states, which snapshot holds the selected epoch),
    each atomically, so a kill at any moment leaves the previous consistent state, and a state
    never names a snapshot that is not on disk. The selected epoch's weights are written once:
    its snapshot is then simply kept while it stays best.

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
        # Epochs whose snapshot this job (or the one it resumes) has on disk; only the writer
        # thread touches it once writes have started.
        self._written: set[int] = set()

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
            self._written = {state["epoch"], state["best_epoch"]}
        except (OSError, EOFError, KeyError, RuntimeError, TypeError, ValueError,
                pickle.UnpicklingError) as e:
            log.warning("ignoring unreadable resume state in %s (%s); starting from epoch 0",
                        self.folder, e)
            self.clear()
            return None
        return state

    def save(self, epoch: int, snapshot: dict, extras: dict, selected: dict) -> None:
        """Queue the state after ``epoch``; waits for the previous epoch's write first.

        ``selected`` holds the weights of epoch ``extras["best_epoch"]``; written only if no
        earlier write put them on disk.
        """
        self.wait()
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="resume-writer")
        extras = {**extras, "rows": list(extras["rows"])}  # the loop appends to its own list
        self._pending = self._writer.submit(self._write, epoch, snapshot, extras, selected)

    def _write(self, epoch: int, snapshot: dict, extras: dict, selected: dict) -> None:
        with atomic_path(self._snapshot(epoch)) as tmp:
            torch.save(snapshot, tmp)
        self._written.add(epoch)
        best = extras["best_epoch"]
        if best not in self._written:  # selected since the last write: never on disk yet
            with atomic_path(self._snapshot(best)) as tmp:
                torch.save(selected, tmp)
            self._written.add(best)
        with atomic_path(self.folder / self.STATE) as tmp:
            torch.save({"fingerprint": self.fingerprint, "epoch": epoch, **extras}, tmp)
        keep = {self._snapshot(epoch).name, self._snapshot(best).name}
        for old in self.folder.glob("epoch*.pt"):
            if old.name not in keep:
                old.unlink()
        self._written &= {epoch, best}

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
        self._written.clear()
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

