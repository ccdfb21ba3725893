# Training: pretrain upstream, then fine-tune every pretrained model downstream and train the
# same architecture from scratch. Each rule's params carry exactly the config values it uses, so
# a config change re-runs only the jobs it affects. gpu=1 only counts GPUs for the scheduler
# (`--resources gpu=N`); on a machine without a GPU and without that flag it limits nothing.
# finetune and train_scratch are pretrain with other inputs, outputs and params.


rule pretrain:
    input:
        shard=upstream_shards,
    output:
        checkpoint="results/pretrain/{upstream}/{arch}/seed{seed}/model.pt",
        sidecar="results/pretrain/{upstream}/{arch}/seed{seed}/model.json",
        metrics="results/pretrain/{upstream}/{arch}/seed{seed}/metrics.csv",
        predictions="results/pretrain/{upstream}/{arch}/seed{seed}/predictions.npz",
    params:
        stage=stage_params("pretrain"),
        training=training_params(),
        # not an output: Snakemake deletes the outputs of a failed job, the resume state must stay
        resume="results/.resume/pretrain/{upstream}/{arch}/seed{seed}",
        init_from="scratch",
        # fine-tuning starts from the weights alone: Adam's state (twice the model) is not kept
        save_optimizer=False,
        # the paper's pretraining keeps the epoch of best unweighted mean per-class test F1
        paper_metric="test_macro_f1",
        # train: the upstream's train split; full: all its records (datasets.<name>)
        train_on=pretrain_split,
        code_version=CODE_VERSION["train"],
    # Every fine-tune waits for its pretrained model: start those first.
    priority: 10
    threads: 1
    resources:
        gpu=1,
    conda:
        "../../envs/study.yaml"
    log:
        "logs/pretrain/{upstream}/{arch}/seed{seed}.log",
    benchmark:
        "benchmarks/pretrain/{upstream}/{arch}/seed{seed}.tsv"
    script:
        "../scripts/train.py"


# A pretrained model given by file (config key pretrained_models) as an upstream: fetched by the
# verified download (a local path is linked), read without running code (weights_only), checked
# against what the config and its model.json say, and saved as the study's own checkpoint, which
# fine-tunes start from like a pretrained one. Its SHA-256 is the rerun trigger; where the file
# lies is not (the script reads the path from the config). Local: a URL needs the internet.
rule import_model:
    output:
        source="resources/models/{model}.pt",
        checkpoint="results/imported/{model}/model.pt",
        sidecar="results/imported/{model}/model.json",
    params:
        sha256=imported_sha256,
        metadata=imported_metadata,
        code_version=CODE_VERSION["import"],
    localrule: True
    conda:
        "../../envs/study.yaml"
    log:
        "logs/import_model/{model}.log",
    script:
        "../scripts/import_model.py"


use rule pretrain as finetune with:
    input:
        shard=downstream_shards,
        pretrained=pretrained_checkpoint,
    output:
        checkpoint=downstream_model(
            "results/finetune/{upstream}/{downstream}/{arch}/seed{seed}/model.pt"
        ),
        sidecar="results/finetune/{upstream}/{downstream}/{arch}/seed{seed}/model.json",
        metrics="results/finetune/{upstream}/{downstream}/{arch}/seed{seed}/metrics.csv",
        predictions="results/finetune/{upstream}/{downstream}/{arch}/seed{seed}/predictions.npz",
    params:
        stage=stage_params("finetune"),
        training=training_params(),
        resume="results/.resume/finetune/{upstream}/{downstream}/{arch}/seed{seed}",
        init_from="pretrained",
        save_optimizer=False,
        paper_metric="test_f1",
        train_on="train",
        code_version=CODE_VERSION["train"],
    priority: 0
    log:
        "logs/finetune/{upstream}/{downstream}/{arch}/seed{seed}.log",
    benchmark:
        "benchmarks/finetune/{upstream}/{downstream}/{arch}/seed{seed}.tsv"


use rule pretrain as train_scratch with:
    input:
        shard=downstream_shards,
    output:
        checkpoint=downstream_model(
            "results/scratch/{downstream}/{arch}/seed{seed}/model.pt"
        ),
        sidecar="results/scratch/{downstream}/{arch}/seed{seed}/model.json",
        metrics="results/scratch/{downstream}/{arch}/seed{seed}/metrics.csv",
        predictions="results/scratch/{downstream}/{arch}/seed{seed}/predictions.npz",
    params:
        stage=stage_params("scratch"),
        training=training_params(),
        resume="results/.resume/train_scratch/{downstream}/{arch}/seed{seed}",
        init_from="scratch",
        save_optimizer=False,
        paper_metric="test_f1",
        train_on="train",
        code_version=CODE_VERSION["train"],
    priority: 0
    log:
        "logs/train_scratch/{downstream}/{arch}/seed{seed}.log",
    benchmark:
        "benchmarks/train_scratch/{downstream}/{arch}/seed{seed}.tsv"


# The dataset-size axis (config key size_axis): the same jobs on nested subsets of a downstream
# set's train split, under results/sizes/; `{size}` is a record count or a fraction.
use rule finetune as finetune_size with:
    input:
        shard=downstream_shards,
        pretrained=pretrained_checkpoint,
    output:
        checkpoint=downstream_model(
            "results/sizes/finetune/{upstream}/{downstream}/{arch}/n{size}/seed{seed}/model.pt"
        ),
        sidecar="results/sizes/finetune/{upstream}/{downstream}/{arch}/n{size}/seed{seed}/model.json",
        metrics="results/sizes/finetune/{upstream}/{downstream}/{arch}/n{size}/seed{seed}/metrics.csv",
        predictions="results/sizes/finetune/{upstream}/{downstream}/{arch}/n{size}/seed{seed}/predictions.npz",
    params:
        stage=stage_params("finetune"),
        training=training_params(),
        resume="results/.resume/finetune_size/{upstream}/{downstream}/{arch}/n{size}/seed{seed}",
        init_from="pretrained",
        save_optimizer=False,
        paper_metric="test_f1",
        train_on="train",
        train_size=size_value,
        subset_seed=subset_seed(),
        code_version=CODE_VERSION["train"],
    log:
        "logs/finetune_size/{upstream}/{downstream}/{arch}/n{size}/seed{seed}.log",
    benchmark:
        "benchmarks/finetune_size/{upstream}/{downstream}/{arch}/n{size}/seed{seed}.tsv"


use rule train_scratch as train_scratch_size with:
    output:
        checkpoint=downstream_model(
            "results/sizes/scratch/{downstream}/{arch}/n{size}/seed{seed}/model.pt"
        ),
        sidecar="results/sizes/scratch/{downstream}/{arch}/n{size}/seed{seed}/model.json",
        metrics="results/sizes/scratch/{downstream}/{arch}/n{size}/seed{seed}/metrics.csv",
        predictions="results/sizes/scratch/{downstream}/{arch}/n{size}/seed{seed}/predictions.npz",
    params:
        stage=stage_params("scratch"),
        training=training_params(),
        resume="results/.resume/train_scratch_size/{downstream}/{arch}/n{size}/seed{seed}",
        init_from="scratch",
        save_optimizer=False,
        paper_metric="test_f1",
        train_on="train",
        train_size=size_value,
        subset_seed=subset_seed(),
        code_version=CODE_VERSION["train"],
    log:
        "logs/train_scratch_size/{downstream}/{arch}/n{size}/seed{seed}.log",
    benchmark:
        "benchmarks/train_scratch_size/{downstream}/{arch}/n{size}/seed{seed}.tsv"
