"""A small, fast reader for the WFDB records of the study's datasets.

`wfdb.rdrecord` is correct but parses every header through pandas, which costs ~10 ms a record:
minutes for PTB-XL's 21 837 records and the Challenge's 17 000. The datasets here only use
format 16 (little-endian int16, samples interleaved; the Challenge `.mat` files are MATLAB v4
files whose `val` matrix is the same thing), so this module parses the header itself and reads
the samples with numpy or `scipy.io.loadmat` (~0.5 ms a record). Any other storage format falls
back to `wfdb.rdrecord`, so correctness never depends on the fast path. The tests check both
paths against `wfdb.rdrecord` on genuine PhysioNet records.

Values come back in millivolts whatever the header's unit (`mV`, `mv`, none, `uV`, `V`), so that
unscaled signals from different datasets are comparable.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import scipy.io
import wfdb

from .hashing import hash_files
from .leads import lead_indices

# WFDB marks a missing sample in format 16 with the most negative int16; wfdb turns it into NaN
# and so do we (Georgia has a few of them).
_FMT16_INVALID = -32768

# Header units to millivolts. WFDB's default unit, when the header names none, is mV.
_UNIT_TO_MV = {"": 1.0, "mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3}

_RECORD_LINE = re.compile(
    r"""^(?P<name>[^\s/]+)(?:/(?P<n_seg>\d+))?\s+(?P<n_sig>\d+)
        (?:\s+(?P<fs>[0-9.eE+-]+)(?:/[0-9.eE+-]+(?:\([0-9.eE+-]+\))?)?
           (?:\s+(?P<sig_len>\d+))?)?""",
    re.VERBOSE,
)
_FORMAT_FIELD = re.compile(
    r"^(?P<fmt>\d+)(?:x(?P<spf>\d+))?(?::(?P<skew>\d+))?(?:\+(?P<off>\d+))?$"
)
_GAIN_FIELD = re.compile(
    r"^(?P<gain>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?:\((?P<base>[-+]?\d+)\))?(?:/(?P<unit>\S*))?$"
)


@dataclass(frozen=True)
class SignalSpec:
    """One signal line of a WFDB header, with WFDB's defaults already applied."""

    file_name: str
    fmt: str
    samples_per_frame: int
    skew: int
    byte_offset: int
    gain: float
    baseline: int
    unit: str
    name: str


@dataclass(frozen=True)
class Header:
    """A parsed single-segment WFDB header."""

    path: Path
    record_name: str
    fs: float
    sig_len: int | None
    signals: tuple[SignalSpec, ...]
    comments: tuple[str, ...]

    @property
    def sig_names(self) -> list[str]:
        return [s.name for s in self.signals]

    def to_mv(self, index: int) -> float:
        """Factor that turns signal `index`'s physical values into millivolts."""
        unit = self.signals[index].unit
        try:
            return _UNIT_TO_MV[unit.lower()]
        except KeyError:
            raise ValueError(
                f"{self.path}: signal {index} ({self.signals[index].name!r}) has unit {unit!r}; "
                f"expected one of mV, uV, V or none"
            ) from None


def read_header(path: str | Path) -> Header:
    """Parse a `.hea` file; errors name the file, the line and the field that is wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="latin-1")
    except OSError as exc:
        raise FileNotFoundError(f"{path}: cannot read WFDB header ({exc})") from exc

    comments: list[str] = []
    lines: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            comments.append(stripped[1:].strip())
        else:
            lines.append((number, stripped.split("#", 1)[0].strip()))
    if not lines:
        raise ValueError(f"{path}: no record line; expected 'name n_sig fs sig_len'")

    number, record_line = lines[0]
    match = _RECORD_LINE.match(record_line)
    if match is None:
        raise ValueError(
            f"{path}, line {number}: record line {record_line!r}; expected 'name n_sig fs sig_len'"
        )
    if match["n_seg"]:
        raise ValueError(f"{path}: multi-segment records are not supported (line {number})")
    n_sig = int(match["n_sig"])
    fs = 250.0  # WFDB's default frequency
    if match["fs"]:
        fs = _parse_fs(match["fs"], f"{path}, line {number}")
    sig_len = int(match["sig_len"]) if match["sig_len"] else None
    if len(lines) - 1 < n_sig:
        raise ValueError(
            f"{path}: record line declares {n_sig} signals but {len(lines) - 1} signal lines follow"
        )
    signals = tuple(_parse_signal_line(path, number, line) for number, line in lines[1 : 1 + n_sig])
    return Header(path, match["name"], fs, sig_len, signals, tuple(comments))


def _parse_fs(text: str, where: str) -> float:
    """The record line's sampling rate. 0, a negative rate or one too large for a float (1e999
    reads as inf) is a damaged header, not a rate any protocol can resample from."""
    try:
        fs = float(text)
    except ValueError:
        fs = math.nan
    if not (math.isfinite(fs) and fs > 0):
        raise ValueError(f"{where}: sampling rate {text!r}; expected a finite number of Hz > 0")
    return fs


def _parse_signal_line(path: Path, number: int, line: str) -> SignalSpec:
    fields = line.split()
    where = f"{path}, line {number}"
    if len(fields) < 2:
        raise ValueError(f"{where}: signal line {line!r}; expected 'file format gain ...'")
    name = PurePosixPath(fields[0])
    if name.is_absolute() or ".." in name.parts:
        # The record's files sit beside its header; a name that leaves that folder would read
        # (and hash) some other file as this record's samples.
        raise ValueError(
            f"{where}: signal file {fields[0]!r} is not a plain relative name; expected a file "
            f"in the header's folder (no leading '/', no '..')"
        )
    fmt = _FORMAT_FIELD.match(fields[1])
    if fmt is None:
        raise ValueError(f"{where}: format field {fields[1]!r}; expected e.g. '16' or '16x1+24'")
    gain, baseline, unit = 0.0, None, ""
    if len(fields) > 2:
        g = _GAIN_FIELD.match(fields[2])
        if g is None:
            raise ValueError(f"{where}: gain field {fields[2]!r}; expected e.g. '1000.0(0)/mV'")
        gain = float(g["gain"])
        baseline = int(g["base"]) if g["base"] is not None else None
        unit = g["unit"] or ""
    adc_zero = 0
    if len(fields) > 4:
        try:
            adc_zero = int(fields[4])
        except ValueError:
            raise ValueError(f"{where}: ADC zero {fields[4]!r}; expected an integer") from None
    return SignalSpec(
        file_name=fields[0],
        fmt=fmt["fmt"],
        samples_per_frame=int(fmt["spf"] or 1),
        skew=int(fmt["skew"] or 0),
        byte_offset=int(fmt["off"] or 0),
        gain=gain if gain != 0 else 200.0,  # WFDB: a zero or missing gain means 200 adu/unit
        baseline=baseline if baseline is not None else adc_zero,  # WFDB: defaults to the ADC zero
        unit=unit,
        name=" ".join(fields[8:]) if len(fields) > 8 else "",
    )


def data_files(header: Header, which: Sequence[int]) -> list[Path]:
    """The signal files that hold signals `which`, in first-use order (PTB: the .dat, not the
    .xyz of the Frank leads). Their bytes are what a content hash of the record covers."""
    names = dict.fromkeys(header.signals[i].file_name for i in which)
    return [header.path.parent / name for name in names]


def read_signals(header: Header, which: Sequence[int]) -> np.ndarray:
    """Signals `which` of the record, as float64 millivolts, shape (len(which), samples).

    Missing samples (the format's invalid value) are NaN, as wfdb makes them.
    """
    which = list(which)
    specs = header.signals
    fast = all(
        specs[i].fmt == "16" and specs[i].samples_per_frame == 1 and specs[i].skew == 0
        for i in range(len(specs))
    )
    if not fast:
        return _read_with_wfdb(header, which)

    by_file: dict[str, list[int]] = {}
    for index, spec in enumerate(specs):
        by_file.setdefault(spec.file_name, []).append(index)
    digital: dict[int, np.ndarray] = {}
    for file_name, members in by_file.items():
        if not any(i in which for i in members):
            continue  # e.g. PTB's Frank leads in the .xyz file: not needed, not read
        block = _read_fmt16_file(header, file_name, len(members), specs[members[0]].byte_offset)
        for row, index in enumerate(members):
            digital[index] = block[row]

    lengths = {digital[i].shape[0] for i in which}
    if len(lengths) != 1:
        raise ValueError(f"{header.path}: signal files hold different numbers of samples {lengths}")
    out = np.empty((len(which), lengths.pop()), dtype=np.float64)
    for row, index in enumerate(which):
        spec = specs[index]
        d = digital[index]
        out[row] = (d.astype(np.float64) - spec.baseline) * (header.to_mv(index) / spec.gain)
        invalid = d == _FMT16_INVALID
        if invalid.any():
            out[row, invalid] = np.nan
    return out


def _read_fmt16_file(header: Header, file_name: str, n_sig: int, byte_offset: int) -> np.ndarray:
    """Digital samples of one format-16 signal file, shape (n_sig, samples)."""
    path = header.path.parent / file_name
    if not path.is_file():
        raise FileNotFoundError(f"{header.path}: signal file {path} does not exist")
    if path.suffix.lower() == ".mat":
        try:
            content = scipy.io.loadmat(path, variable_names=["val"])
        except Exception as exc:  # scipy raises many types on a corrupt file; name the file
            raise ValueError(f"{path}: not a readable MATLAB file ({exc})") from exc
        if "val" not in content:
            raise ValueError(
                f"{path}: no variable 'val'; expected the Challenge's (leads, samples)"
            )
        block = content["val"]
        if block.ndim != 2 or block.shape[0] != n_sig or block.dtype.kind not in "iu":
            raise ValueError(
                f"{path}: 'val' is {block.dtype} {block.shape}; expected integers of shape "
                f"({n_sig}, samples) as {header.path} declares {n_sig} signals in it"
            )
    else:
        try:
            flat = np.fromfile(path, dtype="<i2", offset=byte_offset)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read format-16 samples ({exc})") from exc
        if flat.size % n_sig:
            raise ValueError(
                f"{path}: {flat.size} samples do not divide into {n_sig} interleaved signals"
            )
        block = flat.reshape(-1, n_sig).T
    if header.sig_len is not None and block.shape[1] != header.sig_len:
        # Fewer: a truncated file. More: the header's signal count or length is wrong, so the
        # interleaving (and every lead) would be misread.
        raise ValueError(
            f"{path}: holds {block.shape[1]} samples per signal but {header.path} declares "
            f"sig_len {header.sig_len} ({n_sig} signals in this file)"
        )
    return block


def _read_with_wfdb(header: Header, which: list[int]) -> np.ndarray:
    record_path = str(header.path.with_suffix(""))
    try:
        record = wfdb.rdrecord(record_path, channels=which, physical=True)
    except (ValueError, OSError, IndexError) as exc:
        raise ValueError(f"{header.path}: wfdb could not read the record ({exc})") from exc
    signal = np.asarray(record.p_signal, dtype=np.float64).T
    factors = np.array([header.to_mv(i) for i in which])[:, None]
    return signal * factors


def existing_data_files(header: Header, which: Sequence[int]) -> list[Path]:
    """`data_files`, checked to exist: a header without its signal file is a bad record."""
    files = data_files(header, which)
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"{header.path}: signal file {path} does not exist")
    return files


def index_checks(header: Header, header_path: Path, hash_records: bool) -> str:
    """What the index stage checks of a WFDB record without reading its samples: the 12 standard
    leads are there, their signal files exist, the record line gives a length. Returns the
    content hash of those files where the protocol needs it (duplicate detection), else ""."""
    files = existing_data_files(header, lead_indices(header.sig_names, header_path))
    if header.sig_len is None:
        raise ValueError("the record line gives no signal length")
    return hash_files(files) if hash_records else ""


def dx_tokens(header: Header) -> list[str]:
    """The entries of the header's one `#Dx:` comment (the Challenge's diagnoses, comma-separated:
    SNOMED-CT codes, or text in CPSC2018's early release). None, two such lines, or an empty one
    are a malformed header: the record's labels cannot be read."""
    lines = [c for c in header.comments if c.lower().startswith("dx:")]
    if len(lines) != 1:
        raise ValueError(
            f"{header.path}: {len(lines)} '#Dx:' comment lines; expected exactly one "
            f"with comma-separated diagnoses"
        )
    tokens = [t.strip() for t in lines[0][3:].split(",") if t.strip()]
    if not tokens:
        raise ValueError(f"{header.path}: field Dx is empty; expected at least one diagnosis")
    return tokens


def read_record(header_path: Path) -> tuple[np.ndarray, float]:
    """The 12 standard leads of a WFDB record in STANDARD_LEADS order (mV), and its rate."""
    header = read_header(header_path)
    return read_signals(header, lead_indices(header.sig_names, header_path)), header.fs

