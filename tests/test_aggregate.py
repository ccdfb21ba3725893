"""Unit tests of aggregation: per-job metrics.csv -> summary, tables and figures.

The fixtures are fake ``metrics.csv`` files: that file is this module's input format, so writing
it by hand is the honest way to pin what the tables must say.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ecg_transfer.aggregate import SUMMARY_COLUMNS, collect, plot_curves, write_tables

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write_metrics(path: Path, test_f1: list[float], baseline: float = 0.35,
                   val_f1: list[float] | None = None) -> str:
    """The engine's columns; without ``val_f1`` the validation columns are left empty."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(test_f1)
    val = [None] * n if val_f1 is None else val_f1
    pd.DataFrame({
        "epoch": range(1, n + 1),
        "train_loss": [1.0 / (e + 1) for e in range(n)],
        "val_loss": [None if v is None else 1.1 / (e + 1) for e, v in enumerate(val)],
        "val_f1": val,
        "test_loss": [1.2 / (e + 1) for e in range(n)],
        "test_f1": test_f1,
        "seconds": [2.5] * n,
        "baseline_f1": [baseline] * n,
    }).to_csv(path, index=False)
    return str(path)


def _job(tmp: Path, regime: str, upstream: str | None, downstream: str, arch: str, seed: int,
         test_f1: list[float], baseline: float = 0.35, val_f1: list[float] | None = None
         ) -> dict:
    path = tmp / regime / str(upstream) / downstream / arch / str(seed) / "metrics.csv"
    return {"regime": regime, "upstream": upstream, "downstream": downstream, "arch": arch,
            "seed": seed, "metrics": _write_metrics(path, test_f1, baseline, val_f1)}


@pytest.fixture
def jobs(tmp_path: Path) -> list[dict]:
    t = tmp_path / "runs"
    return [
        # cpsc, resnet1d18: best 0.7 first at epoch 2 (tie with epoch 3); final 0.6;
        # best validation F1 first at epoch 3 (tie with 4), where test F1 is 0.7
        _job(t, "scratch", None, "cpsc", "resnet1d18", 0, [0.5, 0.7, 0.7, 0.6],
             val_f1=[0.4, 0.5, 0.6, 0.6]),
        # validation picks epoch 1 (test 0.6)
        _job(t, "scratch", None, "cpsc", "resnet1d18", 1, [0.6, 0.8, 0.75],
             val_f1=[0.9, 0.8, 0.7]),
        # validation picks epoch 2 (test 0.81); the other seed has no validation split
        _job(t, "finetune", "ptbxl", "cpsc", "resnet1d18", 0, [0.72, 0.81], val_f1=[0.5, 0.55]),
        _job(t, "finetune", "ptbxl", "cpsc", "resnet1d18", 1, [0.83, 0.79]),
        _job(t, "finetune", "georgia", "cpsc", "resnet1d18", 0, [0.6, 0.74]),
        # cpsc, gru: scratch only (listed first to check the the config's order is used)
        _job(t, "scratch", None, "cpsc", "gru", 0, [0.4, 0.45]),
        # a second downstream set
        _job(t, "scratch", None, "ptb", "resnet1d18", 0, [0.5, 0.6], baseline=0.2),
        _job(t, "finetune", "ptbxl", "ptb", "resnet1d18", 0, [0.7, 0.65], baseline=0.2),
        # upstream pretraining
        _job(t, "pretrain", None, "ptbxl", "resnet1d18", 0, [0.6, 0.66, 0.64], baseline=0.3),
    ]


def test_collect_best_epoch_and_f1(jobs: list[dict]) -> None:
    df = collect(jobs)
    assert list(df.columns) == list(SUMMARY_COLUMNS)
    assert len(df) == len(jobs)
    first = df.iloc[0]
    assert (first["best_test_f1"], first["best_epoch"]) == (0.7, 2)  # first of the tied epochs
    assert (first["final_test_f1"], first["epochs"], first["baseline_f1"]) == (0.6, 4, 0.35)
    assert (first["val_selected_test_f1"], first["val_selected_epoch"]) == (0.7, 3)
    assert (df.iloc[1]["val_selected_test_f1"], df.iloc[1]["val_selected_epoch"]) == (0.6, 1)
    assert pd.isna(df.iloc[3]["val_selected_test_f1"]) and pd.isna(df.iloc[3]["val_selected_epoch"])
    assert pd.isna(first["upstream"])
    ft = df.iloc[3]
    assert (ft["upstream"], ft["best_test_f1"], ft["best_epoch"]) == ("ptbxl", 0.83, 1)
    pretrain = df.iloc[-1]
    assert (pretrain["regime"], pretrain["upstream"], pretrain["downstream"]) == (
        "pretrain", "ptbxl", "ptbxl")
    assert (pretrain["best_test_f1"], pretrain["best_epoch"]) == (0.66, 2)


def test_write_tables(jobs: list[dict], tmp_path: Path) -> None:
    csv_path, md_path = tmp_path / "tables" / "f1.csv", tmp_path / "tables" / "f1.md"
    write_tables(collect(jobs), csv_path, md_path, arch_order=["resnet1d18", "gru"])

    table = pd.read_csv(csv_path)
    assert len(table) == len(jobs)
    assert list(table["regime"].unique()) == ["scratch", "finetune", "pretrain"]

    first = table.iloc[0]
    assert (first["val_selected_test_f1"], first["val_selected_epoch"]) == (0.7, 3)
    assert table["val_selected_epoch"].isna().sum() == len(jobs) - 3  # empty cells, not 0

    md = md_path.read_text()
    assert "best test F1 over epochs" in md and "test set itself" in md
    cpsc = md.split("## cpsc")[1].split("## ")[0]
    paper, validation = cpsc.split("**Validation selection**")
    assert "**Paper selection**: best test F1 over epochs" in paper
    assert validation.startswith(": test F1 at the epoch of best validation F1")
    cpsc = paper
    # validation selection: scratch mean(0.7, 0.6) = 0.65, std 0.0707; ft:ptbxl only seed 0
    # has a validation split: 0.81, Δ = +0.160; ft:georgia none: —
    assert "| resnet1d18 | 0.650 ± 0.071 | — | — | 0.810 | +0.160 | 0.350 |" in validation
    assert "| gru | — | — | — | — | — | 0.350 |" in validation
    assert ("| arch | scratch | ft:georgia | Δ georgia | ft:ptbxl | Δ ptbxl | constant baseline |"
            in cpsc)
    # scratch: mean(0.7, 0.8) = 0.75, sample std = sqrt(2 * 0.05^2 / 1) = 0.0707
    # ft:ptbxl: mean(0.81, 0.83) = 0.82, std = sqrt(2 * 0.01^2 / 1) = 0.0141 ; Δ = 0.82 - 0.75
    # ft:georgia: one seed, 0.74 ; Δ = 0.74 - 0.75 = -0.010
    assert ("| resnet1d18 | 0.750 ± 0.071 | 0.740 | -0.010 | 0.820 ± 0.014 | +0.070 | 0.350 |"
            in cpsc)
    assert "| gru | 0.450 | — | — | — | — | 0.350 |" in cpsc
    assert cpsc.index("| resnet1d18 |") < cpsc.index("| gru |")  # the config's order
    ptb = md.split("## ptb\n")[1].split("## ")[0]
    # 0.7 - 0.6 = +0.100
    assert "| resnet1d18 | 0.600 | 0.700 | +0.100 | 0.200 |" in ptb
    pretrain = md.split("## Upstream pretraining")[1]
    pre_paper, pre_validation = pretrain.split("**Validation selection**")
    assert "| arch | ptbxl |" in pre_paper
    assert "| resnet1d18 | 0.660 |" in pre_paper
    assert "| constant baseline | 0.300 |" in pre_paper
    assert "| resnet1d18 | — |" in pre_validation
    assert sorted(p.name for p in csv_path.parent.iterdir()) == ["f1.csv", "f1.md"]  # no temps


def _of(jobs: list[dict], downstream: str) -> list[dict]:
    return [j for j in jobs if j["downstream"] == downstream]


def test_plot_curves_draws_one_downstream_dataset_as_a_png(jobs: list[dict], tmp_path: Path
                                                            ) -> None:
    out = tmp_path / "figures" / "curves_cpsc.png"
    assert plot_curves(_of(jobs, "cpsc"), out, dpi=60) == out
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in out.parent.iterdir()) == ["curves_cpsc.png"]  # no temps
    # a DataFrame of job descriptions works as well
    again = tmp_path / "again.png"
    assert plot_curves(pd.DataFrame(_of(jobs, "ptb")), again, dpi=60) == again
    with pytest.raises(ValueError, match="one downstream dataset"):
        plot_curves(jobs, tmp_path / "both.png", dpi=60)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()  # IHDR: width and height, big-endian, right after the magic
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_plot_curves_dpi_sets_the_resolution(jobs: list[dict], tmp_path: Path) -> None:
    low = plot_curves(_of(jobs, "cpsc"), tmp_path / "low.png", dpi=50)
    high = plot_curves(_of(jobs, "cpsc"), tmp_path / "high.png", dpi=100)
    assert _png_size(high) == (2 * _png_size(low)[0], 2 * _png_size(low)[1])
    with pytest.raises(ValueError, match=r"plots\.dpi"):
        plot_curves(_of(jobs, "cpsc"), tmp_path / "bad.png", dpi=0)


HEADER = "epoch,train_loss,test_loss,test_f1,seconds,baseline_f1\n"  # a log without val columns
BAD_METRICS = {
    "empty file": ("", "not a readable metrics CSV"),
    "header only": (HEADER, "no epochs"),
    "missing column": ("epoch,train_loss,test_loss,seconds,baseline_f1\n1,1,1,1,0.3\n",
                       "missing column.*test_f1"),
    "non-numeric": (HEADER + "1,1,1,0.5,1,0.3\n2,1,1,oops,1,0.3\n", "'test_f1'.*line 3"),
    "empty cell": (HEADER + "1,1,1,,1,0.3\n", "'test_f1'.*line 2"),
    "appended twice": (HEADER + "1,1,1,0.5,1,0.3\n1,1,1,0.5,1,0.3\n", "'epoch' must be 1, 2"),
    "varying baseline": (HEADER + "1,1,1,0.5,1,0.3\n2,1,1,0.5,1,0.4\n",
                         "same value on every row"),
    "percent": (HEADER + "1,1,1,55.0,1,0.3\n", "must lie in"),
    "val percent": ("epoch,train_loss,val_loss,val_f1,test_loss,test_f1,seconds,baseline_f1\n"
                    "1,1,1,70,1,0.5,1,0.3\n", "'val_f1' must lie in"),
    "val text": ("epoch,train_loss,val_loss,val_f1,test_loss,test_f1,seconds,baseline_f1\n"
                 "1,1,1,0.5,1,0.5,1,0.3\n2,1,1,n/a?,1,0.5,1,0.3\n", "'val_f1'.*line 3"),
}


@pytest.mark.parametrize("case", BAD_METRICS)
def test_collect_rejects_malformed_metrics(case: str, tmp_path: Path) -> None:
    content, message = BAD_METRICS[case]
    path = tmp_path / "bad" / "metrics.csv"
    path.parent.mkdir()
    path.write_text(content)
    job = {"regime": "scratch", "upstream": None, "downstream": "cpsc", "arch": "gru",
           "seed": 0, "metrics": str(path)}
    with pytest.raises(ValueError, match=message) as err:
        collect([job])
    assert str(path) in str(err.value)


def test_collect_rejects_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "metrics.csv"
    job = {"regime": "scratch", "upstream": None, "downstream": "cpsc", "arch": "gru",
           "seed": 0, "metrics": str(path)}
    with pytest.raises(ValueError, match="does not exist") as err:
        collect([job])
    assert str(path) in str(err.value)


def test_collect_rejects_bad_job_descriptions(jobs: list[dict]) -> None:
    with pytest.raises(ValueError, match="regime"):
        collect([{**jobs[0], "regime": "transfer"}])
    with pytest.raises(ValueError, match="scratch job has no upstream"):
        collect([{**jobs[0], "upstream": "ptbxl"}])
    with pytest.raises(ValueError, match="needs an upstream"):
        collect([{**jobs[2], "upstream": None}])
    with pytest.raises(ValueError, match="missing key"):
        collect([{k: v for k, v in jobs[0].items() if k != "seed"}])
    with pytest.raises(ValueError, match="same job"):
        collect([jobs[0], dict(jobs[0])])
