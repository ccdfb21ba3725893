"""What a name of the user's may be: a dataset of their own (``datasets.<name>.records``) or a
pretrained model given by file (``pretrained_models.<name>``).

Either name becomes a wildcard value, a folder (``results/shards/<name>/``,
``results/finetune/<name>/``) and a column value of every table, so both follow one rule: a
plain identifier, lower case (two names never collide on a case-insensitive file system), at
most 32 characters. No imports beyond ``re``: the workflow plans with it, and both the data and
the training stages' code hashes include it.
"""

from __future__ import annotations

import re

SAFE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def check_safe_name(name: object, where: str, what: str) -> str:
    """``name`` if it matches :data:`SAFE_NAME`; else ValueError naming ``where`` (the config
    key) and ``what`` it names ("dataset", "model")."""
    if not isinstance(name, str) or not SAFE_NAME.match(name):
        raise ValueError(
            f"{where}: {what} name {name!r} is not a safe identifier; expected lower-case "
            f"letters, digits and '_', starting with a letter, at most 32 characters "
            f"(pattern {SAFE_NAME.pattern})"
        )
    return name
