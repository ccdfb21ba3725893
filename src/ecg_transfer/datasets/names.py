"""Which names a dataset may have: the five built-in datasets, or a name of the user's own.

A dataset's name is a wildcard value, a folder name (`results/shards/<name>/`) and a column value
of every table, so a user's name must be a plain identifier; and it must not be a built-in
name, whose reader, paper scaling and paper counts it would silently take over.
"""

from __future__ import annotations

from ecg_transfer.names import check_safe_name

NAMES = ("ptbxl", "cpsc2018", "georgia", "ptb", "ribeiro")


def check_user_name(name: str, where: str) -> str:
    """`name` if it may name a dataset of the user's; else ValueError naming `where` (the config
    key) and what was expected."""
    if name in NAMES:
        raise ValueError(
            f"{where}: {name!r} is a built-in dataset, read by its own reader; give your folder "
            f"of records a name of its own (not one of {', '.join(NAMES)})"
        )
    return check_safe_name(name, where, "dataset")
