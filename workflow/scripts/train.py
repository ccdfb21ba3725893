"""One training job: pretrain, fine-tune or from scratch (params.init_from decides)."""

from ecg_transfer import runlog, train

runlog.to_file(snakemake.log[0])
stage = snakemake.params.stage
settings = train.TrainSettings(
    arch=snakemake.wildcards.arch,
    epochs=stage["epochs"],
    batch_size=stage["batch_size"],
    lr=stage["lr"],
    seed=int(snakemake.wildcards.seed),
    init_from=snakemake.params.init_from,
    threads=snakemake.threads,
    save_optimizer=snakemake.params.save_optimizer,
)
train.train(
    snakemake.input.shard,
    settings,
    metrics_path=snakemake.output.metrics,
    checkpoint_path=snakemake.output.checkpoint,
    pretrained=snakemake.input.get("pretrained"),
)
