"""What every dataset reader shares: lead names, the record set, and the preprocessing protocols.

A *protocol* is the set of choices that turn a dataset's native recordings into fixed-size model
inputs: how to reach the target sampling rate, which window of the recording to keep, and the
default amplitude scaling. The readers only read files and labels and hand each record to a
`Collector`, which applies the protocol. So a second protocol is one more `Protocol(...)` entry
in `PROTOCOLS`, with no change to the readers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

NAMES = ("ptbxl", "cpsc2018", "georgia", "ptb", "ribeiro")
STANDARD_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
SCALINGS = ("none", "minmax")

# Lower-cased spellings found in the datasets' files -> standard name. Ribeiro's CODE uses the
# Brazilian DI/DII/DIII for the limb leads; PTB writes everything in lower case; PTB-XL upper.
_LEAD_ALIASES = {lead.lower(): lead for lead in STANDARD_LEADS} | {
    "di": "I",
    "dii": "II",
    "diii": "III",
}

_PROGRESS_EVERY = 1000


def standard_lead(name: str) -> str | None:
    """The standard name of a lead as a file spells it, or None for a non-standard signal."""
    return _LEAD_ALIASES.get(name.strip().lower())


def lead_indices(names: Sequence[str], source: object) -> list[int]:
    """Positions in `names` of the 12 standard leads, in STANDARD_LEADS order.

    Signals that are not standard leads (PTB's Frank leads vx, vy, vz) are left out; a missing
    or repeated standard lead is an error, because silently shifting leads would train a model on
    the wrong electrodes.
    """
    found: dict[str, int] = {}
    for index, name in enumerate(names):
        lead = standard_lead(name)
        if lead is None:
            continue
        if lead in found:
            raise ValueError(
                f"{source}: lead {lead} appears twice (signals {found[lead]} and {index}); "
                f"leads found: {list(names)}"
            )
        found[lead] = index
    missing = [lead for lead in STANDARD_LEADS if lead not in found]
    if missing:
        raise ValueError(
            f"{source}: missing standard lead(s) {missing}; leads found: {list(names)}; "
            f"expected all of {list(STANDARD_LEADS)}"
        )
    return [found[lead] for lead in STANDARD_LEADS]


@dataclass
class RecordSet:
    """One dataset, preprocessed: what the training code consumes."""

    signals: np.ndarray  # (N, 12, T) float32, STANDARD_LEADS order
    labels: np.ndarray  # (N, C) uint8 multi-hot
    classes: list[str]  # label-column order
    record_ids: list[str]  # the dataset's own record names, sorted
    fs: float
    leads: list[str]
    patient_ids: list[str] | None  # where the dataset has them, else None
    folds: np.ndarray | None  # PTB-XL strat_fold (N,), else None
    dropped: list[tuple[str, str]]  # (record_id, reason) for every record left out
    protocol: str

    def __post_init__(self) -> None:
        n = len(self.record_ids)
        if self.signals.ndim != 3 or self.signals.shape[0] != n:
            raise ValueError(f"signals {self.signals.shape} do not match {n} record ids")
        if self.labels.shape != (n, len(self.classes)):
            raise ValueError(f"labels {self.labels.shape} do not match ({n}, {len(self.classes)})")
        if self.patient_ids is not None and len(self.patient_ids) != n:
            raise ValueError(f"{len(self.patient_ids)} patient ids for {n} records")
        if self.folds is not None and self.folds.shape != (n,):
            raise ValueError(f"folds {self.folds.shape} do not match {n} records")


def n_samples(fs: float, seconds: float) -> int:
    """Samples per record: round(seconds * fs)."""
    return round(seconds * fs)


def decimation_factor(native_fs: float, fs: float, source: object) -> int:
    """The integer k with native_fs / k == fs; the paper's `x[::k]` knows no other ratio."""
    ratio = native_fs / fs
    k = round(ratio)
    if k < 1 or not math.isclose(ratio, k, rel_tol=0, abs_tol=1e-9):
        raise ValueError(
            f"{source}: native rate {native_fs:g} Hz is not an integer multiple of fs={fs:g} Hz; "
            f"the paper protocol only decimates by integer factors"
        )
    return k


def minmax(x: np.ndarray) -> np.ndarray:
    """Each lead (last axis) mapped linearly onto [-1, 1]; a flat lead becomes zeros, not NaN."""
    lo = x.min(axis=-1, keepdims=True)
    span = x.max(axis=-1, keepdims=True) - lo
    flat = span == 0
    scaled = 2.0 * (x - lo) / np.where(flat, 1.0, span) - 1.0
    return np.where(flat, 0.0, scaled)


def fill_nan(x: np.ndarray) -> np.ndarray:
    """Missing samples take the previous valid value of their lead, or the next one at the start.

    Vectorised (no per-sample Python): forward fill through the running maximum of the indices of
    valid samples, then the same on the time-reversed array for leading gaps. A lead with no valid
    sample stays NaN, for the caller to report.
    """
    if not np.isnan(x).any():
        return x
    flat = x.reshape(-1, x.shape[-1])
    filled = _forward_fill(_forward_fill(flat)[:, ::-1])[:, ::-1]
    return filled.reshape(x.shape)


def _forward_fill(a: np.ndarray) -> np.ndarray:
    source = np.where(np.isnan(a), 0, np.arange(a.shape[-1]))
    np.maximum.accumulate(source, axis=-1, out=source)
    return a[np.arange(a.shape[0])[:, None], source]


# --- protocols ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Protocol:
    """The preprocessing choices that define a protocol (see the module docstring)."""

    name: str
    # dataset -> scaling used when load() gets scaling=None
    default_scaling: Mapping[str, str]
    # (signal (..., T), native_fs, fs, source) -> signal at fs
    resample: Callable[[np.ndarray, float, float, object], np.ndarray]
    # (signal (..., T), n, dataset) -> n-sample window, or None when the record is too short
    crop: Callable[[np.ndarray, int, str], np.ndarray | None]
    # (native rates a dataset offers, fs, source) -> the rate to read
    choose_native_fs: Callable[[Sequence[float], float, object], float]


def _paper_resample(x: np.ndarray, native_fs: float, fs: float, source: object) -> np.ndarray:
    # The paper keeps every k-th sample, without an anti-aliasing filter.
    return x[..., :: decimation_factor(native_fs, fs, source)]


def _paper_crop(x: np.ndarray, n: int, dataset: str) -> np.ndarray | None:
    length = x.shape[-1]
    if length < n:
        return None
    if dataset == "ribeiro":
        # CODE tracings are zero-padded to 4096 samples around the recording; the paper cut the
        # same number of samples from both ends (an odd excess loses its extra sample at the end).
        start = (length - n) // 2
        return x[..., start : start + n]
    return x[..., :n]


def _paper_native_fs(available: Sequence[float], fs: float, source: object) -> float:
    # PTB-XL ships 100 Hz and 500 Hz copies: read the lowest one that fs divides (at the paper's
    # fs=100 that is the 100 Hz copy, as the paper used).
    for native in sorted(available):
        ratio = native / fs
        if ratio >= 1 and math.isclose(ratio, round(ratio), rel_tol=0, abs_tol=1e-9):
            return native
    raise ValueError(
        f"{source}: fs={fs:g} Hz does not divide any native rate {sorted(available)}; "
        f"the paper protocol only decimates by integer factors"
    )


PROTOCOLS: dict[str, Protocol] = {
    "paper": Protocol(
        name="paper",
        default_scaling={
            "ptbxl": "none",
            "cpsc2018": "minmax",
            "georgia": "minmax",
            "ptb": "none",
            "ribeiro": "minmax",
        },
        resample=_paper_resample,
        crop=_paper_crop,
        choose_native_fs=_paper_native_fs,
    ),
}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(
            f"unknown protocol {name!r}; known protocols: {sorted(PROTOCOLS)}"
        ) from None


@dataclass(frozen=True)
class Settings:
    """A validated request: which dataset, under which protocol, at which rate and length."""

    dataset: str
    protocol: Protocol
    fs: float
    length: int
    scaling: str

    @classmethod
    def create(
        cls, dataset: str, protocol: str, fs: float, seconds: float, scaling: str | None
    ) -> Settings:
        proto = get_protocol(protocol)
        if not (math.isfinite(fs) and fs > 0):
            raise ValueError(f"fs must be a positive number of Hz, got {fs!r}")
        if not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"seconds must be a positive duration, got {seconds!r}")
        length = n_samples(fs, seconds)
        if length < 1:
            raise ValueError(f"seconds={seconds!r} at fs={fs!r} gives no samples")
        if scaling is None:
            scaling = proto.default_scaling[dataset]
        if scaling not in SCALINGS:
            raise ValueError(f"unknown scaling {scaling!r}; expected None or one of {SCALINGS}")
        return cls(dataset, proto, float(fs), length, scaling)


class Collector:
    """Applies the protocol to each record a reader hands over and assembles the RecordSet.

    Readers call `add` or `drop` once per record, in sorted order; the signals go straight into one
    preallocated float32 array, so memory stays at the size of the result.
    """

    def __init__(
        self,
        settings: Settings,
        capacity: int,
        classes: Sequence[str],
        *,
        patients: bool = False,
        folds: bool = False,
    ) -> None:
        self.settings = settings
        self.capacity = capacity
        self.classes = list(classes)
        self._signals = np.empty((capacity, len(STANDARD_LEADS), settings.length), np.float32)
        self._labels = np.zeros((capacity, len(self.classes)), np.uint8)
        self._ids: list[str] = []
        self._patients: list[str] | None = [] if patients else None
        self._folds: list[int] | None = [] if folds else None
        self._dropped: list[tuple[str, str]] = []

    def add(
        self,
        record_id: str,
        signal: np.ndarray,
        native_fs: float,
        source: object,
        label: Sequence[int] | np.ndarray,
        *,
        patient_id: str | None = None,
        fold: int | None = None,
        fill_missing: bool = False,
    ) -> None:
        """Preprocess one record (12 leads in STANDARD_LEADS order, mV) and keep it, or drop it."""
        s = self.settings
        if signal.shape[0] != len(STANDARD_LEADS):
            raise ValueError(f"{source}: {signal.shape[0]} leads after reordering; expected 12")
        resampled = s.protocol.resample(signal, native_fs, s.fs, source)
        window = s.protocol.crop(resampled, s.length, s.dataset)
        if window is None:
            self.drop(
                record_id,
                f"too short: {signal.shape[-1]} samples at {native_fs:g} Hz give "
                f"{resampled.shape[-1]} at {s.fs:g} Hz; {s.length} needed",
            )
            return
        if fill_missing:
            window = fill_nan(window)
        if np.isnan(window).any():
            bad = [STANDARD_LEADS[i] for i in np.flatnonzero(np.isnan(window).any(axis=-1))]
            raise ValueError(
                f"{source}: missing (NaN) samples in lead(s) {bad}"
                + (" with no valid sample to fill from" if fill_missing else "")
            )
        if s.scaling == "minmax":
            window = minmax(window)
        i = len(self._ids)
        if i >= self.capacity:
            raise RuntimeError(f"more records than the {self.capacity} announced")
        self._signals[i] = window
        self._labels[i] = label
        self._ids.append(record_id)
        if self._patients is not None:
            if patient_id is None:
                raise ValueError(f"{source}: no patient id")
            self._patients.append(patient_id)
        if self._folds is not None:
            if fold is None:
                raise ValueError(f"{source}: no fold")
            self._folds.append(fold)
        self._progress()

    def drop(self, record_id: str, reason: str) -> None:
        """Leave a record out for one of the documented reasons; it is listed in `dropped`."""
        self._dropped.append((record_id, reason))
        self._progress()

    def _progress(self) -> None:
        seen = len(self._ids) + len(self._dropped)
        if seen % _PROGRESS_EVERY == 0 or seen == self.capacity:
            logger.info("%s: %d/%d records read", self.settings.dataset, seen, self.capacity)

    def finish(self) -> RecordSet:
        n = len(self._ids)
        if n == 0:
            first = (
                f" (first: {self._dropped[0][0]}: {self._dropped[0][1]})" if self._dropped else ""
            )
            raise ValueError(
                f"{self.settings.dataset}: all {len(self._dropped)} records were dropped{first}"
            )
        return RecordSet(
            signals=self._signals[:n],
            labels=self._labels[:n],
            classes=self.classes,
            record_ids=self._ids,
            fs=self.settings.fs,
            leads=list(STANDARD_LEADS),
            patient_ids=self._patients,
            folds=np.asarray(self._folds, dtype=np.int64) if self._folds is not None else None,
            dropped=self._dropped,
            protocol=self.settings.protocol.name,
        )
