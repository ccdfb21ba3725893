"""The writers: read the inputs, compute every table once, write tables, figures and claims.

:func:`write_results` answers the paper's claims from the saved predictions;
:func:`write_beyond` adds MELEP (transferability before fine-tuning) and robustness to
perturbations. ``ecg_transfer.answer.write_answer`` runs both for the results rule. Every file
is written atomically, all of them even where there is nothing to show (the file says why), so
a rule can declare them all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ecg_transfer.aggregate import _atomic_write_bytes
from ecg_transfer.answer.claims import beyond_section, claims_json, claims_markdown, judge
from ecg_transfer.answer.figures import (
    check_dpi,
    plot_gain_heatmap,
    plot_melep_scatter,
    plot_robustness,
    plot_size_curve,
)
from ecg_transfer.answer.paths import beyond_output_paths, results_output_paths
from ecg_transfer.answer.robustness import (
    check_kinds,
    load_robustness,
    robustness_claims,
    robustness_markdown,
    robustness_tables,
)
from ecg_transfer.answer.rules import Plan
from ecg_transfer.answer.runs import Run, load_runs, upstreams_of
from ecg_transfer.answer.stats import _check_bootstrap_args
from ecg_transfer.answer.tables import (
    Tables,
    compute_tables,
    convergence_markdown,
    family_markdown,
    size_markdown,
    transfer_markdown,
    transfer_table,
    write_table,
)
from ecg_transfer.answer.transferability import (
    melep_claims,
    melep_correlations,
    melep_markdown,
    melep_ranking,
    melep_table,
    read_melep,
)
from ecg_transfer.answer.verdicts import Claim
from ecg_transfer.metrics import SELECTIONS
from ecg_transfer.perturb import LEVELS

__all__ = [
    "Results",
    "beyond_output_paths",
    "compute_results",
    "results_output_paths",
    "write_beyond",
    "write_claims",
    "write_results",
]


@dataclass(frozen=True)
class Results:
    """The paper's part of the answer, computed once: the runs read, every table (with the
    evidence behind it) and the claims judged on it."""

    runs: list[Run]
    tables: Tables
    claims: list[Claim]


def compute_results(jobs: Sequence[Mapping[str, object]], *, families: Mapping[str, str],
                    arch_order: Sequence[str] = (), n_boot: int, seed: int,
                    plan: Plan) -> Results:
    """Read every job, compute every table once and judge the paper's claims on it."""
    runs = load_runs(jobs)
    if not runs:
        raise ValueError("no scratch or fine-tuning job given; the results compare the two")
    tables = compute_tables(runs, families=families, n_boot=n_boot, seed=seed, plan=plan,
                            arch_order=arch_order)
    return Results(runs, tables, judge(tables, plan, n_boot=n_boot, seed=seed))


def write_claims(claims: Sequence[Claim], paths: Mapping[str, Path], plan: Plan, *,
                 n_boot: int, seed: int, tables: Tables | None = None) -> None:
    """claims.md and claims.json (``paths["claims"]``, ``paths["claims_json"]``), atomically."""
    boot = {"n_boot": n_boot, "seed": seed}
    _atomic_write_bytes(paths["claims"],
                        claims_markdown(claims, plan, tables=tables, **boot).encode())
    _atomic_write_bytes(paths["claims_json"], claims_json(claims, plan, **boot).encode())


def write_results(jobs: Sequence[Mapping[str, object]], out_dir: str | os.PathLike, *,
                  families: Mapping[str, str], arch_order: Sequence[str] = (), n_boot: int,
                  seed: int, plan: Plan, dpi: int, results: Results | None = None,
                  beyond_claims: Sequence[Claim] = ()) -> dict[str, Path]:
    """Read every job, compute every table once and write tables, figures, claims.md and
    claims.json.

    ``jobs`` are the training jobs (see :func:`load_runs`); ``families`` maps each architecture
    to "CNN" or "RNN"; ``n_boot`` and ``seed`` go to every bootstrap, ``plan`` (config
    ``results:``) to every verdict, so a rerun with the same inputs writes the same files.
    ``results``: :func:`compute_results` of the same arguments, if already computed;
    ``beyond_claims``: the claims of :func:`write_beyond`, which join the paper's in claims.md
    and claims.json. Returns
    :func:`results_output_paths` (sizes included when any job has a ``size``); every file is
    written atomically, all of them even where a selection has no rows (its Markdown and figure
    say why), so a rule can declare them all.
    """
    check_dpi(dpi)
    if results is None:
        results = compute_results(jobs, families=families, arch_order=arch_order,
                                  n_boot=n_boot, seed=seed, plan=plan)
    runs, tables = results.runs, results.tables
    paths = results_output_paths(out_dir, sizes=bool(tables.sizes))
    upstreams = upstreams_of(runs)
    for s in SELECTIONS:
        write_table(tables.transfer[s], transfer_markdown(tables.transfer[s], s, runs=runs),
                    paths[f"transfer_{s}_csv"], paths[f"transfer_{s}_md"])
        write_table(tables.families[s], family_markdown(tables.families[s], s),
                    paths[f"families_{s}_csv"], paths[f"families_{s}_md"])
        plot_gain_heatmap(tables.transfer[s], paths[f"gain_heatmap_{s}"], dpi=dpi, selection=s,
                          arch_order=arch_order, upstreams=upstreams)
        if tables.sizes:
            write_table(tables.sizes[s], size_markdown(tables.sizes[s], s, runs=runs),
                        paths[f"sizes_{s}_csv"], paths[f"sizes_{s}_md"])
            plot_size_curve(tables.sizes[s], paths[f"size_curve_{s}"], dpi=dpi, selection=s,
                            arch_order=arch_order, upstreams=upstreams)
    write_table(tables.convergence, convergence_markdown(tables.convergence),
                paths["convergence_csv"], paths["convergence_md"])
    write_claims([*results.claims, *beyond_claims], paths, plan, n_boot=n_boot, seed=seed,
                 tables=tables)
    return paths


def _csv(table: pd.DataFrame) -> bytes:
    return table.to_csv(index=False, float_format="%.6g").encode()


def write_beyond(melep_jobs: Sequence[Mapping[str, object]],
                 robustness_files: Mapping[str, str | os.PathLike],
                 transfer_jobs: Sequence[Mapping[str, object]], out_dir: str | os.PathLike, *,
                 n_boot: int, seed: int, plan: Plan, dpi: int,
                 arch_order: Sequence[str] = (), melep: bool | None = None,
                 robustness: bool | None = None, kinds: Sequence[str] | None = None,
                 transfer: Mapping[str, pd.DataFrame] | None = None
                 ) -> tuple[dict[str, Path], list[Claim]]:
    """Read the MELEP and robustness results, compute every table once, write them all.

    ``melep_jobs``: see :func:`read_melep`. ``robustness_files``: downstream set -> .npz (see
    :func:`load_robustness`). ``transfer_jobs``: the results stage's jobs (runs.load_runs),
    for Δ, the per-seed fine-tuned F1 and the test-set check. ``n_boot``, ``seed``, ``level``:
    the results' (then Δ equals its tables'). ``melep``/``robustness`` (default: whether any
    job/file is given) and ``kinds`` (default: the kinds in the files) choose the files, as in
    :func:`beyond_output_paths`; a kind in a file but not in ``kinds`` raises ValueError naming the
    file. Every listed file is written, atomically, even with nothing in it to show (it says
    so). Returns :func:`beyond_output_paths` and the claims (MELEP per selection, robustness),
    also written, as a section, to ``claims_beyond.md``.
    """
    check_dpi(dpi)
    level = plan.level
    _check_bootstrap_args(n_boot, seed, level)
    melep = bool(melep_jobs) if melep is None else melep
    robustness = bool(robustness_files) if robustness is None else robustness
    if melep_jobs and not melep:
        raise ValueError("melep is False but MELEP jobs were given")
    if robustness_files and not robustness:
        raise ValueError("robustness is False but robustness files were given")
    boot = {"n_boot": n_boot, "seed": seed, "level": level}
    runs = load_runs(transfer_jobs)
    sets = load_robustness(robustness_files, runs) if robustness else []
    found = [k for k in LEVELS if any(k in rs.kinds for rs in sets)]
    kinds = found if kinds is None else check_kinds(kinds, "kinds")
    for rs in sets:
        extra = [k for k in rs.kinds if k not in kinds]
        if extra:
            raise ValueError(f"{rs.path}: perturbation kind(s) {extra} are not among the kinds "
                             f"declared ({list(kinds)}); the file is from another "
                             "configuration (robustness.levels): rerun the robustness rule")
    paths = beyond_output_paths(out_dir, melep=melep, robustness=robustness, kinds=kinds)
    upstreams = sorted({str(r.upstream) for r in runs if r.upstream is not None}
                       | {str(j["upstream"]) for j in melep_jobs}
                       | {k[1] for rs in sets for k in rs.probs if k[0] == "finetune"})
    table = ranking = rob = None
    if melep:
        scores = read_melep(melep_jobs)
        if transfer is None:
            transfer = ({s: transfer_table(runs, s, arch_order=arch_order, **boot)
                         for s in SELECTIONS} if len(scores) else {})
        table = melep_table(scores, transfer, arch_order=arch_order)
        correlations = melep_correlations(table, arch_order=arch_order, **boot)
        ranking = melep_ranking(scores, runs, arch_order=arch_order)
        _atomic_write_bytes(paths["melep_csv"], _csv(table))
        _atomic_write_bytes(paths["melep_correlations_csv"], _csv(correlations))
        _atomic_write_bytes(paths["melep_ranking_csv"], _csv(ranking))
        _atomic_write_bytes(paths["melep_md"], melep_markdown(table, correlations, ranking,
                                                              level=level).encode())
        plot_melep_scatter(table, paths["melep_scatter"], dpi=dpi, correlations=correlations,
                           arch_order=arch_order, upstreams=upstreams)
    if robustness:
        rob = robustness_tables(sets, arch_order=arch_order, **boot)
        _atomic_write_bytes(paths["robustness_csv"], _csv(rob.models))
        _atomic_write_bytes(paths["robustness_pairs_csv"], _csv(rob.pairs))
        _atomic_write_bytes(paths["robustness_md"],
                            robustness_markdown(rob, level=level).encode())
        for kind in kinds:
            plot_robustness(rob.curves, kind, paths[f"robustness_{kind}"], dpi=dpi, level=level,
                            upstreams=upstreams)
    claims = [*melep_claims(table if melep else None, plan, list(SELECTIONS), ranking=ranking),
              *robustness_claims(rob, plan)]
    _atomic_write_bytes(paths["claims_beyond"], beyond_section(claims).encode())
    return paths, claims
