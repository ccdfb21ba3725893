"""Tiny versions of the study for the workflow tests, and Snakemake run on them.

Shared by test_workflow.py, test_rerun.py and test_slurm.py (pytest puts tests/ on sys.path);
:func:`default_plan`, the verdicts' plan as config.yaml ships it, by the tests of the answer.
A tiny study is the demo (config/demo.yaml merged over config.yaml) with fewer records, shorter
inputs, fewer architectures and datasets, and one or two epochs, so every rule runs for real in
a minute or two on a CPU.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from ecg_transfer.answer.rules import Plan

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

def default_plan(**changes: object) -> Plan:
    """The verdicts' plan from the config schema's defaults of ``results:``, with ``changes``."""
    results = yaml.safe_load(SCHEMA.read_text())["properties"]["results"]["properties"]
    return Plan.from_config({k: v["default"] for k, v in results.items()} | changes)


RECORDS = {"ptbxl": 60, "cpsc2018": 60, "georgia": 60, "ptb": 40, "ribeiro": 40}


def tiny_config(*, records: Mapping[str, int] = RECORDS,
                architectures: Sequence[str] = ("resnet1d18", "gru"),
                upstream: Sequence[str] = ("ptbxl", "cpsc2018"),
                downstream: Sequence[str] = ("georgia", "ptb", "ribeiro"),
                epochs: int = 2, train_sizes: Mapping[str, Sequence[float]] | None = None
                ) -> dict:
    """The demo study shrunk: 4 s at 50 Hz, ``records`` per mirror, ``epochs`` per regime.

    ``train_sizes`` is the size axis (the first architecture, fine-tuned from the first
    upstream); none by default. MELEP and robustness, on in the demo, are off: a test that
    wants them turns them on.
    """
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    # config/demo.yaml is merged over config.yaml; its dataset entries are complete.
    cfg.update(yaml.safe_load((REPO / "config" / "demo.yaml").read_text()))
    for ds in cfg["datasets"].values():
        ds["sha256"] = None  # other record counts than the pinned demo: checksums differ
        ds["preprocess"] = {**ds.get("preprocess", {}), "fs": 50, "seconds": 4}
    cfg["demo"] = {**cfg["demo"], "records": dict(records)}
    cfg["architectures"] = list(architectures)
    cfg["upstream"] = list(upstream)
    cfg["downstream"] = list(downstream)
    stage = {"epochs": epochs, "batch_size": 16, "lr": 0.001}
    cfg["training"] = {k: dict(stage) for k in ("pretrain", "finetune", "scratch")}
    cfg["melep"] = {"enabled": False}
    cfg["robustness"] = {"enabled": False}
    cfg["size_axis"] = {"train_sizes": {k: list(v) for k, v in (train_sizes or {}).items()},
                        "architectures": list(architectures[:1]),
                        "upstream": list(upstream[:1])}
    return cfg


def snakemake(workdir: Path, *args: str, check: bool = True, configfile: str = "config.yaml",
              cores: int = 2, env: Mapping[str, str] | None = None,
              timeout: float = 1200) -> subprocess.CompletedProcess:
    """Run the project's Snakefile in ``workdir``; on failure (with ``check``) raise with output.

    ``env`` entries are added to this process's environment (e.g. PYTHONPATH, SLURM_CONF).
    """
    out = subprocess.run(
        [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
         "--configfile", str(workdir / configfile), "--cores", str(cores), *args],
        capture_output=True, text=True, cwd=workdir, timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if check and out.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out


def plan(workdir: Path, *configfiles: Path, targets: Sequence[str] = ()
         ) -> subprocess.CompletedProcess:
    """A dry run (``snakemake -n --quiet rules``) of the project's Snakefile in ``workdir``, with
    ``configfiles`` merged in order (as Snakemake merges them over the workdir's config.yaml);
    not checked: tests read the refusals too."""
    return subprocess.run(
        [SNAKEMAKE, *targets, "-n", "--quiet", "rules", "--snakefile", str(REPO / "Snakefile"),
         "--directory", str(workdir), "--configfile", *map(str, configfiles)],
        capture_output=True, text=True, cwd=REPO)


def job_counts(out: subprocess.CompletedProcess) -> dict[str, int]:
    """Jobs per rule in the output of :func:`plan` (the ``total`` row included)."""
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", out.stdout, re.M)}


def scheduled_jobs(workdir: Path, configfile: str = "config.yaml",
                   env: Mapping[str, str] | None = None) -> dict[str, int]:
    """Jobs per rule that a dry run would run now (``all`` and the total left out)."""
    out = snakemake(workdir, "-n", "--quiet", "rules", configfile=configfile, env=env)
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", out.stdout, re.M)}
    counts.pop("total", None)
    counts.pop("all", None)
    return counts


def write_config(workdir: Path, cfg: dict, name: str = "config.yaml") -> str:
    (workdir / name).write_text(yaml.safe_dump(cfg))
    return name
