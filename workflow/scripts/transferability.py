"""MELEP of one pretrained model for one downstream dataset, before any fine-tuning."""

from ecg_transfer import evaluate, gpu, runlog

runlog.to_file(snakemake.log[0])
with gpu.claim_device() as device:
    evaluate.transferability(snakemake.input.pretrained, snakemake.input.shard,
                             snakemake.output[0], device=device)
