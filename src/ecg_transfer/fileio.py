"""File I/O in one place: atomic, durable output (a crash, a kill or a power cut never leaves a
half-written or empty file under the final name) and checked reading of the .npz files the
stages exchange."""

from __future__ import annotations

import errno
import os
import re
import secrets
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

# A temp file of target ``name`` is ``.<name>.<8 characters>.tmp`` in the target's folder. The
# characters are those tempfile.mkstemp used (no dot), so the name is unambiguous: ``.a.b.x.tmp``
# can belong to target ``a.b`` only, never to ``a``, and leftovers of the mkstemp days match too.
_TEMP_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
_TEMP_TAIL = r"\.[a-z0-9_]{8}\.tmp"
# Filesystems that cannot fsync a folder say so with one of these; the file itself is synced.
_NO_DIR_FSYNC = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EACCES}
# Temp files this process is writing now (any thread); a sweep never takes them.
_LIVE: set[str] = set()
_LIVE_LOCK = threading.Lock()


def _key(tmp: Path) -> str:
    return os.path.abspath(tmp)  # the same file, whether a caller named it relative or not


def _temp_pattern(path: Path) -> re.Pattern[str]:
    return re.compile(r"\." + re.escape(path.name) + _TEMP_TAIL)


def sweep_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove the temp files that killed writers of ``path`` left beside it; return them.

    A kill -9 or a power cut leaves a hidden temp file that nothing else cleans up. A job owns
    its outputs: Snakemake runs one job per output at a time, so a temp file of the same target
    that this process is not writing is a dead predecessor's. (A file that several processes
    write, like the download lock, must be written under a lock of its own, as download does.)
    Temp files of other targets are never touched, nor those other threads here are writing.
    """
    path = Path(path)
    pattern = _temp_pattern(path)
    try:
        names = sorted(n for n in os.listdir(path.parent) if pattern.fullmatch(n))
    except FileNotFoundError:
        return []
    removed = []
    with _LIVE_LOCK:
        for name in names:
            tmp = path.parent / name
            if _key(tmp) not in _LIVE:
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    return removed


def _create_temp(path: Path) -> Path:
    """A new, empty temp file of ``path``, registered as live (see sweep_stale_temps).

    It is created with mode 0o666 like a plain open(), so the kernel applies the umask (and a
    folder's default ACL) and colleagues in a shared project folder can read the output; mkstemp
    would make it 0o600. Reading the umask instead would race with other threads.
    """
    with _LIVE_LOCK:
        while True:
            suffix = "".join(secrets.choice(_TEMP_CHARS) for _ in range(8))
            tmp = path.parent / f".{path.name}.{suffix}.tmp"
            try:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                                 0o666))
            except FileExistsError:
                continue
            _LIVE.add(_key(tmp))
            return tmp


def _fsync_file(path: Path) -> None:
    # Opened afresh: the writer wrote through its own handle, and may even have recreated it.
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` survive a power cut, where the filesystem allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        if err.errno in _NO_DIR_FSYNC:
            return
        raise
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in _NO_DIR_FSYNC:
            raise
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    The temporary file lives in the same folder (so the rename is atomic) and has a unique name
    (so concurrent writers never share one); on any error it is removed. Its data are fsynced
    before the rename and the folder after it, so Snakemake never sees a complete-looking output
    that a power cut then empties. Temp files that killed writers of the same target left
    behind are swept first, so rerunning a killed job cleans up after it. The file gets the mode
    a plain open() would give (0o666 less the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(path)
    tmp = _create_temp(path)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(_key(tmp))
    _fsync_dir(path.parent)


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
