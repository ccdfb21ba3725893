"""The study's answer in one call: the results stage and, where the run has them, the studies
beyond the paper, whose claims join ``claims.md``.

One workflow rule runs both, so a reader finds every claim, the paper's and the new ones, each
with its interval and verdict, in one file. The parts:

- :mod:`.runs`: reading and checking the jobs' predictions and logs; the scratch/fine-tuned
  pairings every table compares.
- :mod:`.stats`: paired bootstrap intervals of Δ, macro AUROC, convergence, crossover.
- :mod:`.tables`: the transfer, size, family and convergence tables and their Markdown.
- :mod:`.transferability`: MELEP against the realised transfer (beyond the paper).
- :mod:`.robustness`: fine-tuned vs scratch on perturbed test sets (beyond the paper).
- :mod:`.claims`: every claim's decision rule and verdict, and ``claims.md``.
- :mod:`.figures`: every figure; :mod:`.formatting`: how numbers are printed.
- :mod:`.write`: the writers of the paper's results and of the studies beyond it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ecg_transfer.answer.write import (
    beyond_output_paths,
    results_output_paths,
    write_beyond,
    write_results,
)
from ecg_transfer.fileio import atomic_path

__all__ = ["output_paths", "write_answer"]


def output_paths(out_dir: str | os.PathLike, *, sizes: bool, melep: bool, robustness: bool,
                 kinds: Sequence[str] = ()) -> dict[str, Path]:
    """Every file :func:`write_answer` writes, keyed by names a rule can use as outputs."""
    paths = results_output_paths(out_dir, sizes=sizes)
    if melep or robustness:
        paths |= beyond_output_paths(out_dir, melep=melep, robustness=robustness, kinds=kinds)
    return paths


def write_answer(jobs: Sequence[Mapping[str, object]], out_dir: str | os.PathLike, *,
                 families: Mapping[str, str], arch_order: Sequence[str] = (), n_boot: int,
                 seed: int, level: float, dpi: int,
                 melep: bool = False, melep_jobs: Sequence[Mapping[str, object]] = (),
                 robustness: bool = False,
                 robustness_files: Mapping[str, str | os.PathLike] | None = None,
                 kinds: Sequence[str] = ()) -> dict[str, Path]:
    """Write the results (:func:`.write.write_results`) and, with ``melep`` or
    ``robustness`` (config keys of the same names), the studies beyond the paper
    (:func:`.write.write_beyond`, on the same jobs and with the same bootstrap, so its Δ are
    the results' own), then append their claims to ``claims.md``. Returns
    :func:`output_paths`."""
    paths = write_results(jobs, out_dir, families=families, arch_order=arch_order,
                          n_boot=n_boot, seed=seed, level=level, dpi=dpi)
    if not (melep or robustness):
        return paths
    paths |= write_beyond(melep_jobs, robustness_files or {}, jobs, out_dir,
                          n_boot=n_boot, seed=seed, level=level, dpi=dpi,
                          arch_order=arch_order, melep=melep, robustness=robustness,
                          kinds=kinds)
    claims = paths["claims"].read_text() + "\n" + paths["claims_beyond"].read_text()
    with atomic_path(paths["claims"]) as tmp:
        tmp.write_text(claims)
    return paths
