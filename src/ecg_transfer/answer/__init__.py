"""The study's answer in one call: the results stage and, where the run has them, the studies
beyond the paper, whose claims join ``claims.md`` and ``claims.json``.

One workflow rule runs it, so a reader finds every claim, the paper's and the new ones, each
with its interval and verdict, in one file. The parts:

- :mod:`.runs`: reading and checking the jobs' predictions and logs; the scratch/fine-tuned
  pairings every table compares.
- :mod:`.bootstrap`: the one hierarchical bootstrap behind every interval (records per set,
  seeds per model, the paper selection's best epoch per replicate).
- :mod:`.evidence`: from the runs to each model's F1 with its replicates, per selection.
- :mod:`.rules`: every decision rule and its pre-declared parameters (:class:`.rules.Plan`).
- :mod:`.verdicts`: the paper's claims, each judged on the question it states.
- :mod:`.permutation`: the within-set permutation tests of the MELEP claim.
- :mod:`.tables`: the transfer, size, family and convergence tables and their Markdown.
- :mod:`.transferability`: MELEP against the realised transfer (beyond the paper).
- :mod:`.robustness`: fine-tuned vs scratch on perturbed test sets (beyond the paper).
- :mod:`.claims`: ``claims.md`` and ``claims.json``.
- :mod:`.figures`: every figure; :mod:`.formatting`: how numbers are printed.
- :mod:`.write`: the writers; :mod:`.stats`: AUROC and the robustness bootstrap.
- :mod:`.paths`: the files the answer writes and the ids the workflow files models under
  (what Snakemake needs at each start, without the statistics' imports).
- ``python -m ecg_transfer.answer rejudge``: the answer again from a finished results folder,
  with another margin or level (:func:`rejudge`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ecg_transfer.answer.paths import beyond_output_paths, results_output_paths
from ecg_transfer.answer.rules import Plan
from ecg_transfer.fileio import atomic_path

if TYPE_CHECKING:
    from ecg_transfer.answer.verdicts import Claim

# The statistics (ecg_transfer.answer.write and what it imports: scipy.stats, pandas,
# matplotlib) are imported where they are used, in write_answer: the workflow imports this
# package each time Snakemake starts, for output_paths and the model ids (.paths), and those
# imports were ~1.2 s of each start (bench/README.md, issue 21).

__all__ = ["INPUTS_VERSION", "Plan", "output_paths", "rejudge", "write_answer"]

#: Bumped when answer_inputs.json changes shape.
INPUTS_VERSION = 1
#: The job keys that are paths (stored relative to the results folder).
_PATH_KEYS = ("metrics", "predictions", "sidecar", "path")


def output_paths(out_dir: str | os.PathLike, *, sizes: bool, melep: bool, robustness: bool,
                 kinds: Sequence[str] = ()) -> dict[str, Path]:
    """Every file :func:`write_answer` writes, keyed by names a rule can use as outputs."""
    paths = results_output_paths(out_dir, sizes=sizes)
    if melep or robustness:
        paths |= beyond_output_paths(out_dir, melep=melep, robustness=robustness, kinds=kinds)
    paths["inputs"] = Path(out_dir) / "answer_inputs.json"
    return paths


def write_answer(jobs: Sequence[Mapping[str, object]], out_dir: str | os.PathLike, *,
                 families: Mapping[str, str], arch_order: Sequence[str] = (), n_boot: int,
                 seed: int, plan: Plan, dpi: int,
                 melep: bool = False, melep_jobs: Sequence[Mapping[str, object]] = (),
                 robustness: bool = False,
                 robustness_files: Mapping[str, str | os.PathLike] | None = None,
                 kinds: Sequence[str] = ()) -> dict[str, Path]:
    """Write the results (:func:`.write.write_results`) and, with ``melep`` or
    ``robustness`` (config keys of the same names), the studies beyond the paper
    (:func:`.write.write_beyond`, on the same jobs and the same transfer tables, so its Δ are
    the results' own), ``claims.md``/``claims.json`` with every claim written once, and
    ``answer_inputs.json``: what was read and how, from which :func:`rejudge` can redo it.
    ``plan`` holds every parameter a verdict depends on (config ``results:``). Returns
    :func:`output_paths`.
    """
    from ecg_transfer.answer.write import compute_results, write_beyond, write_results

    results = compute_results(jobs, families=families, arch_order=arch_order, n_boot=n_boot,
                              seed=seed, plan=plan)
    beyond: dict[str, Path] = {}
    claims: list[Claim] = []
    if melep or robustness:
        beyond, claims = write_beyond(
            melep_jobs, robustness_files or {}, jobs, out_dir, n_boot=n_boot, seed=seed,
            plan=plan, dpi=dpi, arch_order=arch_order, melep=melep, robustness=robustness,
            kinds=kinds, transfer=results.tables.transfer)
    paths = write_results(jobs, out_dir, families=families, arch_order=arch_order,
                          n_boot=n_boot, seed=seed, plan=plan, dpi=dpi, results=results,
                          beyond_claims=claims) | beyond
    paths["inputs"] = Path(out_dir) / "answer_inputs.json"
    manifest = {
        "version": INPUTS_VERSION,
        "jobs": [_relative(j, out_dir) for j in jobs],
        "melep_jobs": [_relative(j, out_dir) for j in melep_jobs],
        "robustness_files": {d: _rel(p, out_dir) for d, p in (robustness_files or {}).items()},
        "families": dict(families), "arch_order": list(arch_order), "melep": melep,
        "robustness": robustness, "kinds": list(kinds), "dpi": dpi, "n_boot": n_boot,
        "seed": seed, "plan": plan.as_dict(),
    }
    with atomic_path(paths["inputs"]) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    return paths


def _rel(path: object, out_dir: str | os.PathLike) -> str:
    return os.path.relpath(os.path.abspath(str(path)), os.path.abspath(out_dir))


def _relative(job: Mapping[str, object], out_dir: str | os.PathLike) -> dict[str, object]:
    return {k: (_rel(v, out_dir) if k in _PATH_KEYS and v is not None else v)
            for k, v in job.items()}


def _absolute(job: Mapping[str, object], results_dir: Path) -> dict[str, object]:
    return {k: (str(results_dir / str(v)) if k in _PATH_KEYS and v is not None else v)
            for k, v in job.items()}


def rejudge(results_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
            changes: Mapping[str, object] | None = None, n_boot: int | None = None,
            seed: int | None = None) -> dict[str, Path]:
    """The whole answer again, from a finished results folder alone (no Snakemake): the
    inputs ``answer_inputs.json`` lists, with ``changes`` to the plan (e.g. ``{"margin_f1":
    0.03}``, ``{"level": 0.9}``) and optionally another bootstrap size or seed, written to
    ``out_dir`` (which must not be ``results_dir``: the workflow's own outputs stay as the
    configuration made them). Returns :func:`output_paths` of ``out_dir``.
    """
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    manifest_path = results_dir / "answer_inputs.json"
    if results_dir.resolve() == out_dir.resolve():
        raise ValueError(f"{out_dir}: rejudge writes to another folder than the results it "
                         "reads (the workflow's outputs stay as the configuration made them)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{manifest_path}: no answer_inputs.json; rejudge reads a results "
                         "folder the results rule wrote (rerun it to write one)") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{manifest_path}: not JSON ({err})") from None
    if manifest.get("version") != INPUTS_VERSION:
        raise ValueError(f"{manifest_path}: version {manifest.get('version')!r}, this code "
                         f"reads version {INPUTS_VERSION}; rerun the results rule")
    unknown = sorted(set(changes or {}) - set(manifest["plan"]))
    if unknown:
        raise ValueError(f"unknown plan key(s) {unknown}; the plan's keys are "
                         f"{sorted(manifest['plan'])}")
    plan = Plan(**(manifest["plan"] | dict(changes or {})))
    out_dir.mkdir(parents=True, exist_ok=True)
    return write_answer(
        [_absolute(j, results_dir) for j in manifest["jobs"]], out_dir,
        families=manifest["families"], arch_order=manifest["arch_order"],
        n_boot=manifest["n_boot"] if n_boot is None else n_boot,
        seed=manifest["seed"] if seed is None else seed, plan=plan, dpi=manifest["dpi"],
        melep=manifest["melep"],
        melep_jobs=[_absolute(j, results_dir) for j in manifest["melep_jobs"]],
        robustness=manifest["robustness"],
        robustness_files={d: str(results_dir / p)
                          for d, p in manifest["robustness_files"].items()},
        kinds=manifest["kinds"])
