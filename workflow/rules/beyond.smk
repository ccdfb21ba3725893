# Beyond the paper (config keys melep, robustness; both off in config.yaml, on in the demo):
# transferability of each pretrained model scored before fine-tuning, and every trained
# downstream model scored on perturbed copies of its test set. Only forward passes of saved
# models: seconds, not training runs.


# One job per downstream dataset: its shard is read once and every pretrained model fine-tuned
# on it is scored, so a job's start-up (importing torch outlasts a forward pass) is paid once,
# not per model. One JSON per downstream set, its scores per model id.
rule transferability:
    input:
        pretrained=transferability_checkpoints,
        shard=downstream_shards,
    output:
        "results/melep/{downstream}.json",
    params:
        models=transferability_models,
        code_version=CODE_VERSION["evaluate"],
    threads: 1
    resources:
        gpu=1,
    conda:
        "../../envs/study.yaml"
    log:
        "logs/transferability/{downstream}.log",
    benchmark:
        "benchmarks/transferability/{downstream}.tsv"
    script:
        "../scripts/transferability.py"


# The models the robustness study scores, kept: a fine-tuned or scratch model.pt is temporary
# (training.keep_checkpoints), and the robustness jobs must be able to re-run with other
# settings without training it again. A hard link where the file system allows (one copy on
# disk), else a copy; a local job, it takes milliseconds.
rule keep_model:
    input:
        "results/{job}/model.pt",
    output:
        "results/models/{job}/model.pt",
    wildcard_constraints:
        # exactly a fine-tuned or scratch job's folder: datasets and architectures of the
        # config, a numeric seed; no "..", no other folder of results/
        job=KEPT_JOB,
    localrule: True
    log:
        "logs/keep_model/{job}.log",
    # One call: Snakemake re-runs a run: block whose text changed, and this one's input is
    # temporary, so an edit here would train the kept models again; edit keep_model_file.
    run:
        keep_model_file(input[0], output[0], log[0])


# One job per downstream dataset: every perturbed test set is made once and given to each of
# its models, so all see the same noise (and a job's start-up is paid once, not per model).
rule robustness:
    input:
        models=robustness_checkpoints,
        shard=downstream_shards,
    output:
        "results/robustness/{downstream}.npz",
    params:
        models=robustness_models,
        levels=robustness_params()["levels"],
        seed=robustness_params()["seed"],
        code_version=CODE_VERSION["evaluate"],
    threads: 1
    resources:
        gpu=1,
    conda:
        "../../envs/study.yaml"
    log:
        "logs/robustness/{downstream}.log",
    benchmark:
        "benchmarks/robustness/{downstream}.tsv"
    script:
        "../scripts/robustness.py"
