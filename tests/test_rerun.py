"""Only the stale parts re-run: each change to the config or the package code schedules exactly
the jobs that depend on it (docs/reruns.md).

One tiny study is built once for the module (1 upstream, 2 downstream, 2 architectures, 1 epoch);
every table row is then a dry run of a changed config against it, compared with the job counts
the row allows. Rules are named in one place (the EXPECTED_* dicts) so that a renamed rule is a
one-line change.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from tiny_study import REPO, scheduled_jobs, snakemake, tiny_config, write_config

pytestmark = pytest.mark.slow

RECORDS = {"ptbxl": 40, "cpsc2018": 40, "georgia": 40, "ptb": 30, "ribeiro": 30}
ARCHS = ["resnet1d18", "gru"]
TRAINING = ("pretrain", "finetune", "train_scratch")
# Every job of one dataset's data stage, as the rules name them.
DATA_PER_DATASET = {"make_demo_archive": 1, "download": 1, "extract": 1}
# A dataset whose records are read again: its archive extracted again (the extracted folder is
# temporary, deleted once the study was built), the index job and its one shard part (parts: 1).
INDEX_PER_DATASET = {"extract": 1, "index_dataset": 1, "make_shard": 1}
# The tables, the convergence figure of each downstream dataset (georgia, ptb), and the results
REPORTS = {"aggregate": 1, "plot_curves": 2, "results": 1}
# The tables, the figure of the one downstream dataset a change touches, and the results
REPORTS_ONE = {"aggregate": 1, "plot_curves": 1, "results": 1}
# The size axis' jobs: one fine-tune and one scratch job (georgia, 10 records)
FT_SIZE, SCRATCH_SIZE = {"finetune_size": 1}, {"train_scratch_size": 1}
SIZES = {**FT_SIZE, **SCRATCH_SIZE}
# Beyond the paper, one job per downstream set (georgia, ptb) each: MELEP of every pretrained
# model fine-tuned on the set, robustness of every fine-tuned and scratch model of the set. A
# change to any of a set's models re-runs its whole job; _ONE: one set's job.
MELEP, MELEP_ONE = {"transferability": 2}, {"transferability": 1}
ROBUST, ROBUST_ONE = {"robustness": 2}, {"robustness": 1}
# Robustness scores resnet1d18's models only (robustness.architectures): each of its fine-tuned
# (ptbxl -> georgia, ptb) and scratch (georgia, ptb) models is kept by a keep_model job; gru's
# model.pt files are temporary, deleted once written.
ROBUST_ARCHS = ["resnet1d18"]


def keep(n: int) -> dict[str, int]:
    """n keep_model jobs: n of resnet1d18's downstream models re-trained, kept again."""
    return {"keep_model": n}


def base_config() -> dict:
    # size axis: resnet1d18 from ptbxl and from scratch on 10 of georgia's train records;
    # MELEP and robustness (one job per downstream set each) on
    cfg = tiny_config(records=RECORDS, architectures=ARCHS, upstream=["ptbxl"],
                      downstream=["georgia", "ptb"], epochs=1, train_sizes={"georgia": [10]})
    cfg["melep"] = {"enabled": True}
    cfg["robustness"] = {"enabled": True, "levels": {"emg": [6]}, "architectures": ROBUST_ARCHS}
    return cfg


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("rerun")
    write_config(workdir, base_config())
    snakemake(workdir)
    assert scheduled_jobs(workdir) == {}, "the built study is not up to date"
    return workdir


def _changed(study: Path, change) -> str:
    cfg = base_config()
    change(cfg)
    return write_config(study, cfg, "changed.yaml")


def _set(path: str, value):
    def change(cfg: dict) -> None:
        *keys, last = path.split(".")
        for key in keys:
            cfg = cfg.setdefault(key, {})
        cfg[last] = value
    return change


# 2 archs: 2 pretrain (ptbxl), 4 finetune (ptbxl -> georgia, ptb), 4 scratch (georgia, ptb).
ROWS = {
    "fine-tune learning rate": (_set("training.finetune.lr", 0.002),
                                {"finetune": 4, **keep(2), **FT_SIZE, **ROBUST, **REPORTS}),
    "epochs of scratch training": (_set("training.scratch.epochs", 2),
                                   {"train_scratch": 4, **keep(2), **SCRATCH_SIZE, **ROBUST,
                                    **REPORTS}),
    # scaling is applied per shard part, which reads the records again: the temporary extracted
    # folder comes back, and with it the index (the same split), then ptb's one part
    "a preprocessing parameter of one dataset (per part)": (
        _set("datasets.ptb.preprocess.scaling", "minmax"),
        {**INDEX_PER_DATASET, "finetune": 2, "train_scratch": 2, **keep(2), **MELEP_ONE,
         **ROBUST_ONE, **REPORTS_ONE}),
    # the split is decided by the index
    "a split parameter of one dataset (index)": (
        _set("datasets.ptb.split.random_state", 2),
        {**INDEX_PER_DATASET, "finetune": 2, "train_scratch": 2, **keep(2), **MELEP_ONE,
         **ROBUST_ONE, **REPORTS_ONE}),
    "pretraining hyperparameter": (_set("training.pretrain.lr", 0.002),
                                   {"pretrain": 2, "finetune": 4, **keep(2), **FT_SIZE,
                                    **MELEP, **ROBUST, **REPORTS}),
    "add a seed": (_set("seeds", [0, 1]),
                   {"pretrain": 2, "finetune": 4, "train_scratch": 4, **keep(4), **SIZES,
                    **MELEP, **ROBUST, **REPORTS}),
    # a new (or removed) architecture changes the models of every downstream set's MELEP job;
    # robustness scores the architectures it names, which stay the same
    "add an architecture": (_set("architectures", [*ARCHS, "lstm"]),
                            {"pretrain": 1, "finetune": 2, "train_scratch": 2, **MELEP,
                             **REPORTS}),
    "add a downstream dataset": (_set("downstream", ["georgia", "ptb", "ribeiro"]),
                                 {**DATA_PER_DATASET, **INDEX_PER_DATASET, "finetune": 2,
                                  "train_scratch": 2, **keep(2), **MELEP_ONE, **ROBUST_ONE,
                                  **REPORTS_ONE}),
    "remove an architecture": (_set("architectures", ["resnet1d18"]), {**MELEP, **REPORTS}),
    "a plotting option": (_set("plots.dpi", 72), {"plot_curves": 2, "results": 1}),
    # the size axis: a new size is two new jobs and the results, nothing else
    "add a training size": (_set("size_axis.train_sizes", {"georgia": [10, 15]}),
                            {**SIZES, "results": 1}),
    "another subset seed": (_set("size_axis.subset_seed", 1), {**SIZES, "results": 1}),
    "a statistic of the results": (_set("results.n_boot", 1500), {"results": 1}),
    # a verdict's margin or level: the answer is judged again, nothing is retrained
    "a margin of the verdicts": (_set("results.margin_f1", 0.03), {"results": 1}),
    "the level of the verdicts": (_set("results.level", 0.9), {"results": 1}),
    # beyond the paper: a robustness setting re-runs the robustness jobs and the results only
    # (the downstream models are kept while robustness is on)
    "robustness levels": (_set("robustness.levels", {"emg": [6, 0]}), {**ROBUST, "results": 1}),
    "robustness seed": (_set("robustness.seed", 3), {**ROBUST, "results": 1}),
    # gru's downstream models were not kept: scoring them means training them again (the same
    # numbers, so the reports re-run with them)
    "robustness of another architecture": (
        _set("robustness.architectures", ["resnet1d18", "gru"]),
        {"finetune": 2, "train_scratch": 2, **keep(4), **ROBUST, **REPORTS}),
    "keep every checkpoint": (_set("training.keep_checkpoints", "all"), {}),
    "turn MELEP off": (_set("melep.enabled", False), {"results": 1}),
    # how fast, not what: the speed levers re-run nothing
    "training speed levers": (_set("training.speed", {"compile": "default",
                                                      "eval_batch_size": 512}), {}),
    "resume state written after every epoch": (_set("training.resume_interval_s", 0), {}),
    "jobs per GPU": (_set("gpu.jobs_per_gpu", 2), {}),
}


@pytest.mark.parametrize("row", list(ROWS))
def test_a_config_change_reruns_exactly_the_stale_jobs(study, row):
    change, expected = ROWS[row]
    assert scheduled_jobs(study, _changed(study, change)) == expected


def test_unchanged_config_reruns_nothing(study):
    assert scheduled_jobs(study, _changed(study, lambda cfg: None)) == {}


def test_adding_a_pretrained_model_file_reruns_no_finished_job(study, tmp_path):
    # One of the study's own pretrained models given by file under a new name: its import, its
    # fine-tunes (resnet1d18 on georgia and ptb, kept for robustness), each set's MELEP and
    # robustness job (their model lists grow) and the reports run; no training job re-runs.
    export = tmp_path / "export"
    shutil.copytree(study / "results/pretrain/ptbxl/resnet1d18/seed0", export)
    added = _set("pretrained_models", {"lab": {"path": str(export / "model.pt")}})
    assert scheduled_jobs(study, _changed(study, added)) == {
        "import_model": 1, "finetune": 2, **keep(2), **MELEP, **ROBUST, **REPORTS}


def test_only_the_models_a_later_job_reads_stay_on_disk(study):
    results = study / "results"
    # pretrained models: fine-tuning starts from them
    assert sorted(p.parent.name for p in (results / "pretrain").rglob("model.pt")) == [
        "seed0", "seed0"]
    # no fine-tuned, scratch or size-axis model.pt stays where it was trained...
    assert [p for sub in ("finetune", "scratch", "sizes")
            for p in (results / sub).rglob("model.pt")] == []
    # ...but the robustness study's (resnet1d18's) are kept, one per job: 2 fine-tuned, 2 scratch
    kept = sorted(str(p.relative_to(results / "models")) for p in
                  (results / "models").rglob("model.pt"))
    assert kept == [
        "finetune/ptbxl/georgia/resnet1d18/seed0/model.pt",
        "finetune/ptbxl/ptb/resnet1d18/seed0/model.pt",
        "scratch/georgia/resnet1d18/seed0/model.pt",
        "scratch/ptb/resnet1d18/seed0/model.pt",
    ]
    # and the training jobs' other outputs are all there
    assert len(list((results / "finetune").rglob("predictions.npz"))) == 4


def test_the_extracted_records_do_not_stay_on_disk(study):
    # each dataset's verified archive stays, the source of any later extraction...
    archives = sorted(p.name for p in (study / "resources" / "downloads").glob("*.archive"))
    assert archives == ["georgia.archive", "ptb.archive", "ptbxl.archive"]
    # ...and its extracted folder, temporary, is gone once its index and shard parts are written
    assert list((study / "resources" / "raw").glob("*")) == []


# ------------------------------------------------------------------------------------------
# Package code as a rerun trigger
#
# Each rule carries in params a hash of the package modules its script runs
# (ecg_transfer.codehash, computed in common.smk). The hash reads the source of the package that
# Snakemake imports, so the test copies src/ecg_transfer to a temporary folder and puts that copy
# first on PYTHONPATH (ahead of the editable install's .pth entry): edits to the copy are what a
# developer's edit to the real tree would be, and the real source tree is never touched.


@pytest.fixture
def package_copy(tmp_path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(REPO / "src" / "ecg_transfer", src / "ecg_transfer",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return src


def _edit(package: Path, module: str) -> None:
    path = package / "ecg_transfer" / module
    path.write_text(path.read_text() + "\n# an edit that changes the source\n")


CODE_ROWS = {
    "train.py": {"pretrain": 2, "finetune": 4, "train_scratch": 4, **keep(4), **SIZES, **MELEP,
                 **ROBUST, **REPORTS},
    "metrics.py": {"pretrain": 2, "finetune": 4, "train_scratch": 4, **keep(4), **SIZES,
                   **MELEP, **ROBUST, **REPORTS},
    # every dataset's index and shard (ptbxl, georgia, ptb) and everything after them
    "shards.py": {"extract": 3, "index_dataset": 3, "make_shard": 3, "pretrain": 2, "finetune": 4,
                  "train_scratch": 4, **keep(4), **SIZES, **MELEP, **ROBUST, **REPORTS},
    "prepare.py": {"extract": 3, "index_dataset": 3, "make_shard": 3, "pretrain": 2, "finetune": 4,
                   "train_scratch": 4, **keep(4), **SIZES, **MELEP, **ROBUST, **REPORTS},
    # A reader re-runs only its own datasets' data stages and what is trained on them: the
    # training stage's code does not include the readers, nor does another dataset's data stage.
    "datasets/ptb.py": {**INDEX_PER_DATASET, "finetune": 2, "train_scratch": 2, **keep(2),
                        **MELEP_ONE, **ROBUST_ONE, **REPORTS_ONE},
    "datasets/challenge.py": {**INDEX_PER_DATASET, "finetune": 2, "train_scratch": 2, **keep(2),
                              **SIZES, **MELEP_ONE, **ROBUST_ONE, **REPORTS_ONE},
    "aggregate.py": REPORTS,
    # the forward passes of saved models: MELEP and robustness, and the results that read them
    "evaluate.py": {**MELEP, **ROBUST, "results": 1},
}


def test_an_unchanged_copy_of_the_package_reruns_nothing(study, package_copy):
    # The hash depends on the modules' content, not on where the package lives; and the copy on
    # PYTHONPATH is really what common.smk hashes (else the edits below would change nothing).
    assert scheduled_jobs(study, env={"PYTHONPATH": str(package_copy)}) == {}


@pytest.mark.parametrize("module", list(CODE_ROWS))
def test_a_package_code_change_reruns_the_stages_that_run_it(study, package_copy, module):
    _edit(package_copy, module)
    assert scheduled_jobs(study, env={"PYTHONPATH": str(package_copy)}) == CODE_ROWS[module]


# ------------------------------------------------------------------------------------------
# Local GPU scheduling: with --resources gpu=N at most N training jobs run at once, while jobs
# that ask for no GPU keep running beside them.


def _intervals(workdir: Path, rules: tuple[str, ...]) -> list[tuple[str, float, float]]:
    """(job, start, end) from the benchmark files: written when a job ends, with its wall time."""
    spans = []
    for rule in rules:
        for tsv in (workdir / "benchmarks" / rule).rglob("*.tsv"):
            end = tsv.stat().st_mtime
            seconds = float(pd.read_csv(tsv, sep="\t")["s"].iloc[-1])
            spans.append((str(tsv.relative_to(workdir / "benchmarks")), end - seconds, end))
    return spans


def _max_overlap(spans: list[tuple[str, float, float]]) -> int:
    events = sorted([(s, 1) for _, s, _ in spans] + [(e, -1) for _, _, e in spans],
                    key=lambda ev: (ev[0], ev[1]))  # an end before a start at the same time
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_gpu_resource_bounds_concurrent_training_jobs(study, tmp_path):
    """A second seed and a new downstream dataset on a copy of the built study, with 3 cores
    and gpu=1: the seed's training jobs can start at once, the new dataset's data jobs too."""
    work = tmp_path / "study"
    shutil.copytree(study, work, symlinks=True)
    for rule in (*TRAINING, "index_dataset", "make_shard"):
        shutil.rmtree(work / "benchmarks" / rule, ignore_errors=True)
    cfg = base_config()
    cfg["seeds"] = [0, 1]
    cfg["downstream"] = ["georgia", "ptb", "ribeiro"]
    write_config(work, cfg)
    snakemake(work, "--resources", "gpu=1", cores=3)

    training = _intervals(work, TRAINING)
    assert len(training) == 2 + 6 + 6 + 2 + 2  # seed 1: 2+6+6; ribeiro for seed 0: 2+2
    assert _max_overlap(training) == 1, sorted(training, key=lambda s: s[1])
    cpu_only = _intervals(work, ("index_dataset", "make_shard"))
    assert cpu_only, "the new dataset's data jobs left no benchmark"
    beside = [(c, t) for c in cpu_only for t in training if c[1] < t[2] and t[1] < c[2]]
    assert beside, ("no CPU-only job ran beside a training job: the GPU limit serialised "
                    f"everything?\ntraining: {training}\ncpu: {cpu_only}")
