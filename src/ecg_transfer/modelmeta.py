"""A pretrained model given by file (config key ``pretrained_models``): its name, what it takes
as input, and whether a downstream set gives exactly that.

A model from elsewhere is an upstream of the study like a dataset the workflow pretrains on, so
its name becomes a wildcard value, a folder (``results/finetune/<name>/``) and a column value of
every table. Its input (leads in order, sampling rate, samples per lead) is fixed by its
weights: a model that takes 1000 samples at 100 Hz, fine-tuned on records of 500 samples, or on
leads in another order, would train without an error and learn from shifted or misread signals.
So the fit is checked before any training: when the workflow plans, wherever what the model
takes is known by then (the config's keys, or the ``model.json`` this workflow writes beside
every ``model.pt``), and again by each fine-tuning job against the shard it reads
(:func:`ecg_transfer.train.init_model`), which catches a model known only from its file.

No torch and no dataset readers here: the workflow plans with this module, and the training
stage's code hash includes it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecg_transfer.names import check_safe_name

__all__ = [
    "METADATA_KEYS",
    "ModelInput",
    "check_fits",
    "check_name",
    "downstream_input",
    "merge_metadata",
    "planned_metadata",
    "sidecar_of",
]

#: What must be known of a model to fine-tune it: its registered architecture, the classes of
#: its head (their number sizes the weights), and its input. The study's own ``model.pt`` and
#: ``model.json`` carry all of them; a plain ``state_dict`` needs them in the config.
METADATA_KEYS = ("arch", "classes", "leads", "fs", "n_samples")


@dataclass(frozen=True)
class ModelInput:
    """What a model takes, or what a downstream set's shards hold; None where not known (yet)."""

    leads: tuple[str, ...] | None
    fs: float | None
    n_samples: int | None

    @classmethod
    def of(cls, metadata: Mapping[str, Any]) -> ModelInput:
        """From a model's metadata or a checkpoint's config (``leads``, ``fs``, ``n_samples``)."""
        leads = metadata.get("leads")
        fs = metadata.get("fs")
        n = metadata.get("n_samples")
        return cls(None if leads is None else tuple(str(x) for x in leads),
                   None if fs is None else float(fs), None if n is None else int(n))

    def describe(self) -> str:
        parts = []
        if self.leads is not None:
            parts.append(f"{len(self.leads)} leads {list(self.leads)}")
        if self.n_samples is not None:
            parts.append(f"{self.n_samples} samples per lead")
        if self.fs is not None:
            parts.append(f"at {self.fs:g} Hz")
        return ", ".join(parts) or "an unknown input"


def check_name(name: object, datasets: Iterable[str]) -> str:
    """``name`` if it may name a pretrained model (a safe name, :mod:`ecg_transfer.names`);
    else ValueError naming the config key.

    ``datasets`` are the names it must not take: the config's datasets and the built-in ones.
    A model named like a dataset would share its folders (``results/finetune/<name>/``) and its
    column in every table with the model the workflow pretrains on that dataset.
    """
    where = f"config key 'pretrained_models.{name}'"
    check_safe_name(name, where, "model")
    taken = sorted(set(datasets))
    if name in taken:
        raise ValueError(f"{where}: {name!r} is the name of a dataset ({', '.join(taken)}); a "
                         "model given by file is an upstream beside the datasets the workflow "
                         "pretrains on, so give it a name of its own")
    return name


def sidecar_of(path: str | os.PathLike) -> Path:
    """The ``model.json`` this workflow writes beside a ``model.pt`` (same stem, ``.json``)."""
    return Path(path).with_suffix(".json")


def _read_sidecar(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"{path}: not a readable model.json sidecar ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a model.json sidecar is a JSON object, got "
                         f"{type(data).__name__}")
    return data


def _normalised(key: str, value: Any, where: str) -> Any:
    """A metadata value in one form, so that the config's and a file's can be compared."""
    if key in ("classes", "leads"):
        if (not isinstance(value, (list, tuple)) or not value
                or not all(isinstance(x, str) for x in value)):
            raise ValueError(f"{where}: {key} must be a non-empty list of names, got {value!r}")
        return [str(x) for x in value]
    if key == "fs":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                math.isfinite(value) and value > 0):
            raise ValueError(f"{where}: fs must be a positive number of Hz, got {value!r}")
        return float(value)
    if key == "n_samples":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{where}: n_samples must be a positive integer, got {value!r}")
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"{where}: {key} must be a name, got {value!r}")
    return value


def merge_metadata(given: Mapping[str, Any], found: Mapping[str, Any], *, given_where: str,
                   found_where: str) -> dict[str, Any]:
    """The metadata keys of both, which must agree where both have one (else ValueError naming
    both sources, the key and both values)."""
    merged: dict[str, Any] = {}
    for key in METADATA_KEYS:
        a = None if given.get(key) is None else _normalised(key, given[key], given_where)
        b = None if found.get(key) is None else _normalised(key, found[key], found_where)
        if a is not None and b is not None and a != b:
            raise ValueError(f"{given_where} gives {key} {a!r}, but {found_where} says {b!r}; "
                             f"leave {key} out of the config (the file says it) or give the "
                             "file it describes")
        value = a if a is not None else b
        if value is not None:
            merged[key] = value
    return merged


def planned_metadata(name: str, entry: Mapping[str, Any], archs: Iterable[str]) -> dict[str, Any]:
    """What is known of model ``name`` before any job runs: the config entry's keys and, for a
    local ``path`` with a ``model.json`` beside it, the sidecar's.

    The architecture must be known now (it decides which fine-tuning jobs exist) and be among
    ``archs`` (the config's ``architectures``: the fine-tuned model needs a scratch model of its
    architecture to be compared with). The other keys may wait for the file itself (the import
    job reads a checkpoint's own config); a plain ``state_dict`` without them is refused there.
    """
    where = f"config key 'pretrained_models.{name}'"
    found: dict[str, Any] = {}
    found_where = ""
    if entry.get("path"):
        sidecar = sidecar_of(entry["path"])
        if sidecar.is_file():
            found, found_where = _read_sidecar(sidecar), str(sidecar)
    metadata = merge_metadata(entry, found, given_where=where, found_where=found_where)
    archs = list(archs)
    if "arch" not in metadata:
        raise ValueError(f"{where}: no architecture; give 'arch' (one of {', '.join(archs)}), "
                         "or put the model.json this workflow wrote beside the model file")
    if metadata["arch"] not in archs:
        raise ValueError(f"{where}: architecture {metadata['arch']!r} is not in "
                         f"'architectures' ({', '.join(archs)}); add it there, so that the "
                         "fine-tuned model has a model trained from scratch to be compared with")
    return metadata


def downstream_input(preprocess: Mapping[str, Any], index_meta: Mapping[str, Any] | None = None
                     ) -> ModelInput:
    """What a downstream set's shards will hold, as far as the plan knows it: rate and length
    from the config's ``preprocess`` keys (samples = round(seconds x fs), as the shards do),
    the lead order from the dataset's index (``results/index/<name>.json``) where it has been
    built under the same protocol and rate (before that, the fine-tuning job checks it)."""
    fs, seconds = preprocess.get("fs"), preprocess.get("seconds")
    n = None if fs is None or seconds is None else round(float(seconds) * float(fs))
    leads = None
    settings = (index_meta or {}).get("settings") or {}
    if (settings.get("leads") and preprocess.get("protocol") is not None
            and settings.get("protocol") == preprocess.get("protocol")
            and fs is not None and settings.get("fs") == float(fs)):
        leads = tuple(str(x) for x in settings["leads"])
    return ModelInput(leads, None if fs is None else float(fs), n)


def check_fits(model: str, takes: ModelInput, downstream: str, gives: ModelInput, *,
               model_where: str = "", downstream_where: str = "") -> None:
    """ValueError naming the model and the downstream set unless the set's records are what the
    model takes: the same leads in the same order (names compared without case), the same
    sampling rate and the same samples per lead. What either side does not know is not
    compared (the job that meets it compares it)."""
    problems = []
    if takes.leads is not None and gives.leads is not None and (
            [x.lower() for x in takes.leads] != [x.lower() for x in gives.leads]):
        problems.append(f"leads: the model takes {list(takes.leads)}, {downstream}'s records "
                        f"hold {list(gives.leads)}")
    if takes.fs is not None and gives.fs is not None and takes.fs != gives.fs:
        problems.append(f"sampling rate: the model takes {takes.fs:g} Hz, {downstream}'s "
                        f"records are at {gives.fs:g} Hz (datasets.{downstream}.preprocess.fs)")
    if (takes.n_samples is not None and gives.n_samples is not None
            and takes.n_samples != gives.n_samples):
        problems.append(f"input length: the model takes {takes.n_samples} samples per lead, "
                        f"{downstream}'s records have {gives.n_samples} "
                        f"(datasets.{downstream}.preprocess.seconds x fs)")
    if problems:
        model_words = f"pretrained model '{model}'" + (f" ({model_where})" if model_where else "")
        set_words = f"downstream set '{downstream}'" + (
            f" ({downstream_where})" if downstream_where else "")
        raise ValueError(
            f"{model_words} does not fit {set_words}: " + "; ".join(problems) + ". Fine-tuning "
            "it there would read misplaced signals without an error; give the set the "
            f"model's preprocessing, or leave '{downstream}' out of 'downstream' or "
            f"'{model}' out of 'pretrained_models'")
