"""The study's answer: tables with intervals, figures and claims.md from the saved predictions."""

from ecg_transfer import results, runlog

runlog.to_file(snakemake.log[0])
results.write_results(snakemake.params.jobs, snakemake.params.out_dir,
                      families=snakemake.params.families, arch_order=snakemake.params.arch_order,
                      dpi=snakemake.params.plots["dpi"], **snakemake.params.stats)
