"""Every trained model of one downstream dataset on perturbed copies of its test set."""

from ecg_transfer import evaluate, gpu, runlog

runlog.to_file(snakemake.log[0])
with gpu.claim_device() as device:
    evaluate.robustness(snakemake.params.models, snakemake.input.shard, snakemake.output[0],
                        levels=snakemake.params.levels, seed=snakemake.params.seed,
                        device=device)
