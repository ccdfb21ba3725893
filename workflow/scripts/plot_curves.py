"""Convergence curves: test F1 per epoch, fine-tune vs scratch, of one downstream dataset."""

from ecg_transfer import aggregate, runlog

runlog.to_file(snakemake.log[0])
aggregate.plot_curves(snakemake.params.jobs, snakemake.output[0],
                      dpi=snakemake.params.plots["dpi"], arch_order=snakemake.params.arch_order)
