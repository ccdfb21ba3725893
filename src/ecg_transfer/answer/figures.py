"""Every figure of the answer: the gain heat map and the size curve of the transfer tables, the
MELEP scatter and the robustness curves.

Figures draw the tables; they decide nothing. An upstream has the same colour and an
architecture the same marker in every figure; a figure with nothing to show is still written,
saying why, so a rule can declare it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import NullFormatter

from ecg_transfer.aggregate import _arch_order, _write_figure
from ecg_transfer.answer.formatting import maybe_interval, percent
from ecg_transfer.answer.robustness import CLEAN, is_lead_kind, mild_to_harsh
from ecg_transfer.answer.transferability import ALL_ARCHS
from ecg_transfer.metrics import SELECTIONS

__all__ = [
    "MARKERS",
    "check_dpi",
    "empty_figure",
    "plot_gain_heatmap",
    "plot_melep_scatter",
    "plot_robustness",
    "plot_size_curve",
    "upstream_colours",
]


def check_dpi(dpi: int) -> None:
    if not isinstance(dpi, int) or isinstance(dpi, bool) or dpi < 10:
        raise ValueError(f"plots.dpi: expected an integer of at least 10, got {dpi!r}")


def upstream_colours(upstreams: Sequence[str]) -> dict[str, str]:
    """One colour per upstream, by its place among all the run's upstreams in sorted order,
    so an upstream has the same colour in every figure of this module."""
    return {up: f"C{i % 10}" for i, up in enumerate(sorted(upstreams))}


def empty_figure(path: Path, dpi: int, message: str) -> Path:
    fig = Figure(figsize=(6, 1.5), layout="constrained")
    FigureCanvasAgg(fig)
    fig.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    _write_figure(fig, path, dpi)
    return path


def plot_gain_heatmap(table: pd.DataFrame, path: str | os.PathLike, *, dpi: int,
                      selection: str, arch_order: Sequence[str] = (),
                      upstreams: Sequence[str] = ()) -> Path:
    """Δ F1 as an upstream x downstream heat map, one panel per architecture.

    Colour is Δ on a diverging scale centred at 0 and symmetric (red: fine-tuning helped, blue:
    it hurt); each cell prints Δ, and a bold border and ``*`` mark cells whose interval
    excludes 0. Downstream sets run from the smallest training split to the largest, so the
    paper's claim (gain shrinking with size) reads left to right. Upstream labels carry the
    upstream colours of :func:`plot_size_curve`. ``table`` is :func:`transfer_table`'s result;
    ``upstreams`` (default: the table's) fixes the colours across figures.
    """
    check_dpi(dpi)
    path = Path(path)
    if table.empty:
        return empty_figure(path, dpi, f"No scratch/fine-tuned pairing makes the {selection} "
                                       "selection in this run.")
    colours = upstream_colours(list(upstreams) or table["upstream"].unique().tolist())
    ups = sorted(table["upstream"].unique())
    n_train = table.groupby("downstream")["n_train"].first()
    downs = sorted(n_train.index, key=lambda d: (n_train[d], d))
    archs = _arch_order(table["arch"].tolist(), arch_order)
    extent = max(float(table["delta"].abs().max()), 0.01)
    norm = Normalize(vmin=-extent, vmax=extent)
    cmap = colormaps["RdBu_r"].with_extremes(bad="white")
    ncols = min(3, len(archs))
    nrows = math.ceil(len(archs) / ncols)
    fig = Figure(figsize=(ncols * (1.1 * len(downs) + 1.8), nrows * (0.6 * len(ups) + 1.6) + 1),
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    image = None
    for ax, arch in zip(axes, archs, strict=False):
        sub = table[table["arch"] == arch].set_index(["upstream", "downstream"])
        values = np.full((len(ups), len(downs)), np.nan)
        for i, up in enumerate(ups):
            for j, down in enumerate(downs):
                if (up, down) not in sub.index:
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///",
                                           edgecolor="#b0b0b0", linewidth=0))
                    continue
                row = sub.loc[(up, down)]
                values[i, j] = row["delta"]
                strong = bool(row["excludes_zero"])
                text_colour = "white" if abs(row["delta"]) > 0.6 * extent else "black"
                ax.text(j, i, f"{row['delta']:+.2f}" + ("*" if strong else ""), ha="center",
                        va="center", fontsize=8, color=text_colour,
                        fontweight="bold" if strong else "normal")
                if strong:
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False,
                                           edgecolor="black", linewidth=2))
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, aspect="auto")
        ax.set_xticks(range(len(downs)),
                      [f"{d}\n(n={n_train[d]})" for d in downs], fontsize=8)
        ax.set_yticks(range(len(ups)), ups, fontsize=8)
        for label, up in zip(ax.get_yticklabels(), ups, strict=True):
            label.set_color(colours.get(up, "black"))
        ax.set_xlabel("downstream (training records)")
        ax.set_ylabel("upstream")
        ax.set_title(arch)
    for ax in axes[len(archs):]:
        ax.set_visible(False)
    fig.colorbar(image, ax=axes[: len(archs)].tolist(), label="Δ F1 (fine-tuned - scratch)",
                 shrink=0.9)
    level = percent(float(table["level"].iloc[0]))
    fig.legend([Rectangle((0, 0), 1, 1, fill=False, edgecolor="black", linewidth=2),
                Rectangle((0, 0), 1, 1, fill=False, hatch="///", edgecolor="#b0b0b0")],
               [f"* / bold border: the {level} interval of Δ excludes 0", "no pairing"],
               loc="outside lower center", ncols=2, fontsize="small")
    fig.suptitle(f"Δ F1 from fine-tuning ({selection} selection)")
    _write_figure(fig, path, dpi)
    return path


#: One marker per architecture, by its place in the architecture order, in every figure.
MARKERS = "osD^vPXh<>"


def plot_size_curve(table: pd.DataFrame, path: str | os.PathLike, *, dpi: int, selection: str,
                    arch_order: Sequence[str] = (), upstreams: Sequence[str] = ()) -> Path:
    """Δ F1 with its interval against the training-set size (log x), one panel per downstream.

    One line per architecture (marker) and upstream (colour, as in every figure here); a
    hollow star marks each curve's crossover, the dashed line is Δ = 0, the grey band the
    equivalence margin (results.margin_f1), error bars are the intervals. Points of different
    curves at one size are spread slightly sideways so their error bars stay apart.
    ``table`` is :func:`size_table`'s result.
    """
    check_dpi(dpi)
    path = Path(path)
    if table.empty:
        return empty_figure(path, dpi, f"No size axis, or no subsampled pairing makes the "
                                       f"{selection} selection in this run.")
    colours = upstream_colours(list(upstreams) or table["upstream"].unique().tolist())
    archs = _arch_order(table["arch"].tolist(), arch_order)
    markers = {a: MARKERS[i % len(MARKERS)] for i, a in enumerate(archs)}
    downs = sorted(table["downstream"].unique())
    ncols = min(2, len(downs))
    nrows = math.ceil(len(downs) / ncols)
    fig = Figure(figsize=(max(8.0, 5.5 * ncols), 3.8 * nrows + 1.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    legend: dict[str, object] = {}
    for ax, down in zip(axes, downs, strict=False):
        sub = table[table["downstream"] == down]
        keys = [(a, u) for a in archs for u in sorted(sub["upstream"].unique())
                if ((sub["arch"] == a) & (sub["upstream"] == u)).any()]
        for k, (arch, up) in enumerate(keys):
            curve = sub[(sub["arch"] == arch) & (sub["upstream"] == up)].sort_values("n_train")
            spread = 10 ** ((k - (len(keys) - 1) / 2) * 0.012)
            x = curve["n_train"].to_numpy(dtype=float) * spread
            y = curve["delta"].to_numpy()
            err = np.vstack([y - curve["low"].to_numpy(), curve["high"].to_numpy() - y])
            handle = ax.errorbar(x, y, yerr=err, color=colours.get(up, "black"),
                                 marker=markers[arch], markersize=5, capsize=3, linewidth=1.2)
            legend.setdefault(f"{arch} from {up}", handle)
            cross = curve["crossover"].iloc[0]
            if not pd.isna(cross):
                at = curve["n_train"].to_numpy() == cross
                ax.plot(x[at], y[at], linestyle="none", marker="*", markersize=15,
                        markerfacecolor="none", markeredgecolor=colours.get(up, "black"),
                        markeredgewidth=1.3)
        ax.axhline(0.0, color="grey", linestyle="--", linewidth=1)
        margin = float(table["margin"].iloc[0])
        ax.axhspan(-margin, margin, color="grey", alpha=0.15, linewidth=0)
        ax.set_xscale("log")
        sizes = sorted(sub["n_train"].unique())
        ax.set_xticks(sizes, [str(n) for n in sizes], fontsize=8)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("training records (log scale)")
        ax.set_ylabel("Δ F1 (fine-tuned - scratch)")
        ax.set_title(down)
    for ax in axes[len(downs):]:
        ax.set_visible(False)
    level = percent(float(table["level"].iloc[0]))
    legend[f"crossover: from here on every {level} interval lies inside the grey band "
           f"(±{float(table['margin'].iloc[0]):g})"] = Line2D(
        [], [], linestyle="none", marker="*", markersize=12, markerfacecolor="none",
        markeredgecolor="black")
    fig.legend(list(legend.values()), list(legend), loc="outside lower center",
               ncols=min(len(legend), 3), fontsize="small")
    fig.suptitle(f"Δ F1 from fine-tuning against training-set size ({selection} selection)")
    _write_figure(fig, path, dpi)
    return path


def plot_melep_scatter(table: pd.DataFrame, path: str | os.PathLike, *, dpi: int,
                       correlations: pd.DataFrame | None = None,
                       arch_order: Sequence[str] = (), upstreams: Sequence[str] = ()) -> Path:
    """MELEP (x) against Δ F1 (y) with Δ's interval, one panel per selection.

    A marker per architecture and a colour per upstream (the results' figures' colours, given
    the same ``upstreams``); the dashed line is Δ = 0. With ``correlations`` each panel's title
    gives the overall Spearman r. Lower MELEP is better, so a useful score makes the points
    fall from left to right.
    """
    check_dpi(dpi)
    path = Path(path)
    if table.empty:
        return empty_figure(path, dpi, "Nothing to show: no MELEP result in this run.")
    colours = upstream_colours(list(upstreams) or table["upstream"].unique().tolist())
    archs = _arch_order(table["arch"].tolist(), arch_order)
    markers = {a: MARKERS[i % len(MARKERS)] for i, a in enumerate(archs)}
    fig = Figure(figsize=(4.8 * len(SELECTIONS) + 2.4, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(SELECTIONS), squeeze=False, sharex=True).ravel()
    for ax, selection in zip(axes, SELECTIONS, strict=True):
        sub = table[table[f"delta_{selection}"].notna()]
        ax.set_title(f"{selection} selection" + _rho_words(correlations, selection),
                     fontsize="medium")
        ax.set_xlabel("MELEP (nats; lower = better predicted transfer)")
        ax.set_ylabel("Δ F1 (fine-tuned - scratch)")
        if sub.empty:
            ax.text(0.5, 0.5, f"nothing to show: no pairing makes\nthe {selection} selection",
                    transform=ax.transAxes, ha="center", va="center")
            continue
        for r in sub.to_dict("records"):
            d = r[f"delta_{selection}"]
            ax.errorbar([r["melep"]], [d], yerr=[[d - r[f"low_{selection}"]],
                                                 [r[f"high_{selection}"] - d]],
                        color=colours.get(r["upstream"], "black"), marker=markers[r["arch"]],
                        markersize=6, capsize=2, linestyle="none", linewidth=1)
        ax.axhline(0.0, color="grey", linestyle="--", linewidth=1)
    ups = sorted(table["upstream"].unique())
    fig.legend([Line2D([], [], color=colours.get(u, "black"), marker="o", linestyle="none")
                for u in ups], ups, title="upstream", loc="outside right upper",
               fontsize="small")
    fig.legend([Line2D([], [], color="grey", marker=markers[a], linestyle="none")
                for a in archs], archs, title="architecture", loc="outside right lower",
               fontsize="small")
    fig.suptitle("MELEP before fine-tuning against the realised Δ F1 (error bars: Δ's interval)")
    _write_figure(fig, path, dpi)
    return path


def _rho_words(correlations: pd.DataFrame | None, selection: str) -> str:
    if correlations is None or correlations.empty:
        return ""
    row = correlations[(correlations["selection"] == selection)
                       & (correlations["score"] == "melep") & (correlations["arch"] == ALL_ARCHS)
                       & (correlations["method"] == "spearman")]
    if row.empty or pd.isna(row["r"].iloc[0]):
        return ""
    r = row.iloc[0]
    return (f"\nSpearman r = {r['r']:+.2f} {maybe_interval(r['low'], r['high'])}, "
            f"{r['n_pairs']} pairs")


def plot_robustness(curves: pd.DataFrame, kind: str, path: str | os.PathLike, *, dpi: int,
                    level: float, upstreams: Sequence[str] = ()) -> Path:
    """F1 against the level of one perturbation kind, one panel per downstream set.

    Each line is the F1 averaged over architectures (and seeds) of the models fine-tuned from
    one upstream (its colour) or trained from scratch (black, dashed), with its interval; the
    clean test set is the first point. SNR falls from left to right (harsher to the right),
    leads zeroed rise. ``curves`` is :attr:`RobustnessTables.curves`.
    """
    check_dpi(dpi)
    path = Path(path)
    downs = sorted(set(curves.loc[curves["kind"] == kind, "downstream"])) if len(curves) else []
    if not downs:
        return empty_figure(path, dpi, f"Nothing to show: no robustness result for {kind} in "
                                       "this run.")
    colours = upstream_colours(list(upstreams) or sorted(
        set(curves.loc[curves["regime"] == "finetune", "upstream"])))
    ncols = min(2, len(downs))
    nrows = math.ceil(len(downs) / ncols)
    fig = Figure(figsize=(5.5 * ncols, 3.8 * nrows + 1.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    legend: dict[str, object] = {}
    for ax, down in zip(axes, downs, strict=False):
        d = curves[curves["downstream"] == down]
        levels = mild_to_harsh(kind, sorted(set(d.loc[d["kind"] == kind, "level"])))
        if is_lead_kind(kind):
            x = np.array([0.0, *levels])
            labels = ["0\n(clean)", *[f"{lv:g}" for lv in levels]]
            ax.set_xlabel("leads zeroed (harsher to the right)")
        else:
            x = np.arange(len(levels) + 1, dtype=float)
            labels = ["clean", *[f"{lv:g}" for lv in levels]]
            ax.set_xlabel("SNR (dB; harsher to the right)")
        models = sorted({(r, u) for r, u in zip(d["regime"], d["upstream"], strict=True)},
                        key=lambda m: (m[0] == "scratch", m[1]))
        width = (x.max() - x.min()) or 1.0
        for k, (regime, up) in enumerate(models):
            m = d[(d["regime"] == regime) & (d["upstream"] == up)]
            clean = m[m["kind"] == CLEAN].iloc[0]
            at = m[m["kind"] == kind].set_index("level")
            pts = [clean] + [at.loc[lv] for lv in levels]
            y = np.array([p["f1"] for p in pts])
            err = np.array([[p["f1"] - p["low"] for p in pts], [p["high"] - p["f1"] for p in pts]])
            shift = (k - (len(models) - 1) / 2) * 0.015 * width
            scratch = regime == "scratch"
            name = "scratch" if scratch else f"fine-tuned from {up}"
            legend[name] = ax.errorbar(x + shift, y, yerr=err, capsize=3, linewidth=1.3,
                                       color="black" if scratch else colours.get(up, "black"),
                                       linestyle="--" if scratch else "-",
                                       marker="s" if scratch else "o", markersize=4)
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_ylabel("weighted F1 (mean over architectures)")
        ax.set_title(down)
    for ax in axes[len(downs):]:
        ax.set_visible(False)
    fig.legend(list(legend.values()), list(legend), loc="outside lower center",
               ncols=min(len(legend), 4), fontsize="small")
    fig.suptitle(f"Weighted F1 under {kind}: fine-tuned vs scratch ({percent(level)} intervals)")
    _write_figure(fig, path, dpi)
    return path
