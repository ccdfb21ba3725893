"""Read one extracted dataset with its protocol, split it, and write its HDF5 shard."""

from ecg_transfer import runlog, shards

runlog.to_file(snakemake.log[0])
shards.make_shard(
    snakemake.wildcards.dataset,
    snakemake.input[0],
    snakemake.output[0],
    preprocess=snakemake.params.preprocess,
    split=snakemake.params.split,
)
