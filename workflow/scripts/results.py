"""The study's answer: tables with intervals, figures and claims.md from the saved predictions."""

from pathlib import Path

from ecg_transfer import results, runlog

runlog.to_file(snakemake.log[0])
# the outputs are results.output_paths(<folder>): claims.md sits in that folder
results.write_results(snakemake.params.jobs, Path(snakemake.output.claims).parent,
                      families=snakemake.params.families, arch_order=snakemake.params.arch_order,
                      dpi=snakemake.params.plots["dpi"], **snakemake.params.stats)
