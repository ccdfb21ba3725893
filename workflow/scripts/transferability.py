"""MELEP of every pretrained model fine-tuned on one downstream dataset, before fine-tuning."""

from ecg_transfer import evaluate, gpu, runlog

runlog.to_file(snakemake.log[0])
with gpu.claim_device() as device:
    evaluate.transferability(snakemake.params.models, snakemake.input.shard,
                             snakemake.output[0], device=device)
