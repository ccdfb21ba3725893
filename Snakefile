# ecg-transfer: "Transfer Learning in ECG Diagnosis: Is It Effective?" as a workflow.
# Rule graph: download -> extract -> index_dataset -> make_shard -> pretrain
#             -> finetune / train_scratch -> aggregate, plot_curves   (see README.md)
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/scheduler.smk"
include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/beyond.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        rules.aggregate.output,
        expand(rules.plot_curves.output[0], downstream=DOWNSTREAM),
        rules.results.output,
    default_target: True
