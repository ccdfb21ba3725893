"""One pretrained model given by file (config key pretrained_models) as the study's checkpoint."""

from ecg_transfer import imported, runlog

runlog.to_file(snakemake.log[0])
entry = snakemake.config["pretrained_models"][snakemake.wildcards.model]
imported.import_model(
    snakemake.wildcards.model,
    # not params: moving the file re-runs nothing, changing it does (params.sha256)
    entry.get("url") or entry["path"],
    snakemake.output.source,
    snakemake.output.checkpoint,
    sha256=snakemake.params.sha256,
    metadata=snakemake.params.metadata,
)
