"""Writers for the on-disk formats of the real datasets, byte-compatible with their readers.

The WFDB header and MATLAB v4 writers are written out here rather than delegated to
`wfdb.wrsamp` / `scipy.io.savemat` because each dataset spells its headers differently (PTB-XL
`1000.0(0)/mV` with unsigned checksums, the Challenge `16+24 1000/mV` or `16x1+24 1000.0(0)/mV`
with signed ones, PTB `2000` with no unit and CRLF line ends), and a reader that copes with the
demo should cope with the real files; the library writers normalise those differences away.
"""

from __future__ import annotations

import csv
import io
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class SignalFile:
    """One signal file of a record and how its header lines spell it."""

    file_name: str
    fmt: str  # "16", "16+24", "16x1+24"
    gain: str  # "1000.0(0)/mV", "1000/mV", "2000"
    names: Sequence[str]
    digital: np.ndarray  # (n, n_sig) int16, samples x signals


def header_text(
    record: str,
    fs: float,
    files: Sequence[SignalFile],
    comments: Iterable[str] = (),
    *,
    date_time: str = "",
    signed_checksum: bool = True,
    newline: str = "\n",
    blank_before_comments: bool = False,
) -> str:
    """A WFDB header; checksums and initial values are computed from the samples."""
    n = files[0].digital.shape[0]
    n_sig = sum(len(f.names) for f in files)
    first = f"{record} {n_sig} {fs:g} {n}" + (f" {date_time}" if date_time else "")
    lines = [first]
    for f in files:
        if f.digital.shape != (n, len(f.names)):
            raise ValueError(
                f"{record}: signal file {f.file_name} holds {f.digital.shape} samples x signals; "
                f"expected ({n}, {len(f.names)})"
            )
        sums = f.digital.astype(np.int64).sum(axis=0) % 65536
        for j, name in enumerate(f.names):
            checksum = int(sums[j])
            if signed_checksum and checksum > 32767:
                checksum -= 65536
            init = int(f.digital[0, j]) if n else 0
            lines.append(f"{f.file_name} {f.fmt} {f.gain} 16 0 {init} {checksum} 0 {name}")
    comment_lines = list(comments)
    if comment_lines and blank_before_comments:
        lines.append("")
    lines += comment_lines
    return newline.join(lines) + newline


def write_dat(path: Path, digital: np.ndarray) -> None:
    """WFDB format 16: little-endian int16, samples of all signals interleaved."""
    path.write_bytes(np.ascontiguousarray(digital, dtype="<i2").tobytes())


def write_mat_v4(path: Path, val: np.ndarray, name: str = "val") -> None:
    """A MATLAB v4 file with one int16 matrix, as the Challenge ships its records.

    The 24-byte header (type 30 = little-endian int16 full matrix, rows, columns, no imaginary
    part, name length) plus the name is exactly the `+24` byte offset the `.hea` files declare;
    MATLAB's column-major order makes the samples interleaved, i.e. valid WFDB format 16.
    """
    if val.ndim != 2:
        raise ValueError(f"{path}: matrix {name} must be 2-D (leads x samples), got {val.shape}")
    raw = name.encode("ascii") + b"\0"
    head = struct.pack("<5i", 30, val.shape[0], val.shape[1], 0, len(raw)) + raw
    path.write_bytes(head + np.asarray(val, dtype="<i2").tobytes(order="F"))


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """CSV as pandas writes it (minimal quoting, LF line ends); None is an empty cell."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow(["" if v is None else v for v in row])
    return buf.getvalue()


def fmt_float(v: float | None) -> str:
    """A float as pandas writes it (`56.0`), or empty for missing."""
    return "" if v is None else repr(float(v))
