"""Convergence curves: test F1 per epoch, fine-tune vs scratch, one figure per downstream set."""

from pathlib import Path

from ecg_transfer import aggregate, runlog

runlog.to_file(snakemake.log[0])
aggregate.plot_curves(snakemake.params.jobs, Path(snakemake.output[0]).parent,
                      dpi=snakemake.params.plots["dpi"])
