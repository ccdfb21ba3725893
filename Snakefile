# ecg-transfer: "Transfer Learning in ECG Diagnosis: Is It Effective?" as a workflow.
# Rule graph: download -> extract -> make_shards -> pretrain -> finetune / train_scratch
#             -> aggregate -> plot_curves   (see README.md)
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        rules.aggregate.output,
        expand("results/figures/curves_{downstream}.png", downstream=DOWNSTREAM),
    default_target: True
