"""Read and preprocess the records of one part of a dataset's index; write that shard part."""

from ecg_transfer import prepare, runlog

runlog.to_file(snakemake.log[0])
prepare.make_part(
    snakemake.input.index,
    snakemake.input.meta,
    snakemake.input.root,
    int(snakemake.wildcards.part),
    snakemake.output.shard,
    snakemake.output.quarantine,
    on_bad_record=snakemake.params.on_bad_record,
    scaling=snakemake.params.scaling,
)
