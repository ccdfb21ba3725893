# Config -> job lists, wildcard constraints and input functions. All of the workflow's Python
# lives here; the rules only name these functions.
import functools
import json
import os
from pathlib import Path

from snakemake.logging import logger
from snakemake.utils import validate

import ecg_transfer.datasets
import ecg_transfer.download
import ecg_transfer.gpu
import ecg_transfer.modelmeta
import ecg_transfer.metrics
import ecg_transfer.answer
import ecg_transfer.answer.paths
import ecg_transfer.perturb
from ecg_transfer.codehash import code_hash, package_modules


# Fills in the schema's defaults: workflow/schemas/config.schema.yaml is the one place they live.
validate(config, schema="../schemas/config.schema.yaml")

DATASETS = list(config["datasets"])
# A dataset of one's own (an entry with `records`) is checked before any job: a name that is no
# built-in one, its classes and where its labels come from (ecg_transfer.datasets.records).
for _name, _entry in config["datasets"].items():
    ecg_transfer.datasets.reader(_name, _entry.get("records"))
ARCHS = list(config["architectures"])
UPSTREAM = list(config["upstream"])
DOWNSTREAM = list(config["downstream"])
SEEDS = [int(s) for s in config["seeds"]]
# Package code is no rerun trigger by itself: each rule carries in params the hash of the source
# its script runs (the modules named here and every package module they import, see
# ecg_transfer/codehash.py), so an edit re-runs exactly the stages that execute it. The results
# stage hashes every module of the answer package. A dataset's data stage leaves out the other
# datasets' readers, which it imports but never runs.
CODE_VERSION = {
    "demo": code_hash("ecg_transfer.runlog", "ecg_transfer.demo"),
    "train": code_hash("ecg_transfer.runlog", "ecg_transfer.train"),
    "report": code_hash("ecg_transfer.runlog", "ecg_transfer.aggregate"),
    "results": code_hash("ecg_transfer.runlog", *package_modules("ecg_transfer.answer")),
    "evaluate": code_hash("ecg_transfer.runlog", "ecg_transfer.evaluate", "ecg_transfer.gpu"),
    "import": code_hash("ecg_transfer.runlog", "ecg_transfer.imported"),
}
DATA_CODE_VERSION = {
    name: code_hash(
        "ecg_transfer.runlog",
        "ecg_transfer.prepare",
        exclude=ecg_transfer.datasets.other_readers(name),
    )
    for name in DATASETS
}

for _key in ("upstream", "downstream"):
    for _name in config[_key]:
        if _name not in config["datasets"]:
            raise ValueError(
                f"config key '{_key}' names dataset '{_name}', which has no entry under "
                f"'datasets' (defined: {', '.join(DATASETS)})"
                + (
                    f"; '{_name}' is under 'pretrained_models', which makes it an upstream "
                    f"by itself: leave it out of '{_key}'"
                    if _name in config["pretrained_models"]
                    else ""
                )
            )

# Pretrained models given by file (config key pretrained_models): each an upstream of its one
# architecture, fine-tuned on every downstream set like a model the workflow pretrained (rule
# import_model makes it the study's checkpoint). What each takes as input is checked against
# every downstream set here, where the config or a model.json beside the file says it, and by
# the fine-tuning job otherwise (ecg_transfer/modelmeta.py).
MODELS = {}  # name -> what the plan knows of it (arch, and classes, leads, fs, n_samples)
for _name, _entry in config["pretrained_models"].items():
    ecg_transfer.modelmeta.check_name(_name, [*DATASETS, *ecg_transfer.datasets.NAMES])
    MODELS[_name] = ecg_transfer.modelmeta.planned_metadata(_name, _entry, ARCHS)


def _index_meta(dataset):
    """The dataset's index meta (results/index/<name>.json), if it has been built."""
    path = Path("results/index") / f"{dataset}.json"
    return json.loads(path.read_text()) if path.is_file() else None


for _name, _meta in MODELS.items():
    _entry = config["pretrained_models"][_name]
    for _down in DOWNSTREAM:
        ecg_transfer.modelmeta.check_fits(
            _name,
            ecg_transfer.modelmeta.ModelInput.of(_meta),
            _down,
            ecg_transfer.modelmeta.downstream_input(
                config["datasets"][_down]["preprocess"], _index_meta(_down)
            ),
            model_where=f"pretrained_models.{_name}: {_entry.get('path') or _entry['url']}",
        )


def _model_sha256(name):
    """The model file's SHA-256: the config's (a URL must give one), or that of the local file
    now. It is the import's rerun trigger; where the file lies is not."""
    entry = config["pretrained_models"][name]
    if entry.get("sha256"):
        return entry["sha256"].lower()
    path = Path(entry["path"])
    if not path.is_file():
        raise ValueError(
            f"config key 'pretrained_models.{name}.path': no such file {path} (relative paths "
            "are relative to the working directory)"
        )
    return ecg_transfer.download.file_digest(path, "sha256")


MODEL_SHA256 = {name: _model_sha256(name) for name in MODELS}
UPSTREAMS = UPSTREAM + list(MODELS)


def archs_of(upstream):
    """The architectures fine-tuned from an upstream: all of them from a dataset the workflow
    pretrains on, its own one from a model given by file."""
    return [MODELS[upstream]["arch"]] if upstream in MODELS else ARCHS


FINETUNE_PAIRS = [(u, d) for u in UPSTREAMS for d in DOWNSTREAM if u != d]

# The dataset-size axis (config key size_axis): its own rules, so the main grid keeps the
# paper's job counts; architectures and upstream datasets default to the main grid's.
SIZE_AXIS = config["size_axis"]
TRAIN_SIZES = {
    d: list(sizes) for d, sizes in SIZE_AXIS["train_sizes"].items() if sizes and SIZE_AXIS["enabled"]
}
SIZE_ARCHS = list(SIZE_AXIS.get("architectures", ARCHS))
SIZE_UPSTREAM = list(SIZE_AXIS.get("upstream", UPSTREAMS))
# config.yaml turns the paper's size axis on; a config merged over it (--configfile) is merged
# key by key, so it switches the axis off with `enabled: false`, or one dataset with `[]`.
_SIZE_OFF = (
    "; a config merged over config.yaml switches the size axis off with "
    "`size_axis: {enabled: false}`, or one dataset's sizes with `size_axis: {train_sizes: "
    "{<dataset>: []}}`"
)

for _name in TRAIN_SIZES:
    if _name not in config["datasets"]:
        raise ValueError(
            f"config key 'size_axis.train_sizes' names dataset '{_name}', which has no entry "
            f"under 'datasets' (defined: {', '.join(DATASETS)}){_SIZE_OFF}"
        )
    if _name not in DOWNSTREAM:
        raise ValueError(
            f"config key 'size_axis.train_sizes' names dataset '{_name}', which is not in "
            f"'downstream' ({', '.join(DOWNSTREAM)}){_SIZE_OFF}"
        )
for _name in SIZE_UPSTREAM:
    if TRAIN_SIZES and _name not in UPSTREAMS:
        raise ValueError(
            f"config key 'size_axis.upstream' names '{_name}', which is not in 'upstream' "
            f"or 'pretrained_models' (pretrained models exist for: {', '.join(UPSTREAMS)})"
            f"{_SIZE_OFF}"
        )


# Once a size-axis dataset's index exists, its train count (n_train of the index meta) bounds
# the sizes: an upper bound of what a size job can draw from (the shards may leave some out).
for _name, _sizes in TRAIN_SIZES.items():
    _n_train = (_index_meta(_name) or {}).get("n_train")
    _too_large = [v for v in _sizes if v >= 1 and _n_train is not None and v > _n_train]
    if _too_large:
        raise ValueError(
            f"config key 'size_axis.train_sizes.{_name}': size(s) {_too_large} exceed the "
            f"{_n_train} training records of {_name} (results/index/{_name}.json); give counts "
            f"up to {_n_train} or fractions below 1{_SIZE_OFF}"
        )


def check_archs(key, names):
    """A config key's architectures must be among the main grid's `architectures`."""
    for name in names:
        if name not in ARCHS:
            raise ValueError(
                f"config key '{key}' names '{name}', which is not in 'architectures' "
                f"({', '.join(ARCHS)})"
            )


if TRAIN_SIZES:
    check_archs("size_axis.architectures", SIZE_ARCHS)


# With a cluster executor (workflow/profiles/slurm) these run on the submitting node: compute
# nodes often have no internet, and the reports take seconds, less than a queue slot.
localrules:
    make_demo_archive,
    download,
    extract,
    aggregate,
    plot_curves,
    results,


def _alternatives(names):
    return "|".join(sorted(set(names))) or "(?!)"


# The job wildcard of keep_model (results/<job>/model.pt of a fine-tuned or scratch model).
KEPT_JOB = (
    rf"(finetune/({_alternatives(UPSTREAMS)})/({_alternatives(DOWNSTREAM)})"
    rf"|scratch/({_alternatives(DOWNSTREAM)}))/({_alternatives(ARCHS)})/seed\d+"
)

wildcard_constraints:
    dataset=_alternatives(DATASETS),
    upstream=_alternatives(UPSTREAMS),
    model=_alternatives(MODELS),
    downstream=_alternatives(DOWNSTREAM),
    arch=_alternatives(ARCHS),
    seed=r"\d+",
    size=_alternatives(str(v) for sizes in TRAIN_SIZES.values() for v in sizes).replace(
        ".", r"\."
    ),
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


def demo_params():
    """The generator's settings (seed, difficulty) without the per-dataset record counts."""
    return {k: v for k, v in config.get("demo", {}).items() if k != "records"}


def preprocess_params(wildcards):
    return dict(dataset_cfg(wildcards)["preprocess"])


def index_preprocess_params(wildcards):
    return {k: v for k, v in preprocess_params(wildcards).items() if k != "scaling"}


def scaling_param(wildcards):
    """None: the protocol's default scaling for the dataset (recorded in the index)."""
    return preprocess_params(wildcards).get("scaling")


def split_params(wildcards):
    return dict(dataset_cfg(wildcards)["split"])


def dataset_root(wildcards):
    """Where the extracted dataset is: `local_dir` (an existing copy, e.g. on shared storage;
    no download) or the extract rule's folder."""
    local = dataset_cfg(wildcards)["local_dir"]
    return local if local else rules.extract.output[0].format(dataset=wildcards.dataset)


def shard_parts(wildcards):
    return dataset_cfg(wildcards)["parts"]


def on_bad_record(wildcards):
    return dataset_cfg(wildcards)["on_bad_record"]


def records_params(wildcards):
    """A folder of records' `records` section (classes, labels); None for a built-in dataset."""
    return dataset_cfg(wildcards).get("records")


def pretrain_split(wildcards):
    return config["datasets"][wildcards.upstream]["pretrain_split"]


# gpu.jobs_per_gpu reaches the local training jobs through the environment they
# inherit (ecg_transfer.gpu.claim_device reads it), not through params or the script: how fast
# the jobs run must not re-run them. The config is the one source: it overrides the variable.
_per_gpu = str(config["gpu"]["jobs_per_gpu"])
if os.environ.get(ecg_transfer.gpu.JOBS_PER_GPU_ENV, _per_gpu) != _per_gpu:
    logger.warning(
        f"{ecg_transfer.gpu.JOBS_PER_GPU_ENV}={os.environ[ecg_transfer.gpu.JOBS_PER_GPU_ENV]} "
        f"is overridden by the config key gpu.jobs_per_gpu ({_per_gpu})"
    )
os.environ[ecg_transfer.gpu.JOBS_PER_GPU_ENV] = _per_gpu


def data_code_version(wildcards):
    return DATA_CODE_VERSION[wildcards.dataset]


@functools.cache
def _dataset_shards(dataset):
    """All parts of a dataset's shard: the config fixes their number (datasets.<name>.parts),
    so the whole DAG is known before anything has run. Formatted once per dataset: every
    training job asks for them."""
    return tuple(
        rules.make_shard.output.shard.format(dataset=dataset, part=i)
        for i in range(config["datasets"][dataset]["parts"])
    )


def _shard_parts(dataset):
    return list(_dataset_shards(dataset))


def upstream_shards(wildcards):
    return _shard_parts(wildcards.upstream)


def _pretrained(upstream, arch, seed):
    """The model a fine-tune starts from: the one the workflow pretrained on the upstream
    dataset (same architecture and seed), or the model given by file under that name."""
    if upstream in MODELS:
        return rules.import_model.output.checkpoint.format(model=upstream)
    return rules.pretrain.output.checkpoint.format(upstream=upstream, arch=arch, seed=seed)


def pretrained_checkpoint(wildcards):
    return _pretrained(wildcards.upstream, wildcards.arch, wildcards.seed)


def imported_sha256(wildcards):
    return MODEL_SHA256[wildcards.model]


def imported_metadata(wildcards):
    return MODELS[wildcards.model]


def downstream_shards(wildcards):
    return _shard_parts(wildcards.downstream)


def stage_params(stage):
    return dict(config["training"][stage])


def training_params():
    """The study-wide training keys (selection, validation_fraction, precision): every training
    job's numbers or saved epoch depend on them. Not keep_checkpoints, which only decides what
    stays on disk, nor training.speed and resume_interval_s, which the script reads from the
    config: changing those re-runs nothing."""
    left_out = ("pretrain", "finetune", "scratch", "keep_checkpoints", "speed",
                "resume_interval_s")
    return {k: v for k, v in config["training"].items() if k not in left_out}


def downstream_model(path):
    """A fine-tuned or scratch model.pt: temporary (deleted once no job needs it; its metrics,
    predictions and sidecar stay) unless training.keep_checkpoints is `all`. The robustness
    study keeps the models it scores through rule keep_model (results/models/), so that it can
    re-run with other settings without training them again. Pretrained models are always
    kept."""
    return path if config["training"]["keep_checkpoints"] == "all" else temp(path)


def plot_params():
    return dict(config["plots"])


def training_jobs(downstream=None):
    """Every training job of the study (of one downstream dataset, if given), labelled as the
    aggregation needs; the metrics paths are the training rules' own outputs. Each call gets
    its own dicts, so no rule's params share an object with another's."""
    jobs = _grid_jobs()
    if downstream is not None:
        jobs = [j for j in jobs if j["downstream"] == downstream and j["regime"] != "pretrain"]
    return [dict(job) for job in jobs]


@functools.cache
def _grid_jobs():
    """training_jobs() built once: the aggregation, each downstream set's curves and the
    results stage all ask for the whole grid (14 times per plan, 6000 jobs at 50 seeds)."""
    jobs = []
    for seed in SEEDS:
        for arch in ARCHS:
            for up in UPSTREAM:
                where = dict(upstream=up, arch=arch, seed=seed)
                jobs.append(dict(regime="pretrain", downstream=up, **where,
                                 **_job_files(rules.pretrain, where)))
            for up, down in ((u, d) for u, d in FINETUNE_PAIRS if arch in archs_of(u)):
                where = dict(upstream=up, downstream=down, arch=arch, seed=seed)
                jobs.append(dict(regime="finetune", **where, **_job_files(rules.finetune, where)))
            for down in DOWNSTREAM:
                where = dict(downstream=down, arch=arch, seed=seed)
                jobs.append(dict(regime="scratch", upstream=None, **where,
                                 **_job_files(rules.train_scratch, where)))
    return tuple(jobs)


def _job_files(rule, wildcards):
    """A training job's metrics, predictions and sidecar paths: the rule's own outputs."""
    return {
        key: getattr(rule.output, key).format(**wildcards)
        for key in ("metrics", "predictions", "sidecar")
    }


def training_metrics():
    return [job["metrics"] for job in training_jobs()]


def downstream_jobs(wildcards):
    return training_jobs(wildcards.downstream)


def downstream_metrics(wildcards):
    return [job["metrics"] for job in training_jobs(wildcards.downstream)]


def size_value(wildcards):
    """The size wildcard as the config wrote it: a record count or a fraction."""
    for value in TRAIN_SIZES[wildcards.downstream]:
        if str(value) == wildcards.size:
            return value
    raise ValueError(
        f"size {wildcards.size} is not in size_axis.train_sizes.{wildcards.downstream}"
    )


def subset_seed():
    return SIZE_AXIS["subset_seed"]


def size_jobs():
    """Every job of the size axis, labelled like training_jobs() plus its size."""
    return [dict(job) for job in _size_jobs()]


@functools.cache
def _size_jobs():
    """size_jobs() built once (the results stage asks for it twice)."""
    jobs = []
    for down, sizes in TRAIN_SIZES.items():
        for size, arch, seed in ((v, a, s) for v in sizes for a in SIZE_ARCHS for s in SEEDS):
            where = dict(downstream=down, arch=arch, seed=seed, size=size)
            jobs.append(dict(regime="scratch", upstream=None, **where,
                             **_job_files(rules.train_scratch_size, where)))
            for up in (u for u in SIZE_UPSTREAM if u != down and arch in archs_of(u)):
                where_ft = dict(upstream=up, **where)
                jobs.append(dict(regime="finetune", **where_ft,
                                 **_job_files(rules.finetune_size, where_ft)))
    return tuple(jobs)


def result_jobs():
    """The jobs the results stage compares: fine-tune and scratch of the grid and size axis."""
    return [j for j in training_jobs() if j["regime"] != "pretrain"] + size_jobs()


def result_inputs():
    return [job[key] for job in result_jobs() for key in ("metrics", "predictions", "sidecar")]


def families():
    """Architecture -> family (config key families), for the architectures of this run."""
    return {a: f for f, archs in config["families"].items() for a in archs if a in ARCHS}


MELEP = config["melep"]["enabled"]
ROBUSTNESS = config["robustness"]["enabled"]
ROBUST_ARCHS = list(config["robustness"].get("architectures", ARCHS))
if ROBUSTNESS:
    check_archs("robustness.architectures", ROBUST_ARCHS)
# the perturbation kinds of the robustness study: the config's, else the package's default grade
KINDS = list(config["robustness"]["levels"] or ecg_transfer.perturb.LEVELS)
# The results stage's files, from the package's one list of them; each with its caption.
RESULT_FILES = ecg_transfer.answer.output_paths(
    "results", sizes=bool(TRAIN_SIZES), melep=MELEP, robustness=ROBUSTNESS, kinds=KINDS
)


def result_outputs():
    """The results rule's named outputs, each wrapped for the HTML report with its caption:
    workflow/report/<file name without selection and extension>.rst."""
    outputs = {}
    for name, path in RESULT_FILES.items():
        stem = path.stem
        for selection in ecg_transfer.metrics.SELECTIONS:
            stem = stem.removesuffix(f"_{selection}")
        if stem.removeprefix("robustness_") in KINDS:
            stem = "robustness_figure"  # one caption for the figure of every kind
        category = {".png": "Figures", ".csv": "Tables", ".md": "Tables", ".json": "Claims"}[
            path.suffix
        ]
        category = "Claims" if stem.startswith("claims") else category
        outputs[name] = report(str(path), caption=f"../report/{stem}.rst", category=category)
    return outputs


def robustness_params():
    return {k: v for k, v in config["robustness"].items() if k != "enabled"}


def upstreams_of(downstream):
    """The upstream datasets whose models are fine-tuned on ``downstream``."""
    return [u for u, d in FINETUNE_PAIRS if d == downstream]


def keep_model_file(checkpoint, kept, log):
    """Rule keep_model: ``kept`` a hard link to ``checkpoint`` (or a copy), said in ``log``."""
    how = ecg_transfer.download.link_or_copy(checkpoint, kept)
    Path(log).write_text(f"{checkpoint} -> {kept} ({how})\n")


def kept_model(checkpoint):
    """Where rule keep_model keeps a fine-tuned or scratch model.pt (results/models/...)."""
    return rules.keep_model.output[0].format(
        job=Path(checkpoint).parent.relative_to("results").as_posix()
    )


def robustness_models(wildcards):
    """Model id -> kept checkpoint of every fine-tuned and scratch model of a downstream dataset
    (of robustness.architectures)."""
    models = {}
    for seed in SEEDS:
        for arch in ROBUST_ARCHS:
            for up in (u for u in upstreams_of(wildcards.downstream) if arch in archs_of(u)):
                where = dict(upstream=up, downstream=wildcards.downstream, arch=arch, seed=seed)
                model_id = ecg_transfer.answer.paths.robustness_model_id(
                    "finetune", up, arch, seed
                )
                models[model_id] = kept_model(
                    rules.finetune.output.checkpoint.format(**where)
                )
            where = dict(downstream=wildcards.downstream, arch=arch, seed=seed)
            model_id = ecg_transfer.answer.paths.robustness_model_id(
                "scratch", None, arch, seed
            )
            models[model_id] = kept_model(
                rules.train_scratch.output.checkpoint.format(**where)
            )
    return models


def robustness_checkpoints(wildcards):
    return list(robustness_models(wildcards).values())


def transferability_models(wildcards):
    """Model id -> checkpoint of every pretrained model fine-tuned on a downstream dataset; the
    ids are the entries of its MELEP file (see melep_jobs). A model given by file is one
    checkpoint for every seed, scored under each seed's id."""
    models = {}
    for up in upstreams_of(wildcards.downstream):
        for arch in archs_of(up):
            for seed in SEEDS:
                model_id = ecg_transfer.answer.paths.melep_model_id(up, arch, seed)
                models[model_id] = _pretrained(up, arch, seed)
    return models


def transferability_checkpoints(wildcards):
    return list(dict.fromkeys(transferability_models(wildcards).values()))


def melep_jobs():
    """Every pretrained model's MELEP of the run (config key melep), labelled for the results
    stage: the path is its downstream dataset's file, which holds all of that set's models."""
    if not MELEP:
        return []
    return [
        dict(upstream=u, downstream=d, arch=a, seed=s,
             path=rules.transferability.output[0].format(downstream=d))
        for u, d in FINETUNE_PAIRS
        for a in archs_of(u)
        for s in SEEDS
    ]


def robustness_files():
    """Downstream dataset -> its robustness file (config key robustness)."""
    if not ROBUSTNESS:
        return {}
    return {d: rules.robustness.output[0].format(downstream=d) for d in DOWNSTREAM}


def beyond_inputs():
    """The MELEP and robustness files, each once (a MELEP file serves many jobs)."""
    paths = [job["path"] for job in melep_jobs()] + list(robustness_files().values())
    return list(dict.fromkeys(paths))
