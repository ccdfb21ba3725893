"""Trained models run on inputs other than their own training epochs' test split.

Two questions beyond the paper need a forward pass of a saved model, and nothing else:

* **Transferability before fine-tuning** (:func:`transferability`): each pretrained model's
  sigmoid head on the downstream dataset's *training* records, scored with MELEP
  (:mod:`ecg_transfer.melep`) and its simpler reference, so that a user can rank upstream
  datasets before paying for a fine-tuning run. All models of one downstream set are scored in
  one call: a forward pass takes less than starting a process that imports torch.
* **Robustness** (:func:`robustness`): a fine-tuned or scratch model's test-set probabilities
  under every perturbation of :mod:`ecg_transfer.perturb` at every level. The perturbations are
  seeded and applied to the whole test set in one call, so every model sees the same noise.

The models are the saved epochs (``model.pt``, the config's ``training.selection``). Results
are small files (JSON, float16 probabilities) that the results stage reads.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from ecg_transfer import melep, models, perturb
from ecg_transfer.fileio import atomic_path
from ecg_transfer.shards import Shard, read_shard
from ecg_transfer.splits import TEST, TRAIN

__all__ = ["predict", "read_robustness", "robustness", "transferability"]

log = logging.getLogger(__name__)

ShardPaths = str | os.PathLike | Sequence[str | os.PathLike]


def _device(requested: str | None) -> torch.device:
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def predict(model: torch.nn.Module, signals: np.ndarray, *, device: str | None = None,
            batch_size: int = 256) -> np.ndarray:
    """Sigmoid probabilities (float32, records x outputs) of ``model`` on ``signals``."""
    if len(signals) == 0:
        raise ValueError("predict: no records to score")
    dev = _device(device)
    model.to(dev).eval()
    out = [torch.sigmoid(model(torch.from_numpy(signals[i : i + batch_size]).to(dev))).cpu()
           for i in range(0, len(signals), batch_size)]
    return torch.cat(out).numpy()


def _load(checkpoint: str | os.PathLike, shard_paths: ShardPaths, shard: Shard | None = None
          ) -> tuple[torch.nn.Module, Shard]:
    """The saved model and the shard it is to run on, checked to fit each other."""
    model = models.load_pretrained(checkpoint)
    shard = read_shard(shard_paths) if shard is None else shard
    cfg = model.checkpoint_config
    expected = (cfg["n_leads"], cfg["n_samples"])
    if shard.signals.shape[1:] != expected or float(cfg["fs"]) != float(shard.fs):
        raise ValueError(
            f"{checkpoint}: the model takes (leads, samples) {expected} at {cfg['fs']} Hz, "
            f"the shard of {shard.dataset} holds {shard.signals.shape[1:]} at {shard.fs} Hz; "
            "give both datasets the same preprocess.fs and preprocess.seconds")
    return model, shard


def _transferability_of(checkpoint: str | os.PathLike, shard_paths: ShardPaths, shard: Shard,
                        *, device: str | None, batch_size: int) -> dict:
    """One pretrained model's MELEP, argmax reference and what was scored."""
    model, _ = _load(checkpoint, shard_paths, shard)
    train = shard.split == TRAIN
    theta = predict(model, shard.signals[train], device=device, batch_size=batch_size)
    y = shard.labels[train]
    scores = {"melep": melep.melep(theta, y), "leep_argmax": melep.leep_argmax(theta, y)}
    cfg = model.checkpoint_config
    result = {
        "source": {"checkpoint": str(checkpoint), "dataset": cfg.get("dataset"),
                   "arch": cfg.get("arch"), "classes": list(cfg["classes"])},
        "target": {"dataset": shard.dataset, "classes": list(shard.classes),
                   "records": int(train.sum())},
        **{name: {"score": float(r.score), "per_label": [float(v) for v in r.per_label],
                  "weights": [float(v) for v in r.weights]} for name, r in scores.items()},
        "lower_is_better": True,
    }
    log.info("%s -> %s (%s): MELEP %.4f, argmax reference %.4f on %d training records",
             cfg.get("dataset"), shard.dataset, cfg.get("arch"), result["melep"]["score"],
             result["leep_argmax"]["score"], int(train.sum()))
    return result


def transferability(checkpoints: Mapping[str, str | os.PathLike], shard_paths: ShardPaths,
                    out_json: str | os.PathLike, *, device: str | None = None,
                    batch_size: int = 256) -> dict:
    """MELEP (and the argmax reference) of pretrained models for one downstream dataset.

    ``checkpoints`` maps a model id (e.g. ``ptbxl/resnet1d18/seed0``) to its pretrained
    ``model.pt``. Each model gets one forward pass of the downstream *training* records through
    its own head, as the MELEP authors score ``train_data``; the test split plays no part. The
    shard is read once for all of them. Writes ``{"models": {id: result}}`` as JSON, each result
    with both scores, the per-label parts and what was scored; returns it.
    """
    if not checkpoints:
        raise ValueError("transferability: no models given")
    shard = read_shard(shard_paths)
    results = {"models": {
        model_id: _transferability_of(checkpoint, shard_paths, shard, device=device,
                                      batch_size=batch_size)
        for model_id, checkpoint in checkpoints.items()}}
    with atomic_path(out_json) as tmp:
        tmp.write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
    return results


def robustness(checkpoints: Mapping[str, str | os.PathLike], shard_paths: ShardPaths,
               out_npz: str | os.PathLike, *, levels: Mapping[str, Sequence[float]],
               seed: int, device: str | None = None, batch_size: int = 256) -> list[str]:
    """Test-set probabilities of trained models under each perturbation at each level.

    ``checkpoints`` maps a model id (e.g. ``finetune/ptbxl/resnet1d18/seed0``) to its
    ``model.pt``; all are scored on the test split of one shard. ``levels`` maps a kind of
    :data:`perturb.KINDS` to its levels (SNR in dB; leads for ``lead_dropout``); empty: every
    kind at its :data:`perturb.LEVELS`. Each perturbed test set is made once, with ``seed``,
    and given to every model, so they see the same noise. Writes ``record_ids``, ``y_true``,
    ``classes``, ``models`` (the ids), and per model ``<id>|clean`` and
    ``<id>|<kind>@<level>`` (float16); returns the condition names (``clean`` first).
    """
    if not checkpoints:
        raise ValueError("robustness: no models given")
    shard = read_shard(shard_paths)
    test = shard.split == TEST
    x = shard.signals[test]
    conditions: dict[str, np.ndarray] = {"clean": x}
    for kind, values in (levels or perturb.LEVELS).items():
        if kind not in perturb.KINDS or kind == "none":
            raise ValueError(f"robustness.levels: unknown perturbation {kind!r}; expected one "
                             f"of {[k for k in perturb.KINDS if k != 'none']}")
        for level in values:
            conditions[f"{kind}@{level:g}"] = perturb.perturb(x, kind, level, shard.fs, seed)
    arrays: dict[str, np.ndarray] = {
        "record_ids": np.array([r for r, t in zip(shard.record_ids, test, strict=True) if t],
                               dtype=str),
        "y_true": shard.labels[test].astype(np.uint8),
        "classes": np.array(shard.classes, dtype=str),
        "models": np.array(list(checkpoints), dtype=str),
    }
    for model_id, checkpoint in checkpoints.items():
        model, _ = _load(checkpoint, shard_paths, shard)
        for name, signals in conditions.items():
            probs = predict(model, signals, device=device, batch_size=batch_size)
            arrays[f"{model_id}|{name}"] = probs.astype(np.float16)
        log.info("%s: %d conditions x %d test records scored", model_id, len(conditions),
                 len(x))
    with atomic_path(out_npz) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    return list(conditions)


def read_robustness(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays :func:`robustness` wrote."""
    with np.load(Path(path), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}
