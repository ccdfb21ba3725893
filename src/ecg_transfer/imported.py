"""A pretrained model given by file as an upstream (rule import_model).

The file is fetched through the same verified download as the datasets (a local path is
linked, a URL downloaded and checked against its sha256), read without running code
(``torch.load(weights_only=True)``), rebuilt as its registered architecture with every weight
in place, checked against what the config and its ``model.json`` say, and saved as the study's
own checkpoint: fine-tuning then starts from it exactly as from a model the workflow pretrained
(:func:`ecg_transfer.models.load_pretrained`). Two kinds of file are understood: a ``model.pt``
this workflow wrote (its config says everything), and a plain ``state_dict`` of a registered
architecture, whose architecture, classes, leads, sampling rate and input length the config
gives (:data:`ecg_transfer.modelmeta.METADATA_KEYS`).
"""

from __future__ import annotations

import json
import logging
import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ecg_transfer import download, models
from ecg_transfer.fileio import atomic_path
from ecg_transfer.modelmeta import METADATA_KEYS, merge_metadata

__all__ = ["import_model", "source_url"]

log = logging.getLogger(__name__)


def source_url(source: str) -> str:
    """A config's ``url`` as it is, or its ``path`` (relative to the working directory) as a
    ``file:`` URL for :func:`ecg_transfer.download.fetch`."""
    if urllib.parse.urlparse(source).scheme in ("http", "https", "file"):
        return source
    return Path(source).resolve().as_uri()


def import_model(name: str, source: str, fetched: str | os.PathLike,
                 checkpoint: str | os.PathLike, *, sha256: str,
                 metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Model ``name`` from ``source`` (a path or URL) as the study's checkpoint.

    ``fetched`` receives the file, verified against ``sha256`` (a mismatch keeps nothing);
    ``checkpoint`` the model in the study's format, its config naming the model ``name`` as
    the dataset it comes from (what the tables call its upstream), with a sidecar
    ``model.json`` beside it. ``metadata`` is what the plan knew
    (:func:`ecg_transfer.modelmeta.planned_metadata`); the file's own config must agree with
    it, and together they must give every key of :data:`~ecg_transfer.modelmeta.METADATA_KEYS`.
    Returns the checkpoint's config.
    """
    url = source_url(source)
    download.fetch(url, fetched, sha256=sha256)
    state, own = models.read_weights(fetched)
    where = f"config key 'pretrained_models.{name}'"
    meta = merge_metadata(metadata, own or {}, given_where=f"{where} (with its model.json)",
                          found_where=f"{source} (its checkpoint config)")
    missing = [k for k in METADATA_KEYS if k not in meta]
    if missing:
        raise ValueError(f"{source}: a plain state_dict, which does not say its "
                         f"{', '.join(missing)}; give them under {where} (keys "
                         f"{', '.join(METADATA_KEYS)}), or use the model.pt this workflow "
                         "wrote with its model.json")
    model = models.build_with_weights(meta["arch"], state, n_classes=len(meta["classes"]),
                                      n_leads=len(meta["leads"]),
                                      n_samples=meta["n_samples"], source=source)
    own = own or {}
    config = {
        **meta, "n_leads": len(meta["leads"]), "dataset": name,
        "protocol": own.get("protocol"), "scaling": own.get("scaling"),
        "imported": {"name": name, "source": source, "sha256": sha256,
                     "format": "checkpoint" if own else "state_dict",
                     # where a model.pt of this workflow was pretrained
                     "trained_on": own.get("dataset")},
    }
    with atomic_path(checkpoint) as tmp:
        torch.save({"model": model.state_dict(), "config": config}, tmp)
    with atomic_path(Path(checkpoint).with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(config, indent=2, allow_nan=False) + "\n")
    log.info("%s: %s %s from %s (%s, sha256 %s); %d classes, %s, %g Hz, %d samples per lead",
             name, config["imported"]["format"], meta["arch"], source, url, sha256,
             len(meta["classes"]), meta["leads"], meta["fs"], meta["n_samples"])
    return config
