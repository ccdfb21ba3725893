"""Index one extracted dataset (records, labels, split, parts) for its shard jobs."""

from ecg_transfer import prepare, runlog

runlog.to_file(snakemake.log[0])
prepare.write_index(
    snakemake.wildcards.dataset,
    snakemake.input.root,
    snakemake.output.csv,
    snakemake.output.meta,
    preprocess=snakemake.params.preprocess,
    split=snakemake.params.split,
    parts=snakemake.params.parts,
    on_bad_record=snakemake.params.on_bad_record,
    records=snakemake.params.records,
)
