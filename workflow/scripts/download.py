"""Fetch one dataset archive, verified against the config's checksums or the checksum lock file."""

import logging

from ecg_transfer import download, runlog

runlog.to_file(snakemake.log[0])
log = logging.getLogger("download")

download.fetch(
    snakemake.params.url,
    snakemake.output[0],
    md5=snakemake.params.md5,
    sha256=snakemake.params.sha256,
    progress=download.ProgressLog(snakemake.params.url, log),
    lock=snakemake.params.checksum_lock,
    dataset=snakemake.wildcards.dataset,
)
log.info("%s saved as %s", snakemake.params.url, snakemake.output[0])
