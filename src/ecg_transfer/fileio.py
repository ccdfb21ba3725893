"""File I/O in one place: atomic output (a crash or an error never leaves a half-written file
under the final name) and checked reading of the .npz files the stages exchange."""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    The temporary file lives in the same folder (so the rename is atomic) and has a unique name
    (so concurrent writers never share one); on any error it is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_npz(path: Path, what: str, required: tuple[str, ...], writer: str,
             expected: str) -> dict[str, np.ndarray]:
    """Every array of an .npz file written by ``writer``, checked to hold ``required``.

    Each defect (missing, unreadable, a single array, missing arrays) is a ValueError naming the
    file and ``what`` it should be; ``expected`` lists what the archive must hold.
    """
    try:
        loaded = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ValueError(f"{path}: {what} does not exist") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a readable {what} ({err})") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: expected an .npz archive ({writer}), got a single array")
    with loaded:
        arrays = {k: loaded[k] for k in loaded.files}
    missing = [k for k in required if k not in arrays]
    if missing:
        raise ValueError(f"{path}: missing array(s) {missing}; expected {expected}")
    return arrays
