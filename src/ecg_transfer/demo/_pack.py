"""Byte-reproducible zip and tar archives, written atomically.

The demo configuration pins each archive's sha256, so an archive must depend only on the files
it holds: no timestamps, owners or file-system order, and no compression (zlib's output differs
between zlib builds and versions, so a compressed member could change bytes on another machine).
"""

from __future__ import annotations

import contextlib
import os
import tarfile
import zipfile
from pathlib import Path

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o644
_DIR_MODE = 0o755  # directories need x, or extracting into them fails


def _entries(root: Path) -> list[tuple[str, Path]]:
    """(archive name, path) of every directory and file under `root`, sorted by name."""
    out = []
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink() or not (path.is_dir() or path.is_file()):
            raise ValueError(f"{path}: only plain files and directories can go into the archive")
        out.append((rel + "/" if path.is_dir() else rel, path))
    return sorted(out)


def write_zip(root: Path, dest: Path) -> None:
    """Zip the tree under `root` (its top folders become the archive's top folders)."""
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED, allowZip64=False) as zf:
        for name, path in _entries(root):
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.create_system = 3  # Unix, so that external_attr holds the mode
            info.compress_type = zipfile.ZIP_STORED
            if name.endswith("/"):
                info.external_attr = ((0o040000 | _DIR_MODE) << 16) | 0x10
                zf.writestr(info, b"")
            else:
                info.external_attr = (0o100000 | _FILE_MODE) << 16
                zf.writestr(info, path.read_bytes())


def write_tar(root: Path, dest: Path) -> None:
    """An uncompressed ustar archive of the tree under `root`."""
    with tarfile.open(dest, "w", format=tarfile.USTAR_FORMAT) as tf:
        for name, path in _entries(root):
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
                info.mode = _DIR_MODE
                tf.addfile(info)
            else:
                info.mode = _FILE_MODE
                info.size = path.stat().st_size
                with path.open("rb") as fh:
                    tf.addfile(info, fh)


def pack(root: Path, dest: Path, kind: str) -> None:
    """Write the archive next to `dest` under a temporary name, then rename it into place, so
    that an interrupted run never leaves a truncated archive that looks finished."""
    writers = {"zip": write_zip, "tar": write_tar}
    if kind not in writers:
        raise ValueError(f"archive kind {kind!r} is unknown; expected one of {sorted(writers)}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        writers[kind](root, tmp)
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
