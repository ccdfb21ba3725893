"""How the answer prints numbers: one helper per kind of cell, so that every table, caption,
figure and claim prints an F1, an interval, a level or a size the same way."""

from __future__ import annotations

import pandas as pd

__all__ = [
    "as_size",
    "fmt_size",
    "interval",
    "level_of",
    "markdown_table",
    "maybe_interval",
    "mean_sd",
    "nothing",
    "num",
    "percent",
]


def num(value: object, sign: bool = False) -> str:
    """Three decimals (with a sign when ``sign``); "—" where there is no number."""
    if value is None or pd.isna(value):
        return "—"
    return f"{value:+.3f}" if sign else f"{value:.3f}"


def mean_sd(mean: float, sd: float) -> str:
    """``mean ± sd`` over seeds, or the mean alone where one seed leaves sd NaN."""
    return num(mean) if pd.isna(sd) else f"{mean:.3f} ± {sd:.3f}"


def interval(low: float, high: float) -> str:
    """An interval as every table prints it: ``[low, high]``, signed, three decimals."""
    return f"[{low:+.3f}, {high:+.3f}]"


def percent(level: float) -> str:
    """A coverage level as a percentage: 0.95 -> "95%"."""
    return f"{round(level * 100, 6):g}%"


def level_of(table: pd.DataFrame) -> str:
    """The interval level as captions print it ("95% "), or "" for an empty table."""
    return percent(float(table["level"].iloc[0])) + " " if len(table) else ""


def fmt_size(size: float | None) -> str:
    """A configured training-set size: a record count, a fraction, or "full" (None)."""
    if size is None or pd.isna(size):
        return "full"
    return f"{size:g}" if isinstance(size, float) else str(size)


def as_size(value: float) -> int | float | None:
    """A size read back from a float table column: NaN -> None (full), 500.0 -> 500."""
    if pd.isna(value):
        return None
    return int(value) if float(value).is_integer() else float(value)


def markdown_table(header: list[str], rows: list[list[str]], text_columns: int) -> str:
    """A Markdown table whose first ``text_columns`` columns are left-aligned, numbers right."""
    align = ["---"] * text_columns + ["---:"] * (len(header) - text_columns)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def nothing(what: str) -> str:
    """The line a page or section prints instead of an empty table, saying why."""
    return f"Nothing to show: {what}\n"


def maybe_interval(low: float, high: float) -> str:
    """:func:`interval`, or "—" where the interval is undefined (NaN)."""
    return "—" if pd.isna(low) or pd.isna(high) else interval(low, high)
