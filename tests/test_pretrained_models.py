"""A pretrained model given by file (config key pretrained_models) as an upstream: its name, its
metadata, safe loading, the fit to each downstream set, and (slow) a study that fine-tunes a
model an earlier study of this workflow wrote."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import re
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from test_records import REAL, demo_folder
from tiny_study import (
    REPO,
    plan,
    scheduled_jobs,
    snakemake,
    tiny_config,
    write_config,
)

from ecg_transfer import download, imported, modelmeta, models, train
from ecg_transfer.datasets import STANDARD_LEADS, RecordSet
from ecg_transfer.modelmeta import ModelInput
from ecg_transfer.shards import write_shard
from ecg_transfer.splits import SplitSpec, split_records

LEADS = list(STANDARD_LEADS)
# what a model this file builds takes: 12 standard leads, 64 samples at 50 Hz
META = {"arch": "resnet1d18", "classes": ["a", "b", "c"], "leads": LEADS, "fs": 50.0,
        "n_samples": 64}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _state_dict(arch: str = "resnet1d18", n_classes: int = 3, n_samples: int = 64) -> dict:
    torch.manual_seed(0)
    return models.build(arch, n_classes=n_classes, n_samples=n_samples).state_dict()


def _toy_shard(path: Path, n_samples: int = 64, fs: float = 50.0, leads=LEADS) -> Path:
    rng = np.random.default_rng(0)
    labels = (rng.random((40, 2)) < 0.5).astype(np.uint8)
    x = rng.normal(0, 1, (40, 12, n_samples)).astype(np.float32)
    rs = RecordSet(signals=x, labels=labels, classes=["c0", "c1"],
                   record_ids=[f"r{i:03d}" for i in range(40)], fs=fs, leads=list(leads),
                   patient_ids=None, folds=None, dropped=[], protocol="paper")
    split, method = split_records(rs, SplitSpec(test_size=0.25, random_state=1))
    return write_shard(path, "toyset", rs, split, method)


def _settings(**kw) -> train.TrainSettings:
    return train.TrainSettings(arch="resnet1d18", epochs=1, batch_size=16, lr=0.001,
                               validation_fraction=0.0, **kw)


def _import(tmp_path: Path, source: Path, metadata: dict, name: str = "lab") -> dict:
    return imported.import_model(name, str(source), tmp_path / "fetched" / f"{name}.pt",
                                 tmp_path / "imported" / name / "model.pt",
                                 sha256=_sha256(source), metadata=metadata)


# --------------------------------------------------------------------------------------------
# Names


@pytest.mark.parametrize("name", ["ptb", "georgia", "mine"])
def test_a_name_that_is_a_dataset_s_is_refused(name):
    with pytest.raises(ValueError, match=rf"pretrained_models.{name}'.*is the name of a dataset"):
        modelmeta.check_name(name, ["ptbxl", "ptb", "georgia", "mine"])


@pytest.mark.parametrize("name", ["Lab", "my-model", "../lab", "1lab", "lab model", "a" * 33, 7])
def test_a_name_that_is_no_safe_identifier_is_refused(name):
    with pytest.raises(ValueError, match="not a safe identifier"):
        modelmeta.check_name(name, ["ptbxl"])


def test_a_safe_new_name_is_accepted():
    assert modelmeta.check_name("lab_2", ["ptbxl"]) == "lab_2"


# --------------------------------------------------------------------------------------------
# Metadata and loading


def test_a_model_pt_this_workflow_wrote_says_everything_itself(tmp_path):
    shard = _toy_shard(tmp_path / "up.h5")
    out = tmp_path / "export"
    train.train(shard, _settings(), metrics_path=out / "metrics.csv",
                checkpoint_path=out / "model.pt")
    # planned from the model.json beside it alone
    planned = modelmeta.planned_metadata("lab", {"path": str(out / "model.pt")}, ["resnet1d18"])
    assert planned == {"arch": "resnet1d18", "classes": ["c0", "c1"], "leads": LEADS,
                       "fs": 50.0, "n_samples": 64}
    config = _import(tmp_path, out / "model.pt", planned)
    assert config["dataset"] == "lab" and config["imported"]["format"] == "checkpoint"
    assert config["imported"]["trained_on"] == "toyset"
    model = models.load_pretrained(tmp_path / "imported/lab/model.pt")
    original = torch.load(out / "model.pt", weights_only=True)["model"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, original[key]), key
    # without its sidecar, the checkpoint's own config says the rest
    alone = tmp_path / "alone" / "model.pt"
    alone.parent.mkdir()
    shutil.copy(out / "model.pt", alone)
    planned = modelmeta.planned_metadata("lab", {"path": str(alone), "arch": "resnet1d18"},
                                         ["resnet1d18"])
    assert planned == {"arch": "resnet1d18"}
    assert _import(tmp_path / "2", alone, planned)["n_samples"] == 64


def test_a_plain_state_dict_takes_its_metadata_from_the_config(tmp_path):
    state = _state_dict()
    path = tmp_path / "weights.pt"
    # saved from DataParallel: every key has a "module." prefix
    torch.save({f"module.{k}": v for k, v in state.items()}, path)
    config = _import(tmp_path, path, META)
    assert config["imported"]["format"] == "state_dict"
    assert (config["classes"], config["n_samples"], config["n_leads"]) == (["a", "b", "c"], 64, 12)
    model = models.load_pretrained(tmp_path / "imported/lab/model.pt")
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    sidecar = json.loads((tmp_path / "imported/lab/model.json").read_text())
    assert sidecar["imported"]["sha256"] == _sha256(path)
    # the same, held under "state_dict" as training scripts often save it
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "wrapped.pt")
    assert _import(tmp_path / "w", tmp_path / "wrapped.pt", META)["arch"] == "resnet1d18"


def test_a_plain_state_dict_without_its_metadata_is_refused_naming_the_keys(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(_state_dict(), path)
    with pytest.raises(ValueError, match=r"weights.pt: a plain state_dict, which does not say "
                                         r"its classes, leads, fs, n_samples"):
        _import(tmp_path, path, {"arch": "resnet1d18"})


def test_weights_of_another_shape_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "gru.pt"
    torch.save(_state_dict("gru"), path)
    with pytest.raises(ValueError, match=r"gru.pt: not the weights of a resnet1d18.*missing"):
        _import(tmp_path, path, META)
    torch.save(_state_dict(n_classes=5), path)  # a head of 5 classes, the config says 3
    with pytest.raises(ValueError, match=r"other shape: fc2.weight \(5, 512\)"):
        _import(tmp_path, path, META)


def test_a_file_holding_code_is_refused_unread(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(models.build("resnet1d18", n_classes=3), path)  # a pickled module, not weights
    with pytest.raises(ValueError, match="not a model file torch can load safely"):
        _import(tmp_path, path, META)


def test_config_metadata_that_contradicts_the_sidecar_is_refused(tmp_path):
    torch.save({}, tmp_path / "lab.pt")
    (tmp_path / "lab.json").write_text(json.dumps(META))
    entry = {"path": str(tmp_path / "lab.pt"), "n_samples": 1000}
    with pytest.raises(ValueError, match=r"gives n_samples 1000, but .*lab.json says 64"):
        modelmeta.planned_metadata("lab", entry, ["resnet1d18"])


def test_the_architecture_must_be_known_and_in_the_grid_when_planning(tmp_path):
    with pytest.raises(ValueError, match="no architecture; give 'arch'"):
        modelmeta.planned_metadata("lab", {"path": str(tmp_path / "x.pt")}, ["resnet1d18"])
    with pytest.raises(ValueError, match=r"'gru' is not in 'architectures' \(resnet1d18\)"):
        modelmeta.planned_metadata("lab", {"url": "https://x/y.pt", "sha256": "0" * 64,
                                           "arch": "gru"}, ["resnet1d18"])


@pytest.fixture
def http_root(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    thread.join()


def test_a_url_goes_through_the_verified_download(http_root, tmp_path):
    root, base = http_root
    torch.save(_state_dict(), root / "lab.pt")
    fetched, dest = tmp_path / "fetched" / "lab.pt", tmp_path / "imported" / "model.pt"
    with pytest.raises(download.ChecksumError, match=r"sha256 of http://127\.0\.0\.1.*lab\.pt"):
        imported.import_model("lab", f"{base}/lab.pt", fetched, dest, sha256="0" * 64,
                              metadata=META)
    assert not fetched.exists() and not dest.exists()
    assert not list(fetched.parent.glob("*.part"))
    imported.import_model("lab", f"{base}/lab.pt", fetched, dest,
                          sha256=_sha256(root / "lab.pt"), metadata=META)
    assert models.load_pretrained(dest).checkpoint_config["dataset"] == "lab"


# --------------------------------------------------------------------------------------------
# The fit to a downstream set


def test_a_model_that_fits_passes_and_unknowns_are_not_compared():
    takes = ModelInput(tuple(LEADS), 100.0, 1000)
    modelmeta.check_fits("lab", takes, "ptb", ModelInput(tuple(LEADS), 100.0, 1000))
    modelmeta.check_fits("lab", takes, "ptb", ModelInput(None, None, None))
    lower = ModelInput(tuple(x.upper() for x in LEADS), 100.0, 1000)  # PTB-XL's "AVR"
    modelmeta.check_fits("lab", takes, "ptb", lower)


@pytest.mark.parametrize("gives,what", [
    (ModelInput(tuple(LEADS), 100.0, 500), "input length: the model takes 1000 samples per "
                                           "lead, ptb's records have 500"),
    (ModelInput(tuple(LEADS), 500.0, 1000), "sampling rate: the model takes 100 Hz, ptb's "
                                            "records are at 500 Hz"),
    # Ribeiro's file order under the paper protocol: aVL, aVF before aVR
    (ModelInput(("I", "II", "III", "aVL", "aVF", "aVR", *LEADS[6:]), 100.0, 1000), "leads"),
    (ModelInput(tuple(LEADS[:8]), 100.0, 1000), "leads"),
])
def test_a_model_that_does_not_fit_is_refused_naming_both(gives, what):
    with pytest.raises(ValueError) as err:
        modelmeta.check_fits("lab", ModelInput(tuple(LEADS), 100.0, 1000), "ptb", gives,
                             model_where="pretrained_models.lab: lab.pt")
    text = str(err.value)
    assert text.startswith("pretrained model 'lab' (pretrained_models.lab: lab.pt) does not "
                           "fit downstream set 'ptb'")
    assert what in text


def test_the_plan_knows_the_lead_order_only_from_an_index_of_the_same_protocol_and_rate():
    index = {"settings": {"protocol": "paper", "fs": 100.0, "leads": ["I", "II"]}}
    pre = {"protocol": "paper", "fs": 100, "seconds": 10}
    assert modelmeta.downstream_input(pre) == ModelInput(None, 100.0, 1000)
    assert modelmeta.downstream_input(pre, index).leads == ("I", "II")
    assert modelmeta.downstream_input({**pre, "protocol": "sound"}, index).leads is None
    assert modelmeta.downstream_input({**pre, "fs": 50}, index).leads is None
    assert modelmeta.downstream_input({}) == ModelInput(None, None, None)


def test_a_fine_tune_job_refuses_an_imported_model_that_does_not_fit(tmp_path):
    """Where the plan could not know the model's input (a URL without metadata in the config),
    the first fine-tuning job that meets it refuses it before training."""
    source = tmp_path / "w.pt"
    torch.save(_state_dict(n_samples=64), source)
    _import(tmp_path, source, META)
    shard = _toy_shard(tmp_path / "down.h5", n_samples=80)
    out = tmp_path / "ft"
    with pytest.raises(ValueError, match=r"pretrained model 'lab' \(\S*/w\.pt\) does not fit "
                                         r"downstream set 'toyset': input length: the model "
                                         r"takes 64 samples per lead, toyset's records have 80"):
        train.train(shard, _settings(init_from="pretrained"), metrics_path=out / "metrics.csv",
                    checkpoint_path=out / "model.pt",
                    pretrained=tmp_path / "imported/lab/model.pt")
    assert not out.exists()
    # the same model on records it fits fine-tunes, and its sidecar says where it came from
    fits = _toy_shard(tmp_path / "fits.h5", n_samples=64)
    summary = train.train(fits, _settings(init_from="pretrained"),
                          metrics_path=out / "metrics.csv", checkpoint_path=out / "model.pt",
                          pretrained=tmp_path / "imported/lab/model.pt")
    assert summary["upstream"]["dataset"] == "lab"
    assert summary["upstream"]["imported"]["sha256"] == _sha256(source)


# --------------------------------------------------------------------------------------------
# Planning (dry runs of config.yaml with a model given by file; nothing trains)


def _export(folder: Path, **changes) -> Path:
    """A stand-in model file with a model.json beside it (the plan reads only the sidecar)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lab.pt").write_bytes(b"weights")
    meta = {"arch": "resnet1d18", "classes": ["NORM", "MI"], "leads": LEADS, "fs": 100.0,
            "n_samples": 1000} | changes
    (folder / "lab.json").write_text(json.dumps(meta))
    return folder / "lab.pt"


def _dry_run(tmp_path: Path, models_cfg: dict) -> subprocess.CompletedProcess:
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"pretrained_models": models_cfg}))
    return plan(tmp_path, REPO / "config.yaml", overlay)


def test_a_model_file_is_fine_tuned_on_every_downstream_set_for_its_architecture(tmp_path):
    out = _dry_run(tmp_path, {"lab": {"path": str(_export(tmp_path / "export"))}})
    assert out.returncode == 0, out.stdout + out.stderr
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", out.stdout, re.M)}
    # the paper's 72 fine-tunes, and resnet1d18 from lab on each of the 5 downstream sets
    assert counts["import_model"] == 1 and counts["finetune"] == 72 + 5
    assert counts["pretrain"] == 18 and counts["train_scratch"] == 30


def test_a_model_whose_input_length_does_not_fit_is_refused_when_planning(tmp_path):
    out = _dry_run(tmp_path, {"lab": {"path": str(_export(tmp_path / "x", n_samples=500))}})
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "pretrained model 'lab' (pretrained_models.lab: " in text
    assert ("does not fit downstream set 'ptbxl': input length: the model takes 500 samples per "
            "lead, ptbxl's records have 1000") in text


def test_a_model_named_like_a_dataset_or_with_a_missing_file_is_refused(tmp_path):
    out = _dry_run(tmp_path, {"ptb": {"path": str(_export(tmp_path / "x"))}})
    assert out.returncode != 0 and "'ptb' is the name of a dataset" in out.stdout + out.stderr
    out = _dry_run(tmp_path, {"lab": {"path": str(tmp_path / "nowhere.pt"),
                                      "arch": "resnet1d18"}})
    assert out.returncode != 0
    assert "'pretrained_models.lab.path': no such file" in out.stdout + out.stderr


# --------------------------------------------------------------------------------------------
# End to end: a study fine-tunes a model an earlier study wrote


def _genuine_folder(root: Path) -> dict:
    """The genuine CPSC2018 and Georgia records of ../shared/real-ecg in one folder, with a
    labels CSV (0/1 columns) written from their headers; returns its `records` section."""
    from ecg_transfer.datasets.challenge import (
        CPSC2018_CLASSES,
        GEORGIA_CLASSES,
        diagnosis_codes,
    )
    from ecg_transfer.datasets.wfdb_io import read_header

    class_of = {code: cls for cls, code in (*CPSC2018_CLASSES, *GEORGIA_CLASSES)}
    classes = ["NORM", "AF", "OTHER"]
    rows = []
    for dataset, folder in (("cpsc2018", "cpsc2018_challenge2020"),
                            ("georgia", "georgia_challenge2021")):
        shutil.copytree(REAL / folder, root / folder)
        for header in sorted((root / folder).glob("*.hea")):
            found = {class_of.get(c) for c in diagnosis_codes(read_header(header), dataset)}
            found = {c if c in ("NORM", "AF") else "OTHER" for c in found}
            rows.append({"record_id": header.stem, **{c: int(c in found) for c in classes}})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return {"classes": classes, "labels_csv": "labels.csv"}


@pytest.mark.slow
def test_a_model_an_earlier_study_wrote_is_an_upstream_of_the_next(tmp_path):
    # the earlier study: only as far as its pretrained ResNet1d18 (PTB-XL's data, one job)
    first = tmp_path / "first"
    first.mkdir()
    write_config(first, tiny_config(upstream=["ptbxl"], downstream=["ptb"],
                                    architectures=["resnet1d18"], epochs=1))
    snakemake(first, "results/pretrain/ptbxl/resnet1d18/seed0/model.pt")
    export = tmp_path / "export"
    export.mkdir()
    for name in ("model.pt", "model.json"):
        shutil.copy(first / "results/pretrain/ptbxl/resnet1d18/seed0" / name, export / name)

    # the next study: no dataset pretrained, the file its one upstream, and downstream sets of
    # one's own (issue 20): a generated folder of records with a labels CSV, and the genuine
    # CPSC2018 and Georgia records of ../shared/real-ecg where that folder is there; MELEP on
    study = tmp_path / "next"
    study.mkdir()
    own = {"clinic": demo_folder(tmp_path / "clinic", tmp_path / "clinic" / "labels.csv")}
    if REAL.is_dir():
        own["genuine"] = _genuine_folder(tmp_path / "genuine")
    cfg = tiny_config(upstream=[], downstream=["ptb", *own],
                      architectures=["resnet1d18", "gru"], epochs=2)
    for name, records in own.items():
        cfg["datasets"][name] = {
            "local_dir": str(tmp_path / name), "records": records,
            "preprocess": {"protocol": "sound", "fs": 50, "seconds": 4},  # what the model takes
            "split": {"test_size": 0.33, "random_state": 1, "stratify": False}}
    cfg["pretrained_models"] = {"lab": {"path": str(export / "model.pt")}}
    cfg["melep"] = {"enabled": True}
    cfg["results"] = {"n_boot": 1000}
    write_config(study, cfg)
    snakemake(study)
    assert not (study / "results/pretrain").exists()
    table = pd.read_csv(study / "results/tables/f1.csv")
    ft = table[table.regime == "finetune"]
    assert set(ft.upstream) == {"lab"} and set(ft.arch) == {"resnet1d18"}
    assert sorted(ft.downstream) == sorted(["ptb", *own])
    f1_md = (study / "results/tables/f1.md").read_text()
    assert "ft:lab" in f1_md and all(f"## {name}" in f1_md for name in own)
    claims = json.loads((study / "results/claims.json").read_text())["claims"]
    assert any(c["upstreams"] == ["lab"] for c in claims)
    assert "Upstreams: lab." in (study / "results/claims.md").read_text()
    melep = pd.read_csv(study / "results/tables/melep.csv")
    assert set(melep.upstream) == {"lab"} and len(melep) == 1 + len(own)
    log = (study / "logs/finetune/lab/ptb/resnet1d18/seed0.log").read_text()
    assert "initialised from pretrained checkpoint results/imported/lab/model.pt" in log

    # nothing left to do; another file under the same name re-runs its fine-tunes and what
    # reads them, nothing else
    assert scheduled_jobs(study) == {}
    original = (export / "model.pt").read_bytes()
    changed = torch.load(export / "model.pt", weights_only=True)
    changed["model"]["fc1.bias"] += 0.01
    torch.save(changed, export / "model.pt")
    n_down = 1 + len(own)
    assert scheduled_jobs(study) == {"import_model": 1, "finetune": n_down,
                                     "transferability": n_down, "aggregate": 1,
                                     "plot_curves": n_down, "results": 1}
    # moving the file (the same bytes) re-runs nothing
    (export / "model.pt").write_bytes(original)
    moved = tmp_path / "moved"
    shutil.copytree(export, moved)
    cfg["pretrained_models"]["lab"]["path"] = str(moved / "model.pt")
    write_config(study, cfg)
    assert scheduled_jobs(study) == {}
