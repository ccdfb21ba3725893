"""Where the answer's files go, and the ids the workflow files models under.

What the workflow needs each time Snakemake starts (the results rule's outputs, the robustness
and MELEP model ids), kept apart from the statistics: importing those (scipy.stats, pandas,
matplotlib) took ~1.2 s of every Snakemake start, a SLURM job's included (bench/README.md,
issue 21). ``ecg_transfer.answer`` imports its heavy parts only when they are used.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ecg_transfer.metrics import SELECTIONS
from ecg_transfer.perturb import LEVELS


def results_output_paths(out_dir: str | os.PathLike, *, sizes: bool) -> dict[str, Path]:
    """Every file :func:`write_results` writes under ``out_dir``, keyed by a name a rule can use
    as a named output. The size table and figure exist only with a size axis (``sizes``)."""
    out = Path(out_dir)
    tables, figures = out / "tables", out / "figures"
    paths: dict[str, Path] = {}
    for s in SELECTIONS:
        for stem in ("transfer", "families") + (("sizes",) if sizes else ()):
            paths[f"{stem}_{s}_csv"] = tables / f"{stem}_{s}.csv"
            paths[f"{stem}_{s}_md"] = tables / f"{stem}_{s}.md"
        paths[f"gain_heatmap_{s}"] = figures / f"gain_heatmap_{s}.png"
        if sizes:
            paths[f"size_curve_{s}"] = figures / f"size_curve_{s}.png"
    paths["convergence_csv"] = tables / "convergence.csv"
    paths["convergence_md"] = tables / "convergence.md"
    paths["claims"] = out / "claims.md"
    paths["claims_json"] = out / "claims.json"
    return paths


def beyond_output_paths(out_dir: str | os.PathLike, *, melep: bool, robustness: bool,
                        kinds: Sequence[str] = ()) -> dict[str, Path]:
    """Every file :func:`write_beyond` writes under ``out_dir``, keyed by a name a rule can use
    as a named output: the MELEP files with ``melep``, the robustness files (one figure per
    perturbation kind of ``kinds``) with ``robustness``, and ``claims_beyond`` always."""
    out = Path(out_dir)
    tables, figures = out / "tables", out / "figures"
    paths: dict[str, Path] = {}
    if melep:
        paths |= {"melep_csv": tables / "melep.csv", "melep_md": tables / "melep.md",
                  "melep_correlations_csv": tables / "melep_correlations.csv",
                  "melep_ranking_csv": tables / "melep_ranking.csv",
                  "melep_scatter": figures / "melep_scatter.png"}
    if robustness:
        paths |= {"robustness_csv": tables / "robustness.csv",
                  "robustness_pairs_csv": tables / "robustness_pairs.csv",
                  "robustness_md": tables / "robustness.md"}
        for kind in check_kinds(kinds, "kinds"):
            paths[f"robustness_{kind}"] = figures / f"robustness_{kind}.png"
    paths["claims_beyond"] = out / "claims_beyond.md"
    return paths


def check_kinds(kinds: Sequence[str], where: str) -> list[str]:
    bad = [k for k in kinds if k not in LEVELS]
    if bad:
        raise ValueError(f"{where}: unknown perturbation kind(s) {bad}; expected some of "
                         f"{list(LEVELS)}")
    return list(dict.fromkeys(kinds))


def robustness_model_id(regime: str, upstream: str | None, arch: str, seed: int) -> str:
    """A fine-tuned or scratch model's id in its downstream set's robustness file (the workflow
    names the entries with it, :func:`_parse_model_id` reads it back)."""
    if regime == "finetune" and upstream:
        return f"finetune/{upstream}/{arch}/seed{seed}"
    if regime == "scratch" and not upstream:
        return f"scratch/{arch}/seed{seed}"
    raise ValueError(f"no robustness model id for regime {regime!r} with upstream {upstream!r}: "
                     "expected finetune with an upstream, or scratch without one")


def melep_model_id(upstream: str, arch: str, seed: int) -> str:
    """A pretrained model's id in its downstream set's MELEP file (the workflow names the
    entries with it, :func:`read_melep` looks them up with it)."""
    return f"{upstream}/{arch}/seed{seed}"
