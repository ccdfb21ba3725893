"""Unpack a downloaded archive (zip or tar), refusing members that would escape the folder."""

from ecg_transfer import download, runlog

runlog.to_file(snakemake.log[0])
download.extract(snakemake.input[0], snakemake.output[0])
