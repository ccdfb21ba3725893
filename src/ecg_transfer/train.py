"""The training engine: pretraining, fine-tuning and training from scratch are one loop.

As in nanoGPT, a job is ``init_from = scratch | pretrained``; a checkpoint is one dict (model,
optimizer, config, epoch, best metric). The shard is loaded into memory once and batches are
sliced from tensors: no DataLoader, no per-sample Python work.
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ecg_transfer import __version__, models
from ecg_transfer.fileio import atomic_path
from ecg_transfer.metrics import constant_baseline_f1, weighted_f1
from ecg_transfer.shards import TEST, TRAIN, read_shard

log = logging.getLogger(__name__)

METRIC_COLUMNS = ("epoch", "train_loss", "test_loss", "test_f1", "seconds", "baseline_f1")


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


def load_pretrained_backbone(path: str | os.PathLike, n_classes: int) -> torch.nn.Module:
    """Rebuild the upstream model from its checkpoint and give it a fresh top layer."""
    model = models.load_pretrained(path)
    return models.replace_head(model, n_classes)


def train(
    shard_path: str | os.PathLike,
    settings: TrainSettings,
    *,
    metrics_path: str | os.PathLike,
    checkpoint_path: str | os.PathLike,
    pretrained: str | os.PathLike | None = None,
) -> dict:
    """Train one model and score the test split after every epoch.

    Writes ``metrics_path`` (one row per epoch) and ``checkpoint_path`` (the epoch with the best
    test F1: the paper's selection, which the paper also used to pick upstream checkpoints) plus a
    JSON sidecar next to the checkpoint describing what the model expects as input.
    """
    seed_everything(settings.seed)
    device = pick_device(settings.device)
    if device.type == "cpu":
        torch.set_num_threads(max(1, settings.threads))
        torch.use_deterministic_algorithms(True)
    shard = read_shard(shard_path)
    x_train, y_train = shard.part(TRAIN)
    x_test, y_test = shard.part(TEST)
    if len(x_train) == 0 or len(x_test) == 0:
        raise ValueError(
            f"{shard_path}: empty train ({len(x_train)}) or test ({len(x_test)}) split"
        )
    n_classes, n_leads, n_samples = y_train.shape[1], x_train.shape[1], x_train.shape[2]
    baseline = constant_baseline_f1(y_train, y_test)

    if settings.init_from == "pretrained":
        if pretrained is None:
            raise ValueError("init_from='pretrained' needs the path of a pretrained checkpoint")
        model = load_pretrained_backbone(pretrained, n_classes)
        log.info("initialised from pretrained checkpoint %s; new top layer for %d classes",
                 pretrained, n_classes)
    elif settings.init_from == "scratch":
        model = models.build(settings.arch, n_classes=n_classes, n_leads=n_leads,
                             n_samples=n_samples)
    else:
        raise ValueError(f"init_from={settings.init_from!r}; expected 'scratch' or 'pretrained'")
    model.to(device)
    # fused: one kernel for all parameters; the same update, 4x faster on CPU for ResNet1d101
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, fused=True)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    xt = torch.from_numpy(x_train).to(device)
    yt = torch.from_numpy(y_train.astype(np.float32)).to(device)
    xv = torch.from_numpy(x_test).to(device)
    yv = torch.from_numpy(y_test.astype(np.float32)).to(device)
    order_gen = torch.Generator().manual_seed(settings.seed)

    config = {
        **asdict(settings),
        "classes": shard.classes,
        "leads": shard.leads,
        "fs": shard.fs,
        "n_leads": int(n_leads),
        "n_samples": int(n_samples),
        "dataset": shard.dataset,
        "protocol": shard.protocol,
        "code_version": __version__,
    }
    metrics_path, checkpoint_path = Path(metrics_path), Path(checkpoint_path)
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    best_f1, best_epoch, best = -math.inf, 0, {}
    started = time.monotonic()
    log.info(
        "%s %s on %s: %d train / %d test records, %d classes, input (%d, %d), device %s; "
        "constant-predictor test F1 %.3f",
        settings.init_from, settings.arch, shard.dataset, len(xt), len(xv), n_classes, n_leads,
        n_samples, device, baseline,
    )
    for epoch in range(1, settings.epochs + 1):
        t0 = time.monotonic()
        train_loss = _train_epoch(model, optimizer, loss_fn, xt, yt, settings.batch_size,
                                  order_gen, epoch)
        test_loss, probs = _evaluate(model, loss_fn, xv, yv, settings.batch_size)
        test_f1 = weighted_f1(y_test, probs)
        seconds = time.monotonic() - t0
        rows.append(dict(epoch=epoch, train_loss=train_loss, test_loss=test_loss,
                         test_f1=test_f1, seconds=round(seconds, 3), baseline_f1=baseline))
        if test_f1 > best_f1:
            # Kept in memory and written once at the end: a ResNet1d101 checkpoint with Adam
            # state is ~350 MB, too slow to rewrite at every improvement.
            best_f1, best_epoch = test_f1, epoch
            best = {"model": copy.deepcopy(model.state_dict()),
                    "config": config, "epoch": epoch, "best_metric": test_f1}
            if settings.save_optimizer:
                best["optimizer"] = copy.deepcopy(optimizer.state_dict())
        elapsed = time.monotonic() - started
        eta = elapsed / epoch * (settings.epochs - epoch)
        log.info("epoch %d/%d  train_loss %.4f  test_loss %.4f  test_f1 %.4f  %.1f s  ETA %.0f s",
                 epoch, settings.epochs, train_loss, test_loss, test_f1, seconds, eta)
    with atomic_path(checkpoint_path) as tmp:
        torch.save(best, tmp)
    with atomic_path(metrics_path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    summary = {**config, "best_test_f1": best_f1, "best_epoch": best_epoch,
               "baseline_f1": baseline, "epochs_run": settings.epochs}
    with atomic_path(checkpoint_path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    log.info("best test F1 %.4f at epoch %d (constant predictor %.4f)", best_f1, best_epoch,
             baseline)
    return summary


def _train_epoch(model, optimizer, loss_fn, x, y, batch_size, gen, epoch) -> float:
    model.train()
    n = len(x)
    perm = torch.randperm(n, generator=gen).to(x.device)
    total, seen = 0.0, 0
    for b, start in enumerate(range(0, n, batch_size)):
        idx = perm[start : start + batch_size]
        if len(idx) < 2 and n > 1:
            continue  # BatchNorm cannot train on one sample; a lone last sample waits a turn
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x[idx]), y[idx])
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"loss is {loss.item()} at epoch {epoch}, batch {b + 1}; lower the learning rate"
            )
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
        seen += len(idx)
    return total / max(seen, 1)


@torch.no_grad()
def _evaluate(model, loss_fn, x, y, batch_size) -> tuple[float, np.ndarray]:
    """One batched pass; metrics come from the accumulated probabilities."""
    model.eval()
    logits = torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    loss = loss_fn(logits, y).item()
    return loss, torch.sigmoid(logits).float().cpu().numpy()


