"""The study's answer: tables with intervals, figures, claims.md and claims.json from the saved
predictions (and, where enabled, MELEP and robustness)."""

from pathlib import Path

from ecg_transfer import answer, runlog

runlog.to_file(snakemake.log[0])
stats = dict(snakemake.params.stats)
# the outputs are answer.output_paths(<folder>): claims.md sits in that folder
answer.write_answer(snakemake.params.jobs, Path(snakemake.output.claims).parent,
                    families=snakemake.params.families, arch_order=snakemake.params.arch_order,
                    dpi=snakemake.params.plots["dpi"], melep=snakemake.params.melep,
                    melep_jobs=snakemake.params.melep_jobs,
                    robustness=snakemake.params.robustness,
                    robustness_files=snakemake.params.robustness_files,
                    kinds=snakemake.params.kinds, n_boot=stats.pop("n_boot"),
                    seed=stats.pop("seed"), plan=answer.Plan.from_config(stats))
