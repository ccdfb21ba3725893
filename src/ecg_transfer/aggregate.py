"""Turn the per-job ``metrics.csv`` logs into the study's tables and learning-curve figures.

Every training job (pretraining on an upstream set, fine-tuning a pretrained model on a
downstream set, or training from scratch on it) logs one row per epoch. The paper reports, for
each job, the best test F1 over epochs; the tables do the same (the *paper selection*) so the
numbers are comparable, and say in their header why that flatters them. Beside it they give the
*validation selection*: the test F1 at the epoch with the best validation F1, a held-out
estimate.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ecg_transfer.fileio import atomic_path
from ecg_transfer.metrics import EPOCH_COLUMNS, SELECTIONS, VALIDATION_COLUMNS, select_epochs

__all__ = ["REGIMES", "SUMMARY_COLUMNS", "collect", "plot_curves", "write_tables"]

#: Columns every training job's ``metrics.csv`` must have and fill (validation columns may be
#: empty, where a job had no validation split; a log may have more columns).
REQUIRED_COLUMNS = tuple(c for c in EPOCH_COLUMNS
                         if c not in VALIDATION_COLUMNS and c != "test_macro_f1")
#: Filled on every row, or all three empty on every row: a model pretrained on all records
#: (``pretrain_split: full``) has no test split to score.
TEST_COLUMNS = ("test_loss", "test_f1", "baseline_f1")
REGIMES = ("scratch", "finetune", "pretrain")
#: Columns of :func:`collect`'s result, in order.
SUMMARY_COLUMNS = (
    "downstream", "arch", "regime", "upstream", "seed",
    "best_test_f1", "best_epoch", "val_selected_test_f1", "val_selected_epoch",
    "final_test_f1", "epochs", "baseline_f1",
)
#: The summary column holding each selection's test F1 (selections: metrics.SELECTIONS).
SELECTION_COLUMNS = {"paper": "best_test_f1", "validation": "val_selected_test_f1"}
_JOB_KEYS = ("regime", "upstream", "downstream", "arch", "seed", "metrics")

_HEADER = """\
# Weighted F1: fine-tuning vs training from scratch

Every comparison is given under two model selections, labelled:

* **paper selection**: the **best test F1 over epochs**, which is how the paper selects its
  numbers. That selection is made on the test set itself, so these numbers (scratch and
  fine-tuned alike) are optimistically biased; read them as the paper's protocol, not as
  held-out estimates.
* **validation selection**: the test F1 at the epoch with the best F1 on a validation split
  (the shard's own, or one held out from train). The test set plays no part in the choice, so
  these are honest held-out estimates. `—` where a job had no validation split.

* F1 is the support-weighted F1 over classes at a 0.5 probability threshold.
* With several seeds a cell reads `mean ± std` (sample std over seeds).
* `ft:<upstream>` is fine-tuned from a model pretrained on `<upstream>`, or from the model
  given by file under that name (config key `pretrained_models`: one architecture, `—` in the
  others' rows); `Δ <upstream>` is its mean minus the scratch mean (positive: transfer helped).
* `constant baseline` is the best weighted F1 of a predictor that ignores the ECG
  (all-negative, all-positive or train-majority per class) on the same test split.
"""


# --------------------------------------------------------------------------------------------
# Reading


def _read_metrics(path: Path) -> pd.DataFrame:
    """Read and check one job's log; every defect is reported with the file's path."""
    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: metrics file does not exist") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot read metrics file ({err})") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable metrics CSV ({err})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing}; expected at least {list(REQUIRED_COLUMNS)}"
        )
    if df.empty:
        raise ValueError(f"{path}: has a header but no epochs")
    untested = all(df[c].isna().all() for c in TEST_COLUMNS)  # a job without a test split
    for col in REQUIRED_COLUMNS:
        values = pd.to_numeric(df[col], errors="coerce")
        if untested and col in TEST_COLUMNS:
            df[col] = values
            continue
        if values.isna().any():
            row = int(values.isna().to_numpy().argmax()) + 2  # 1-based, after the header
            raise ValueError(f"{path}: column {col!r} has a missing or non-numeric value "
                             f"on line {row}")
        df[col] = values
    if not np.array_equal(df["epoch"].to_numpy(), np.arange(1, len(df) + 1)):
        raise ValueError(f"{path}: column 'epoch' must be 1, 2, ..., {len(df)} in order "
                         "(one row per epoch; a restarted job may have appended twice)")
    for col in VALIDATION_COLUMNS:
        raw = df[col] if col in df.columns else pd.Series(np.nan, index=df.index)
        values = pd.to_numeric(raw, errors="coerce")
        bad = values.isna() & raw.notna()
        if bad.any():
            raise ValueError(f"{path}: column {col!r} has a non-numeric value on line "
                             f"{int(bad.to_numpy().argmax()) + 2} (leave it empty if unknown)")
        df[col] = values
    for col in ("test_f1", "baseline_f1", "val_f1"):
        if not df[col].dropna().between(0.0, 1.0).all():
            raise ValueError(f"{path}: column {col!r} must lie in [0, 1] (a fraction, not %)")
    if df["baseline_f1"].nunique(dropna=False) != 1:
        raise ValueError(f"{path}: column 'baseline_f1' must hold the same value on every row")
    df["epoch"] = df["epoch"].astype(int)
    return df


def _check_job(job: Mapping[str, object], index: int) -> dict[str, object]:
    """Validate one job description and normalise ``upstream`` (pretrain: the dataset itself)."""
    missing = [k for k in _JOB_KEYS if k not in job]
    if missing:
        raise ValueError(f"job {index}: missing key(s) {missing}; expected {list(_JOB_KEYS)}")
    regime, upstream, downstream = job["regime"], job["upstream"], job["downstream"]
    if regime not in REGIMES:
        raise ValueError(f"job {index}: regime is {regime!r}, expected one of {list(REGIMES)}")
    if regime == "scratch" and upstream is not None:
        raise ValueError(f"job {index}: a scratch job has no upstream, got {upstream!r}")
    if regime == "finetune" and not isinstance(upstream, str):
        raise ValueError(f"job {index}: a finetune job needs an upstream dataset name")
    if regime == "pretrain":
        if upstream not in (None, downstream):
            raise ValueError(f"job {index}: a pretrain job's upstream must be its dataset "
                             f"{downstream!r} (or None), got {upstream!r}")
        upstream = downstream
    seed = job["seed"]
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"job {index}: seed must be an integer, got {seed!r}")
    return {**job, "upstream": upstream, "seed": int(seed)}


def _normalise_jobs(jobs: Sequence[Mapping[str, object]] | pd.DataFrame) -> list[dict]:
    if isinstance(jobs, pd.DataFrame):
        records = jobs.astype(object).where(jobs.notna(), None).to_dict("records")
    else:
        records = list(jobs)
    checked = [_check_job(job, i) for i, job in enumerate(records)]
    seen: dict[tuple, int] = {}
    for i, job in enumerate(checked):
        key = tuple(job[k] for k in ("downstream", "arch", "regime", "upstream", "seed"))
        if key in seen:
            raise ValueError(f"jobs {seen[key]} and {i} are the same job {key}")
        seen[key] = i
    return checked


def collect(jobs: Sequence[Mapping[str, object]]) -> pd.DataFrame:
    """One summary row per job, in the order given (see :data:`SUMMARY_COLUMNS`).

    ``best_epoch`` is the first epoch reaching the best test F1 (paper selection) and
    ``val_selected_epoch`` the first reaching the best validation F1 (validation selection,
    with the test F1 of that epoch; NaN without validation scores), so ties resolve towards
    shorter training, like an early-stopping rule would. The engine picks the same epochs
    (both use :func:`metrics.select_epochs`).
    """
    rows = []
    for job in _normalise_jobs(jobs):
        log = _read_metrics(Path(str(job["metrics"])))
        chosen = select_epochs(log.to_dict("records"))
        rows.append({
            "downstream": job["downstream"],
            "arch": job["arch"],
            "regime": job["regime"],
            "upstream": job["upstream"],
            "seed": job["seed"],
            "best_test_f1": np.nan if chosen["best_epoch"] is None
            else float(chosen["best_test_f1"]),
            "best_epoch": pd.NA if chosen["best_epoch"] is None else chosen["best_epoch"],
            "val_selected_test_f1": np.nan if chosen["val_selected_test_f1"] is None
            else float(chosen["val_selected_test_f1"]),
            "val_selected_epoch": pd.NA if chosen["val_selected_epoch"] is None
            else chosen["val_selected_epoch"],
            "final_test_f1": float(log["test_f1"].iloc[-1]),
            "epochs": len(log),
            "baseline_f1": float(log["baseline_f1"].iloc[0]),
        })
    df = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    df["val_selected_epoch"] = df["val_selected_epoch"].astype("Int64")
    df["best_epoch"] = df["best_epoch"].astype("Int64")
    return df


# --------------------------------------------------------------------------------------------
# Writing


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same directory, so readers never see half a file."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _arch_order(archs: Sequence[str], order: Sequence[str] = ()) -> list[str]:
    """The architectures present, in ``order`` (the config's list), then any others sorted."""
    present = set(archs)
    known = [a for a in order if a in present]
    return known + sorted(present - set(known))


def _cell(values: pd.Series) -> str:
    values = values.dropna()  # a job without a validation split has no validation selection
    if values.empty:
        return "—"
    if len(values) == 1:
        return f"{values.iloc[0]:.3f}"
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


def _number(value: float) -> str:
    """A table cell; `—` where there is no number (a job without a test split)."""
    return "—" if pd.isna(value) else f"{value:.3f}"


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _downstream_table(df: pd.DataFrame, column: str, upstreams: list[str],
                      arch_order: Sequence[str]) -> str:
    header = ["arch", "scratch"]
    for up in upstreams:
        header += [f"ft:{up}", f"Δ {up}"]
    header.append("constant baseline")
    rows = []
    for arch in _arch_order(df["arch"].tolist(), arch_order):
        sub = df[df["arch"] == arch]
        scratch = sub.loc[sub["regime"] == "scratch", column].dropna()
        row = [arch, _cell(scratch)]
        for up in upstreams:
            ft = sub.loc[(sub["regime"] == "finetune") & (sub["upstream"] == up), column]
            ft = ft.dropna()
            delta = "—" if ft.empty or scratch.empty else f"{ft.mean() - scratch.mean():+.3f}"
            row += [_cell(ft), delta]
        row.append(_number(sub["baseline_f1"].mean()))
        rows.append(row)
    return _markdown_table(header, rows)


def _downstream_section(df: pd.DataFrame, downstream: str, arch_order: Sequence[str]) -> str:
    upstreams = sorted(df.loc[df["regime"] == "finetune", "upstream"].unique())
    seeds = ", ".join(str(s) for s in sorted(df["seed"].unique()))
    parts = [f"## {downstream}\n\nSeeds: {seeds}.\n"]
    for name, (_, label) in SELECTIONS.items():
        column = SELECTION_COLUMNS[name]
        parts.append(f"**{name.capitalize()} selection**: {label}.\n\n"
                     f"{_downstream_table(df, column, upstreams, arch_order)}\n")
    return "\n".join(parts)


def _pretrain_section(df: pd.DataFrame, arch_order: Sequence[str]) -> str:
    datasets = sorted(df["downstream"].unique())
    parts = ["## Upstream pretraining\n\n"
             "The models that the fine-tuned ones start from, scored on each upstream dataset's "
             "own test split. Which epoch's weights were passed on is the config's "
             "`training.selection` (under `paper`, as in the paper's pretraining: the epoch of "
             "best unweighted mean of per-class test F1). `—` for a model pretrained on all "
             "records (`pretrain_split: full`), which has no test split left to score. A "
             "model given by file (`pretrained_models`) has no row: the workflow did not "
             "pretrain it, so it has no upstream scores.\n"]
    for name, (_, label) in SELECTIONS.items():
        column = SELECTION_COLUMNS[name]
        rows = [[arch] + [_cell(df.loc[(df["arch"] == arch) & (df["downstream"] == d), column])
                          for d in datasets]
                for arch in _arch_order(df["arch"].tolist(), arch_order)]
        rows.append(["constant baseline"] + [
            _number(df.loc[df["downstream"] == d, "baseline_f1"].mean()) for d in datasets
        ])
        parts.append(f"**{name.capitalize()} selection**: {label}.\n\n"
                     f"{_markdown_table(['arch', *datasets], rows)}\n")
    return "\n".join(parts)


def write_tables(df: pd.DataFrame, csv_path: str | os.PathLike, md_path: str | os.PathLike,
                 *, arch_order: Sequence[str] = ()) -> None:
    """Write :func:`collect`'s rows as ``csv_path`` and the per-dataset comparison as ``md_path``.

    The CSV keeps every job (``regime`` tells pretraining apart) sorted into a stable order so
    reruns diff cleanly. The markdown has, per downstream dataset, one table per model selection
    (paper, validation) and a separate section for pretraining, whose test splits are not the
    downstream ones. Architectures appear in ``arch_order`` (the config's list), then sorted.
    """
    missing = [c for c in SUMMARY_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"summary table lacks column(s) {missing}; pass collect()'s result")
    order = {a: i for i, a in enumerate(_arch_order(df["arch"].tolist(), arch_order))}
    table = df.loc[:, list(SUMMARY_COLUMNS)].copy()
    table["_regime"] = table["regime"].map({r: i for i, r in enumerate(REGIMES)})
    table["_arch"] = table["arch"].map(order)
    table["_upstream"] = table["upstream"].fillna("")
    table = (table.sort_values(["_regime", "downstream", "_arch", "_upstream", "seed"],
                               kind="stable")
             .drop(columns=["_regime", "_arch", "_upstream"]))
    _atomic_write_bytes(Path(csv_path), table.to_csv(index=False, float_format="%.6g").encode())

    transfer = table[table["regime"].isin(("scratch", "finetune"))]
    sections = [_HEADER]
    sections += [_downstream_section(transfer[transfer["downstream"] == d], d, arch_order)
                 for d in sorted(transfer["downstream"].unique())]
    pretrain = table[table["regime"] == "pretrain"]
    if not pretrain.empty:
        sections.append(_pretrain_section(pretrain, arch_order))
    _atomic_write_bytes(Path(md_path), "\n".join(sections).encode())


# --------------------------------------------------------------------------------------------
# Figures


def _mean_curve(logs: list[pd.DataFrame]) -> pd.Series:
    """Mean test F1 per epoch over seeds (epochs some seeds lack average the others)."""
    return pd.concat(logs).groupby("epoch")["test_f1"].mean()


def plot_curves(jobs: Sequence[Mapping[str, object]] | pd.DataFrame,
                path: str | os.PathLike, *, dpi: int, arch_order: Sequence[str] = ()) -> Path:
    """Test-F1 learning curves of one downstream dataset, one panel per architecture.

    Takes the job descriptions (as for :func:`collect`, a list of dicts or a DataFrame of them)
    of one downstream dataset, not the summary, because curves need every epoch. Pretraining
    jobs are skipped: they have no scratch counterpart to compare with. Each regime has one
    colour in every panel (scratch black, each upstream its own); the legend sits below the
    panels so that it never covers a curve. Drawn on an Agg canvas without pyplot, so no
    global backend is touched. ``dpi`` is the PNG resolution (config key ``plots.dpi``).
    """
    if not isinstance(dpi, int) or isinstance(dpi, bool) or dpi < 10:
        raise ValueError(f"plots.dpi: expected an integer of at least 10, got {dpi!r}")
    checked = [j for j in _normalise_jobs(jobs) if j["regime"] != "pretrain"]
    downstreams = sorted({str(j["downstream"]) for j in checked})
    if len(downstreams) != 1:
        raise ValueError(f"plot_curves draws one downstream dataset's jobs, got {downstreams}")
    downstream = downstreams[0]
    for job in checked:
        job["log"] = _read_metrics(Path(str(job["metrics"])))
    upstreams = sorted({str(j["upstream"]) for j in checked if j["regime"] == "finetune"})
    colours = {up: f"C{i % 10}" for i, up in enumerate(upstreams)}
    archs = _arch_order([str(j["arch"]) for j in checked], arch_order)
    ncols = min(3, len(archs))
    nrows = math.ceil(len(archs) / ncols)
    fig = Figure(figsize=(4.5 * ncols, 3.2 * nrows + 0.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, arch in zip(axes, archs, strict=False):
        panel = [j for j in checked if j["arch"] == arch]
        scratch = [j["log"] for j in panel if j["regime"] == "scratch"]
        if scratch:
            curve = _mean_curve(scratch)
            ax.plot(curve.index, curve.to_numpy(), color="black", linewidth=2.5,
                    label="scratch")
        for up in upstreams:
            logs = [j["log"] for j in panel if j["upstream"] == up]
            if logs:
                curve = _mean_curve(logs)
                ax.plot(curve.index, curve.to_numpy(), color=colours[up], linewidth=1.3,
                        label=f"fine-tuned from {up}")
        baseline = float(np.mean([j["log"]["baseline_f1"].iloc[0] for j in panel]))
        ax.axhline(baseline, color="grey", linestyle="--", linewidth=1,
                   label="constant predictor")
        ax.set_title(arch)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test F1 (weighted)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[len(archs):]:
        ax.set_visible(False)
    legend: dict[str, object] = {}  # one entry per regime, whichever panel has it
    for ax in axes[: len(archs)]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    fig.legend(list(legend.values()), list(legend), loc="outside lower center",
               ncols=min(len(legend), 4), fontsize="small")
    fig.suptitle(f"{downstream}: test F1 per epoch (mean over seeds)")
    path = Path(path)
    _write_figure(fig, path, dpi)
    return path


def _write_figure(fig: Figure, path: Path, dpi: int) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
