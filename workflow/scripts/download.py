"""Fetch one dataset archive, verified against the config's checksums."""

import logging

from ecg_transfer import download, runlog

runlog.to_file(snakemake.log[0])
log = logging.getLogger("download")


def progress(done: int, total: int | None) -> None:
    of = f" of {total / 1e6:.1f}" if total else ""
    log.info("%s: %.1f%s MB", snakemake.params.url, done / 1e6, of)


download.fetch(
    snakemake.params.url,
    snakemake.output[0],
    md5=snakemake.params.md5,
    sha256=snakemake.params.sha256,
    progress=progress,
)
log.info("%s verified and saved as %s", snakemake.params.url, snakemake.output[0])
