"""One training job: pretrain, fine-tune or from scratch (params.init_from decides)."""

import logging
import os
import sys
from dataclasses import replace

from ecg_transfer import gpu, runlog, train

runlog.to_file(snakemake.log[0])
settings = train.settings_from_config(
    snakemake.params.stage,
    snakemake.params.training,
    arch=snakemake.wildcards.arch,
    seed=int(snakemake.wildcards.seed),
    init_from=snakemake.params.init_from,
    threads=snakemake.threads,
    save_optimizer=snakemake.params.save_optimizer,
    paper_metric=snakemake.params.paper_metric,
    train_on=snakemake.params.train_on,
    train_size=snakemake.params.get("train_size"),
    subset_seed=snakemake.params.get("subset_seed", 0),
    # not params: changing how fast a job runs must not re-run it
    speed=snakemake.config["training"]["speed"],
)
# --resources gpu=N only counts GPUs; claim_device picks which one (a lock-file slot per visible
# GPU locally, CUDA_VISIBLE_DEVICES under SLURM, the CPU when there is none).
with gpu.claim_device() as device:
    train.train(
        snakemake.input.shard,
        # how often the resume state is written: not params either, it changes no number
        replace(settings, device=device,
                resume_interval_s=float(snakemake.config["training"]["resume_interval_s"])),
        metrics_path=snakemake.output.metrics,
        checkpoint_path=snakemake.output.checkpoint,
        predictions_path=snakemake.output.predictions,
        pretrained=snakemake.input.get("pretrained"),
        resume_dir=snakemake.params.resume,
    )
# Every output is written, fsynced and renamed by now, and the GPU slot released. Finalising an
# interpreter that has imported torch takes 0.3 s of a job's ~1.5 s outside its epochs (0.7 s
# when torch._dynamo was imported too; bench/README.md, issue 21): end the process at once.
logging.shutdown()
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
