"""F1 tables (fine-tune vs scratch, with the difference) from every job's metrics.csv."""

from ecg_transfer import aggregate, runlog

runlog.to_file(snakemake.log[0])
table = aggregate.collect(snakemake.params.jobs)
aggregate.write_tables(table, snakemake.output.csv, snakemake.output.md,
                       arch_order=snakemake.params.arch_order)
