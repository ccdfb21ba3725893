"""Generate one dataset's miniature mirror, in the dataset's original format."""

from ecg_transfer import demo, runlog

runlog.to_file(snakemake.log[0])
demo.write_archive(
    snakemake.wildcards.dataset,
    snakemake.output[0],
    n_records=snakemake.params.n_records,
    seed=snakemake.params.demo["seed"],
    difficulty=snakemake.params.demo["difficulty"],
)
