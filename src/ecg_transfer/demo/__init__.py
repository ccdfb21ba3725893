"""Miniature mirrors of the study's five datasets, in each dataset's original archive format.

Why mirrors and not a toy format: the demo run of the workflow must exercise the same download,
extract and reader code as the real study, so each archive has the real distribution's name
layout, file formats, header spellings and label files (PTB-XL's `scp_codes`, the Challenge
`#Dx:` SNOMED-CT codes, PTB's `Reason for admission:`, CODE's `gold_standard.csv`), and the
quirks readers must handle (records too short to use, a duplicated record, diagnoses outside
the study's classes, lead orders and unit spellings that differ). The signals are synthetic
(see `_synth`): class-dependent, learnable but not trivially, and free of any real patient data.

The archives are byte-reproducible: the same (dataset, n_records, seed, difficulty) gives the
same bytes on every run and machine with the pinned libraries, so the demo config can pin their
sha256. `difficulty` 1 (the default) is the realistic setting; smaller values make the classes
easier to tell apart, for training runs too short to learn the realistic task (see `_synth`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import _challenge, _pack, _ptb, _ptbxl, _ribeiro, _synth

DATASETS = ("ptbxl", "cpsc2018", "georgia", "ptb", "ribeiro")

# dataset -> (writer of the extracted tree, archive kind, name of the real archive)
_BUILDERS: dict[str, tuple[Callable[[Path, int, np.random.Generator, float], None], str, str]] = {
    "ptbxl": (
        _ptbxl.build,
        "zip",
        "ptb-xl-a-large-publicly-available-electrocardiography-dataset-1.0.3.zip",
    ),
    "cpsc2018": (_challenge.build_cpsc, "tar", "PhysioNetChallenge2020_Training_CPSC.tar"),
    "georgia": (_challenge.build_georgia, "tar", "PhysioNetChallenge2020_Training_E.tar"),
    "ptb": (_ptb.build, "zip", "ptb-diagnostic-ecg-database-1.0.0.zip"),
    "ribeiro": (_ribeiro.build, "zip", "data.zip"),
}
ARCHIVE_KINDS = {name: kind for name, (_, kind, _) in _BUILDERS.items()}
REAL_ARCHIVE_NAMES = {name: real for name, (_, _, real) in _BUILDERS.items()}


def write_archive(
    dataset: str,
    dest: str | os.PathLike[str],
    n_records: int,
    seed: int = 0,
    difficulty: float = 1.0,
) -> Path:
    """Write the demo mirror of `dataset` with `n_records` records as one archive at `dest`.

    `difficulty` in (0, 1]: 1 is the realistic mirror; below 1 patients, noise and findings
    are that much closer to a textbook ECG, so a short training run can learn the classes.
    The records, labels and layout follow the same rules at every difficulty.

    The archive kind (zip or plain tar) is the real distribution's, whatever `dest`'s suffix.
    The file appears atomically: it is written under a temporary name in dest's folder and
    renamed, so a killed run leaves no partial archive behind.
    """
    if dataset not in _BUILDERS:
        raise ValueError(
            f"dataset {dataset!r} has no demo mirror; expected one of {', '.join(DATASETS)}"
        )
    if isinstance(n_records, bool) or not isinstance(n_records, int | np.integer) or n_records < 1:
        raise ValueError(f"{dataset}: n_records must be a positive integer, got {n_records!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"{dataset}: seed must be a non-negative integer, got {seed!r}")
    try:
        difficulty = _synth.check_difficulty(difficulty)
    except ValueError as e:
        raise ValueError(f"{dataset}: {e}") from None
    build, kind, _ = _BUILDERS[dataset]
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(int(seed))
    with tempfile.TemporaryDirectory(prefix=f".{dataset}-demo-", dir=dest.parent) as tmp:
        root = Path(tmp)
        build(root, int(n_records), rng, difficulty)
        _pack.pack(root, dest, kind)
    return dest
