"""The study config: schema validation and the shape of the DAG it implies."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate
from snakemake_interface_common.exceptions import WorkflowError
from tiny_study import job_counts, plan

from ecg_transfer import models

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def _config(name: str = "config.yaml") -> dict:
    """A shipped config as Snakemake sees it: --configfile files are merged over config.yaml."""
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg.update(yaml.safe_load((REPO / name).read_text()))
    return cfg


@pytest.mark.parametrize("name", ["config.yaml", "config/demo.yaml"])
def test_shipped_configs_are_valid(name):
    validate(_config(name), str(SCHEMA))


def _mutations():
    def unknown_top(c):
        c["epochz"] = 3

    def unknown_nested(c):
        c["training"]["pretrain"]["momentum"] = 0.9

    def wrong_type(c):
        c["training"]["finetune"]["lr"] = "fast"

    def unknown_dataset(c):
        c["datasets"]["mitbih"] = {"url": "https://example.org/x.zip"}

    def unsafe_upstream_name(c):
        # a safe name without an entry under datasets is refused at planning time (below)
        c["upstream"] = ["ptbxl", "Chapman-2020"]

    def unknown_arch(c):
        c["architectures"] = ["resnet1d18", "vgg16"]

    def bad_url(c):
        c["datasets"]["ptb"]["url"] = "ftp://example.org/ptb.zip"

    def bad_protocol(c):
        c["datasets"]["ptb"]["preprocess"]["protocol"] = "fancy"

    return [
        (unknown_top, "'epochz' was unexpected"),
        (unknown_nested, "'momentum' was unexpected"),
        (wrong_type, r"'fast' is not of type 'number'[\s\S]*\['finetune'\]\['lr'\]"),
        (unknown_dataset, "mitbih"),
        (unsafe_upstream_name, r"'Chapman-2020' does not match[\s\S]*\['upstream'\]"),
        (unknown_arch, r"'vgg16' is not one of[\s\S]*\['architectures'\]"),
        (bad_url, r"ftp://example.org/ptb.zip[\s\S]*\['url'\]"),
        (bad_protocol, r"'fancy' is not one of[\s\S]*\['protocol'\]"),
    ]


@pytest.mark.parametrize("mutate,message", _mutations(), ids=lambda x: getattr(x, "__name__", ""))
def test_schema_rejects_bad_config_naming_the_key(mutate, message):
    cfg = copy.deepcopy(_config())
    mutate(cfg)
    with pytest.raises(WorkflowError, match=message):
        validate(cfg, str(SCHEMA))


def test_schema_architectures_are_the_registry():
    schema = yaml.safe_load(SCHEMA.read_text())
    assert schema["properties"]["architectures"]["items"]["enum"] == list(models.ARCHITECTURES)


def _dry_run_counts(configfile: Path, workdir: Path) -> dict[str, int]:
    out = plan(workdir, configfile)
    assert out.returncode == 0, out.stderr + out.stdout
    return job_counts(out)


def test_dry_run_of_the_paper_study_lists_the_paper_grid(tmp_path):
    counts = _dry_run_counts(REPO / "config.yaml", tmp_path)
    assert counts["pretrain"] == 18
    assert counts["finetune"] == 72
    assert counts["train_scratch"] == 30
    # every shard part is known before anything runs: ptbxl 11, cpsc2018 4, georgia 6, 1 + 1
    assert counts["download"] == counts["index_dataset"] == 5
    assert counts["make_shard"] == 23
    assert counts["aggregate"] == 1
    assert counts["plot_curves"] == 5  # one figure per downstream dataset
    # the paper's size sweep, counted apart: ResNet1d18 from Georgia and from scratch, 6 sizes
    assert counts["finetune_size"] == counts["train_scratch_size"] == 6


def test_with_an_empty_size_axis_no_size_job_exists(tmp_path):
    cfg = _config()
    cfg["size_axis"] = {}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    counts = _dry_run_counts(path, tmp_path)
    assert "finetune_size" not in counts and "train_scratch_size" not in counts
    assert (counts["pretrain"], counts["finetune"], counts["train_scratch"]) == (18, 72, 30)


def _refused(cfg: dict, tmp_path: Path) -> str:
    """Snakemake's output for a dry run of ``cfg``, which must fail. The workdir has no
    config.yaml, so the --configfile is the whole config."""
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = plan(tmp_path, path)
    assert out.returncode != 0
    return out.stdout + out.stderr


def test_a_size_axis_upstream_without_pretrained_models_is_an_error(tmp_path):
    cfg = _config()
    cfg["size_axis"]["upstream"] = ["ptb"]
    assert "'size_axis.upstream' names 'ptb'" in _refused(cfg, tmp_path)


def test_a_robustness_architecture_outside_the_grid_is_an_error(tmp_path):
    cfg = _config()
    cfg["architectures"] = ["resnet1d18"]
    cfg["robustness"] = {"enabled": True, "architectures": ["resnet1d18", "gru"]}
    assert "'robustness.architectures' names 'gru'" in _refused(cfg, tmp_path)


def test_unknown_dataset_in_downstream_stops_before_any_job(tmp_path):
    cfg = _config()
    del cfg["datasets"]["ribeiro"]
    assert "config key 'downstream' names dataset 'ribeiro'" in _refused(cfg, tmp_path)


def test_dry_run_of_the_sound_study_lists_the_same_grid_for_three_seeds(tmp_path):
    (tmp_path / "config.yaml").write_text((REPO / "config.yaml").read_text())
    out = plan(tmp_path, tmp_path / "config.yaml", REPO / "config" / "sound.yaml")
    assert out.returncode == 0, out.stderr + out.stdout
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", out.stdout, re.M)}
    # the paper's 18, 72 and 30 training jobs (and 6 + 6 of the size axis), for seeds 0, 1, 2
    assert (counts["pretrain"], counts["finetune"], counts["train_scratch"]) == (54, 216, 90)
    assert (counts["finetune_size"], counts["train_scratch_size"]) == (18, 18)


def test_the_paper_study_trains_on_all_of_train():
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    assert cfg["training"]["validation_fraction"] == 0
    assert cfg["training"]["selection"] == "paper"
    assert all(d["preprocess"]["protocol"] == "paper" for d in cfg["datasets"].values())


def test_jobs_per_gpu_reaches_the_local_jobs_through_their_environment(tmp_path):
    # The training script's claim_device reads ECG_TRANSFER_JOBS_PER_GPU; the config key sets it
    # for every job Snakemake starts (and overrides the variable, with a warning). A rule added
    # beside the workflow's prints what a job sees.
    wrapper = tmp_path / "Snakefile"
    wrapper.write_text(
        f'include: "{REPO / "Snakefile"}"\n\n'
        "rule show_jobs_per_gpu:\n"
        '    output: "seen.txt"\n'
        '    shell: "echo $ECG_TRANSFER_JOBS_PER_GPU > {output}"\n')
    cfg = _config()
    cfg["gpu"] = {"jobs_per_gpu": 3}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "ECG_TRANSFER_JOBS_PER_GPU": "2"}
    out = subprocess.run(
        [SNAKEMAKE, "--snakefile", str(wrapper), "--directory", str(tmp_path), "--cores", "1",
         "--configfile", str(tmp_path / "c.yaml"), "--workflow-profile", "none", "seen.txt"],
        capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr + out.stdout
    assert (tmp_path / "seen.txt").read_text().strip() == "3"
    assert "ECG_TRANSFER_JOBS_PER_GPU=2 is overridden" in out.stderr + out.stdout


@pytest.mark.parametrize("target", [
    "results/models/finetune/../../../etc/model.pt",
    "results/models/scratch/ptb/../../pretrain/ptbxl/gru/seed0/model.pt",
    "results/models/finetune/ptbxl/ptb/gru/seedx/model.pt",
])
def test_keep_model_makes_no_file_outside_a_training_job_folder(tmp_path, target):
    """The job wildcard of rule keep_model is exactly a fine-tuned or scratch job's folder:
    a target with '..' or another folder of results/ has no rule to make it, even where the
    file the '..' leads to exists."""
    existing = tmp_path / "results/pretrain/ptbxl/gru/seed0/model.pt"
    existing.parent.mkdir(parents=True)
    existing.write_bytes(b"weights")
    out = plan(tmp_path, REPO / "config.yaml", targets=[target])
    assert out.returncode != 0 and "MissingRuleException" in out.stdout + out.stderr


def test_keep_model_makes_a_training_job_folder_s_model(tmp_path):
    out = plan(tmp_path, REPO / "config.yaml",
               targets=["results/models/finetune/ptbxl/ptb/gru/seed0/model.pt",
                        "results/models/scratch/ptb/gru/seed0/model.pt"])
    assert out.returncode == 0, out.stderr + out.stdout
    assert re.search(r"^keep_model\s+2$", out.stdout, re.M)


def _overlay_dry_run(overlay: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    """A dry run as a user runs an overlay: config.yaml in the working directory, the overlay
    merged over it with --configfile (key by key)."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    (work / "config.yaml").write_text((REPO / "config.yaml").read_text())
    (work / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    return plan(work, work / "overlay.yaml")


def test_an_overlay_switches_the_size_axis_off(tmp_path):
    # Issue 20: `size_axis: {train_sizes: {}}` is merged into config.yaml's PTB-XL sizes, which
    # stay; a study of other datasets then failed at run time. `enabled: false` removes them.
    out = _overlay_dry_run({"upstream": ["ptbxl"], "downstream": ["ptb"],
                            "size_axis": {"enabled": False}}, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    counts = job_counts(out)
    assert "finetune_size" not in counts and "train_scratch_size" not in counts
    assert counts["finetune"] == 6 and counts["train_scratch"] == 6


def test_an_overlay_removes_one_dataset_from_the_size_axis(tmp_path):
    out = _overlay_dry_run({"size_axis": {"train_sizes": {"ptbxl": []}}}, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "finetune_size" not in out.stdout


def test_an_overlay_that_leaves_the_size_axis_on_is_told_how_to_switch_it_off(tmp_path):
    out = _overlay_dry_run({"downstream": ["ptb"]}, tmp_path)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "'size_axis.train_sizes' names dataset 'ptbxl', which is not in 'downstream'" in text
    assert "size_axis: {enabled: false}" in text


def test_a_size_above_the_indexed_train_split_is_refused_when_planning(tmp_path):
    # Once the index exists, a size larger than its train split stops the plan naming the key,
    # instead of failing every size job at run time.
    index = tmp_path / "work" / "results" / "index"
    index.mkdir(parents=True)
    # the index meta write_index writes: the split's counts (n_train, n_val, n_test) among them
    (index / "ptbxl.json").write_text(json.dumps({"n_train": 20, "n_val": 0, "n_test": 10}))
    out = _overlay_dry_run({}, tmp_path)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert ("config key 'size_axis.train_sizes.ptbxl': size(s) [2000, 4000, 6000, 8000, 10000, "
            "12000] exceed the 20 training records of ptbxl") in text, text
