# Config -> job lists, wildcard constraints and input functions. All of the workflow's Python
# lives here; the rules only name these functions.
from snakemake.utils import validate

import ecg_transfer
import ecg_transfer.download


validate(config, schema="../schemas/config.schema.yaml")

DATASETS = list(config["datasets"])
ARCHS = list(config["architectures"])
UPSTREAM = list(config["upstream"])
DOWNSTREAM = list(config["downstream"])
SEEDS = [int(s) for s in config["seeds"]]
CODE_VERSION = ecg_transfer.__version__
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


def _alternatives(names):
    return "|".join(sorted(set(names))) or "(?!)"


wildcard_constraints:
    dataset=_alternatives(DATASETS),
    upstream=_alternatives(UPSTREAM),
    downstream=_alternatives(DOWNSTREAM),
    arch=_alternatives(ARCHS),
    seed=r"\d+",
    fmt="zip|tar",


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


def split_params(wildcards):
    return dict(dataset_cfg(wildcards).get("split", {}))


def stage_params(stage):
    return dict(config["training"][stage])


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
