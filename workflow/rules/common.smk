# Config -> job lists, wildcard constraints and input functions. All of the workflow's Python
# lives here; the rules only name these functions.
import json

from snakemake.utils import validate

import ecg_transfer
import ecg_transfer.download
import ecg_transfer.shards
from ecg_transfer.codehash import code_hash


validate(config, schema="../schemas/config.schema.yaml")

DATASETS = list(config["datasets"])
ARCHS = list(config["architectures"])
UPSTREAM = list(config["upstream"])
DOWNSTREAM = list(config["downstream"])
SEEDS = [int(s) for s in config["seeds"]]
# Package code is no rerun trigger by itself: each rule carries in params the hash of the source
# its script runs (the modules named here and every package module they import, see
# ecg_transfer/codehash.py), so an edit re-runs exactly the stages that execute it.
CODE_VERSION = {
    "demo": code_hash("ecg_transfer.runlog", "ecg_transfer.demo"),
    "data": code_hash("ecg_transfer.runlog", "ecg_transfer.shards"),
    "train": code_hash("ecg_transfer.runlog", "ecg_transfer.train"),
    "report": code_hash("ecg_transfer.runlog", "ecg_transfer.aggregate"),
}
DEMO_MIRROR = "resources/demo-mirror"
DEMO_FORMATS = {"ptbxl": "zip", "cpsc2018": "tar", "georgia": "tar", "ptb": "zip", "ribeiro": "zip"}

for _key in ("upstream", "downstream"):
    for _name in config[_key]:
        if _name not in config["datasets"]:
            raise ValueError(
                f"config key '{_key}' names dataset '{_name}', which has no entry under "
                f"'datasets' (defined: {', '.join(DATASETS)})"
            )

FINETUNE_PAIRS = [(u, d) for u in UPSTREAM for d in DOWNSTREAM if u != d]


# With a cluster executor (workflow/profiles/slurm) these run on the submitting node: compute
# nodes often have no internet, and the reports take seconds, less than a queue slot.
localrules:
    make_demo_archive,
    download,
    extract,
    aggregate,
    plot_curves,


def _alternatives(names):
    return "|".join(sorted(set(names))) or "(?!)"


wildcard_constraints:
    dataset=_alternatives(DATASETS),
    upstream=_alternatives(UPSTREAM),
    downstream=_alternatives(DOWNSTREAM),
    arch=_alternatives(ARCHS),
    seed=r"\d+",
    fmt="zip|tar",
    part=r"\d+",


def dataset_cfg(wildcards):
    return config["datasets"][wildcards.dataset]


def dataset_url(wildcards):
    return dataset_cfg(wildcards)["url"]


def dataset_md5(wildcards):
    return dataset_cfg(wildcards).get("md5")


def dataset_sha256(wildcards):
    return dataset_cfg(wildcards).get("sha256")


def download_input(wildcards):
    """A file: URL is a local file, so it is an input: Snakemake then builds (demo mirror) or
    tracks it like any other file."""
    path = ecg_transfer.download.local_path(dataset_cfg(wildcards)["url"])
    return [] if path is None else str(path)


def demo_records(wildcards):
    records = config.get("demo", {}).get("records", {})
    if wildcards.dataset not in records:
        raise ValueError(
            f"resources/demo-mirror/{wildcards.dataset}.{wildcards.fmt} is needed, but config "
            f"key 'demo.records.{wildcards.dataset}' is not set"
        )
    return records[wildcards.dataset]


def preprocess_params(wildcards):
    return dict(dataset_cfg(wildcards).get("preprocess", {}))


def index_preprocess_params(wildcards):
    return {k: v for k, v in preprocess_params(wildcards).items() if k != "scaling"}


def scaling_param(wildcards):
    """None: the protocol's default scaling for the dataset (recorded in the index)."""
    return preprocess_params(wildcards).get("scaling")


def split_params(wildcards):
    return dict(dataset_cfg(wildcards).get("split", {}))


def dataset_root(wildcards):
    """Where the extracted dataset is: `local_dir` (an existing copy, e.g. on shared storage;
    no download) or the extract rule's folder."""
    local = dataset_cfg(wildcards).get("local_dir")
    return local if local else f"resources/raw/{wildcards.dataset}"


def shard_size(wildcards):
    return int(dataset_cfg(wildcards).get("shard_size", 2000))


def on_bad_record(wildcards):
    return dataset_cfg(wildcards).get("on_bad_record", "error")


def _shard_parts(dataset):
    """All parts of a dataset's shard: their number is known once index_dataset has run."""
    meta = checkpoints.index_dataset.get(dataset=dataset).output.meta
    with open(meta) as handle:
        n_parts = int(json.load(handle)["n_parts"])
    return ecg_transfer.shards.part_paths(f"results/shards/{dataset}", n_parts)


def upstream_shards(wildcards):
    return _shard_parts(wildcards.upstream)


def downstream_shards(wildcards):
    return _shard_parts(wildcards.downstream)


def stage_params(stage):
    return dict(config["training"][stage])


def training_params():
    """The study-wide training keys (selection, validation_fraction, precision): every training
    job's numbers or saved epoch depend on them."""
    stages = ("pretrain", "finetune", "scratch")
    return {k: v for k, v in config["training"].items() if k not in stages}


def plot_params():
    """The figures' options, with defaults for keys the config leaves out."""
    return {"dpi": 110, **config.get("plots", {})}


def training_jobs():
    """Every training job of the study, as the aggregation needs to label its metrics."""
    jobs = []
    for seed in SEEDS:
        for arch in ARCHS:
            for up in UPSTREAM:
                jobs.append(dict(regime="pretrain", upstream=up, downstream=up, arch=arch,
                                 seed=seed, metrics=f"results/pretrain/{up}/{arch}/seed{seed}/metrics.csv"))
            for up, down in FINETUNE_PAIRS:
                jobs.append(dict(regime="finetune", upstream=up, downstream=down, arch=arch,
                                 seed=seed,
                                 metrics=f"results/finetune/{up}/{down}/{arch}/seed{seed}/metrics.csv"))
            for down in DOWNSTREAM:
                jobs.append(dict(regime="scratch", upstream=None, downstream=down, arch=arch,
                                 seed=seed, metrics=f"results/scratch/{down}/{arch}/seed{seed}/metrics.csv"))
    return jobs


def training_metrics():
    return [job["metrics"] for job in training_jobs()]
