"""The study's answer: tables with intervals, figures and claims.md from the saved predictions
(and, where enabled, MELEP and robustness)."""

from pathlib import Path

from ecg_transfer import answer, runlog

runlog.to_file(snakemake.log[0])
# the outputs are answer.output_paths(<folder>): claims.md sits in that folder
answer.write_answer(snakemake.params.jobs, Path(snakemake.output.claims).parent,
                    families=snakemake.params.families, arch_order=snakemake.params.arch_order,
                    dpi=snakemake.params.plots["dpi"], melep=snakemake.params.melep,
                    melep_jobs=snakemake.params.melep_jobs,
                    robustness=snakemake.params.robustness,
                    robustness_files=snakemake.params.robustness_files,
                    kinds=snakemake.params.kinds, **snakemake.params.stats)
