"""What every dataset reader shares: lead names, the record set, and the preprocessing protocols.

A *protocol* is the set of choices that turn a dataset's native recordings into fixed-size model
inputs: how to reach the target sampling rate, which window of the recording to keep, the
default amplitude scaling, what to do with missing samples and which diagnosis codes count as
one. The readers only read files and labels; `IndexBuilder` (the cheap first phase: one row per
record, from headers and label files) and `preprocess` (the second phase, per record) apply the
protocol. So a protocol is one `Protocol(...)` entry in `PROTOCOLS`, with no change to the
readers.

Two phases, because the first is cheap and serial (it decides the record list, the labels and
the split) and the second is expensive and parallel (any subset of index rows can be read and
preprocessed by its own job).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

NAMES = ("ptbxl", "cpsc2018", "georgia", "ptb", "ribeiro")
STANDARD_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
SCALINGS = ("none", "minmax")
ON_BAD_RECORD = ("error", "skip")

# Index row status: kept, left out by the protocol's documented rules, or unreadable/malformed.
OK, DROPPED, BAD = "ok", "dropped", "bad"

# Lower-cased spellings found in the datasets' files -> standard name. Ribeiro's CODE uses the
# Brazilian DI/DII/DIII for the limb leads; PTB writes everything in lower case; PTB-XL upper.
_LEAD_ALIASES = {lead.lower(): lead for lead in STANDARD_LEADS} | {
    "di": "I",
    "dii": "II",
    "diii": "III",
}

_PROGRESS_EVERY = 1000
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class BadRecordError(ValueError):
    """One record cannot be used: its files are missing, truncated or contradict each other.

    Carries what a quarantine list needs (record id, file, reason). A ValueError, so callers that
    only know "bad input" keep working. Problems of a whole dataset (no label file, an HDF5 file
    that does not open) are plain ValueError/FileNotFoundError: there is no record to skip.
    """

    def __init__(self, record_id: str, file: object, reason: str) -> None:
        self.record_id = str(record_id)
        self.file = str(file)
        # Messages from lower layers usually start with the file already ("file: ..." or
        # "file, line N: ..."); do not say it twice.
        separator = ": "
        for prefix in (f"{self.file}: ", f"{self.file}, "):
            if reason.startswith(prefix):
                reason, separator = reason[len(prefix) :], prefix[len(self.file) :]
                break
        self.reason = reason
        super().__init__(f"{self.file}{separator}{self.reason} (record {self.record_id})")


def as_bad_record(record_id: str, file: object, exc: Exception) -> BadRecordError:
    """A reader's error about one record, as the BadRecordError a quarantine list takes."""
    if isinstance(exc, BadRecordError):
        return exc
    return BadRecordError(record_id, file, str(exc))


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

    signals: np.ndarray  # (N, 12, T) float32, leads in the order `leads` names
    labels: np.ndarray  # (N, C) uint8 multi-hot
    classes: list[str]  # label-column order
    record_ids: list[str]  # the dataset's own record names, sorted
    fs: float
    leads: list[str]  # standard names, in the order of axis 1 of `signals`
    patient_ids: list[str] | None  # where the dataset has them, else None
    folds: np.ndarray | None  # PTB-XL strat_fold (N,), else None
    dropped: list[tuple[str, str]]  # (record_id, reason) for every record left out
    protocol: str
    # (record_id, file, reason) of bad records left out with on_bad_record="skip"
    quarantined: list[tuple[str, str, str]] = field(default_factory=list)

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
    """Each lead (last axis) mapped linearly onto [-1, 1]; a flat lead becomes zeros, not NaN.

    The `sound` protocol's minmax (only used when a config asks for it): a flat lead carries no
    information, and 0 is the value that says so without biasing the input.
    """
    lo = x.min(axis=-1, keepdims=True)
    span = x.max(axis=-1, keepdims=True) - lo
    flat = span == 0
    scaled = 2.0 * (x - lo) / np.where(flat, 1.0, span) - 1.0
    return np.where(flat, 0.0, scaled)


def minmax_sklearn(x: np.ndarray) -> np.ndarray:
    """Each lead (last axis) onto [-1, 1] exactly as the paper's notebooks did it.

    The notebooks call `MinMaxScaler((-1, 1)).fit_transform(record)` on each (samples, leads)
    record, i.e. per record and lead. sklearn ignores NaN in the min and max and leaves NaN
    samples NaN (the Georgia notebook fills them afterwards, see `fill_nan_neighbours`); a range
    below 10 machine epsilons counts as flat and its scale as 1, so a flat lead becomes -1, not
    0. Same arithmetic as sklearn (scale = 2 / range, offset = -1 - min * scale, x * scale +
    offset), so the values agree to the last bit, not just within a tolerance.
    """
    with warnings.catch_warnings():  # a lead with no valid sample stays NaN, for the caller
        warnings.simplefilter("ignore", RuntimeWarning)
        lo = np.nanmin(x, axis=-1, keepdims=True)
        hi = np.nanmax(x, axis=-1, keepdims=True)
    span = hi - lo
    eps = np.finfo(span.dtype).eps if np.issubdtype(span.dtype, np.floating) else 0.0
    scale = 2.0 / np.where(span < 10 * eps, 1.0, span)
    return x * scale + (-1.0 - lo * scale)


def fill_nan_neighbours(x: np.ndarray) -> np.ndarray:
    """Missing samples take the mean of the nearest valid sample on each side in their lead; at
    the start or end of the window, the nearest valid sample. A lead with no valid sample stays
    NaN, for the caller to report.

    The Georgia notebook's rule: its `fill_nan` sets an isolated NaN to the mean of its two
    neighbours, or to the one neighbour at the window's first or last sample; the runs of two
    it leaves NaN it filled by hand with the same rule applied to the nearest valid samples
    (a run at the start took the first valid sample, an inner run the mean of the valid samples
    around it). This is that rule for any pattern, vectorised.
    """
    missing = np.isnan(x)
    if not missing.any():
        return x
    flat = x.reshape(-1, x.shape[-1])
    before = _forward_fill(flat)  # nearest valid sample at or before t (NaN: none)
    after = _forward_fill(flat[:, ::-1])[:, ::-1]  # nearest valid sample at or after t
    both = (before + after) / 2.0
    one = np.where(np.isnan(before), after, before)
    filled = np.where(np.isnan(both), one, both)
    return np.where(missing, filled.reshape(x.shape), x)


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
    # (native length, native_fs, fs[, source]) -> length after resample, without reading the
    # signal; a ValueError naming `source` where the protocol cannot reach fs from native_fs
    resampled_length: Callable[..., int]
    # (signal (..., T), n, dataset) -> n-sample window, or None when the record is too short
    crop: Callable[[np.ndarray, int, str], np.ndarray | None]
    # (native rates a dataset offers, fs, source) -> the rate to read
    choose_native_fs: Callable[[Sequence[float], float, object], float]
    # True: NaN samples are linearly interpolated in every dataset, before resampling (a filter
    # cannot run over NaN). False: the paper's rule, NaN in the kept samples filled after scaling
    # from the neighbouring kept samples (`fill_nan_neighbours`) for the datasets in
    # `fill_nan_datasets`, a bad record elsewhere.
    interpolate_missing: bool
    fill_nan_datasets: frozenset[str]
    # scaling "minmax": (signal (..., T)) -> each lead onto [-1, 1]
    minmax: Callable[[np.ndarray], np.ndarray]
    # True: leads in the order the dataset's files store them, where that order is fixed for the
    # whole dataset (Ribeiro's HDF5 columns), as the paper fed them; False: STANDARD_LEADS order.
    file_lead_order: bool
    # SNOMED-CT code -> the code it is scored as (Challenge 2020 equivalence); empty: none merged
    equivalent_codes: Mapping[str, str]
    # whether the index hashes every record's raw signal bytes (needed to keep duplicates together)
    hash_records: bool
    # split.val_size when the config does not set it
    default_val_size: float


def _paper_resample(x: np.ndarray, native_fs: float, fs: float, source: object) -> np.ndarray:
    # The paper keeps every k-th sample, without an anti-aliasing filter.
    return x[..., :: decimation_factor(native_fs, fs, source)]


def _paper_length(length: int, native_fs: float, fs: float, source: object = "record") -> int:
    k = decimation_factor(native_fs, fs, source)
    return -(-length // k)  # len(x[::k]) == ceil(length / k)


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


def rational_ratio(native_fs: float, fs: float) -> tuple[int, int]:
    """(up, down) with native_fs * up / down == fs, in lowest terms (e.g. 500 -> 128: 32, 125).

    Rates are read from headers as decimals; limit_denominator turns 257.0000001 back into 257
    instead of a ratio of millions.
    """
    ratio = Fraction(fs).limit_denominator(10_000) / Fraction(native_fs).limit_denominator(10_000)
    return ratio.numerator, ratio.denominator


def no_upsampling(file: object, native_fs: float, fs: float, protocol: str) -> str:
    """The one message every reader gives when a record's rate is below the requested fs."""
    return (
        f"{file}: native rate {native_fs:g} Hz is below the requested fs={fs:g} Hz; protocol "
        f"{protocol!r} does not upsample (an upsampled record holds no band above "
        f"{native_fs / 2:g} Hz); choose fs <= {native_fs:g}"
    )


def _sound_resample(x: np.ndarray, native_fs: float, fs: float, source: object) -> np.ndarray:
    # Polyphase resampling with scipy's default Kaiser-window anti-aliasing filter: any rational
    # ratio, and no aliasing of muscle noise or pacing spikes into the band the model sees.
    # padtype="line": the filter sees the record continued by the line through its first and last
    # samples, not by zeros, so a record with a DC offset does not ring at its edges.
    import scipy.signal

    if fs > native_fs:
        raise ValueError(no_upsampling(source, native_fs, fs, "sound"))
    up, down = rational_ratio(native_fs, fs)
    if up == down:
        return x
    return scipy.signal.resample_poly(x, up, down, axis=-1, padtype="line")


def _sound_length(length: int, native_fs: float, fs: float, source: object = "record") -> int:
    up, down = rational_ratio(native_fs, fs)
    return -(-length * up // down)  # resample_poly's output length: ceil(length * up / down)


def _sound_native_fs(available: Sequence[float], fs: float, source: object) -> float:
    # The lowest copy that still holds the band up to fs/2: PTB-XL's 100 Hz copy for fs <= 100
    # (PhysioNet made it by filtered downsampling), its 500 Hz copy above that. Above every copy,
    # the highest: IndexBuilder.add then refuses to upsample it with the message every dataset
    # gives, naming the record file.
    at_least = [native for native in sorted(available) if native >= fs]
    return at_least[0] if at_least else max(available)


# Challenge 2020 scores each pair as one diagnosis (RBBB/CRBBB, PAC/SVPB, PVC/VPB).
EQUIVALENT_CODES = {"713427006": "59118001", "63593006": "284470004", "17338001": "427172004"}

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
        resampled_length=_paper_length,
        crop=_paper_crop,
        choose_native_fs=_paper_native_fs,
        interpolate_missing=False,
        fill_nan_datasets=frozenset({"cpsc2018", "georgia"}),
        minmax=minmax_sklearn,
        file_lead_order=True,
        equivalent_codes={},
        hash_records=False,
        default_val_size=0.0,
    ),
    # Millivolts, unscaled, for every dataset: all readers convert to mV, so amplitudes are
    # comparable across datasets, and voltage is diagnostic (hypertrophy and low-voltage criteria
    # are amplitude thresholds) -- per-record min-max or z-scoring would erase exactly that.
    "sound": Protocol(
        name="sound",
        default_scaling=dict.fromkeys(NAMES, "none"),
        resample=_sound_resample,
        resampled_length=_sound_length,
        crop=_paper_crop,
        choose_native_fs=_sound_native_fs,
        interpolate_missing=True,
        fill_nan_datasets=frozenset(),
        minmax=minmax,
        file_lead_order=False,
        equivalent_codes=EQUIVALENT_CODES,
        hash_records=True,
        default_val_size=0.1,
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
    """A validated request: which dataset, under which protocol, at which rate and length.

    `leads` is the order of the leads in every preprocessed record (standard names): the
    shards and checkpoints carry it, so code downstream never has to assume STANDARD_LEADS.
    """

    dataset: str
    protocol: Protocol
    fs: float
    length: int
    scaling: str
    leads: tuple[str, ...] = STANDARD_LEADS

    @classmethod
    def create(
        cls,
        dataset: str,
        protocol: str,
        fs: float,
        seconds: float,
        scaling: str | None,
        file_leads: Sequence[str] | None = None,
    ) -> Settings:
        """`file_leads`: the standard names of the leads in the order the dataset's files store
        them, where that order is fixed for the whole dataset (Ribeiro), else None."""
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
        leads = STANDARD_LEADS
        if proto.file_lead_order and file_leads is not None:
            leads = _check_leads(file_leads, f"{dataset}'s file lead order")
        return cls(dataset, proto, float(fs), length, scaling, leads)

    def describe(self) -> dict:
        """JSON-able form, enough for `from_description` (the index's meta file carries it)."""
        return {
            "dataset": self.dataset,
            "protocol": self.protocol.name,
            "fs": self.fs,
            "length": self.length,
            "scaling": self.scaling,
            "leads": list(self.leads),
        }

    @classmethod
    def from_description(cls, d: Mapping) -> Settings:
        proto = get_protocol(d["protocol"])
        # An index written before `leads` was recorded was always in STANDARD_LEADS order.
        leads = _check_leads(d.get("leads", STANDARD_LEADS), "index meta field settings.leads")
        return cls(d["dataset"], proto, float(d["fs"]), int(d["length"]), d["scaling"], leads)


def _check_leads(leads: Sequence[str], source: object) -> tuple[str, ...]:
    """`leads` as a tuple, if it is the 12 standard names in some order."""
    leads = tuple(leads)
    if sorted(leads) != sorted(STANDARD_LEADS):
        raise ValueError(
            f"{source}: {list(leads)}; expected the 12 standard leads {list(STANDARD_LEADS)} "
            "in some order"
        )
    return leads


def check_on_bad_record(value: str) -> str:
    if value not in ON_BAD_RECORD:
        raise ValueError(f"on_bad_record is {value!r}; expected one of {list(ON_BAD_RECORD)}")
    return value


def hash_bytes(chunks: Iterable[bytes]) -> str:
    """Content hash of a record's raw signal bytes: identical signals under two names collide."""
    h = hashlib.blake2b(digest_size=16)
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


def hash_files(paths: Iterable[Path]) -> str:
    return hash_bytes(p.read_bytes() for p in paths)


def canonical_codes(codes: Iterable[str], settings: Settings) -> list[str]:
    """Codes as the protocol scores them: `sound` merges the Challenge's equivalent pairs."""
    eq = settings.protocol.equivalent_codes
    return [eq.get(code, code) for code in codes]


# --- phase 1: the index ------------------------------------------------------------------------

INDEX_COLUMNS = (
    "record_id",
    "file",
    "patient_id",
    "fold",
    "native_fs",
    "native_length",
    "hash",
    "status",
    "reason",
)
_LABEL_PREFIX = "label:"
_STR_COLUMNS = ("record_id", "file", "patient_id", "hash", "status", "reason")


@dataclass
class DatasetIndex:
    """Phase 1 of reading a dataset: one row per record, no signal read.

    `table` has INDEX_COLUMNS plus one `label:<class>` column per class (0/1), sorted by
    record_id. `file` is relative to `root` (the header, or Ribeiro's HDF5 file). `status` is
    OK, DROPPED (left out by the protocol's rules, e.g. too short; `reason` says why) or BAD
    (unreadable or malformed; only with on_bad_record="skip"). `hash` is the content hash of the
    raw signal bytes where the protocol needs it (sound), else empty. Callers may add columns
    (the shard stage adds `split` and `part`); they travel through to_csv/read_csv.
    """

    dataset: str
    root: Path
    settings: Settings
    classes: list[str]
    table: pd.DataFrame

    @property
    def labels(self) -> np.ndarray:
        cols = [f"{_LABEL_PREFIX}{c}" for c in self.classes]
        return self.table[cols].to_numpy(dtype=np.uint8).reshape(len(self.table), len(cols))

    @property
    def record_ids(self) -> list[str]:
        return self.table["record_id"].tolist()

    @property
    def leads(self) -> list[str]:
        """The order of the leads in every record `read` returns (what a shard must record)."""
        return list(self.settings.leads)

    def has_patients(self) -> bool:
        return bool((self.table["patient_id"] != "").any())

    def where(self, mask: np.ndarray | pd.Series) -> DatasetIndex:
        return DatasetIndex(
            self.dataset, self.root, self.settings, self.classes,
            self.table[np.asarray(mask)].reset_index(drop=True),
        )

    def to_csv(self, path: str | os.PathLike) -> None:
        self.table.to_csv(path, index=False)

    def left_out(self) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
        """What the index already left out: (record_id, reason) of the DROPPED rows and
        (record_id, file, reason) of the BAD ones, in index order."""
        t = self.table
        dropped = [(r, why) for r, st, why in zip(t.record_id, t.status, t.reason, strict=True)
                   if st == DROPPED]
        bad = [(r, f, why) for r, f, st, why in zip(t.record_id, t.file, t.status, t.reason,
                                                   strict=True) if st == BAD]
        return dropped, bad

    def meta(self) -> dict:
        counts = self.table["status"].value_counts()
        return {
            "dataset": self.dataset,
            "settings": self.settings.describe(),
            "classes": self.classes,
            "leads": self.leads,
            "n_records": len(self.table),
            **{f"n_{s}": int(counts.get(s, 0)) for s in (OK, DROPPED, BAD)},
        }

    @classmethod
    def read_csv(
        cls, path: str | os.PathLike, meta: Mapping, root: str | os.PathLike
    ) -> DatasetIndex:
        """The index a `to_csv` wrote; `meta` is what `meta()` returned (classes, settings)."""
        path = Path(path)
        try:
            table = pd.read_csv(
                path, dtype=dict.fromkeys(_STR_COLUMNS, str), keep_default_na=False
            )
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise ValueError(f"{path}: unreadable index CSV ({exc})") from exc
        classes = list(meta["classes"])
        wanted = [*INDEX_COLUMNS, *(f"{_LABEL_PREFIX}{c}" for c in classes)]
        missing = [c for c in wanted if c not in table.columns]
        if missing:
            raise ValueError(f"{path}: not a dataset index, missing column(s) {missing}")
        settings = Settings.from_description(meta["settings"])
        return cls(settings.dataset, Path(root), settings, classes, table)


class IndexBuilder:
    """Collects the index rows a reader finds and applies the protocol's drop rules to them.

    `on_bad_record="error"` raises the first BadRecordError handed to `bad`; "skip" keeps the
    record as a BAD row, so the shard stage lists it in its quarantine file.
    """

    def __init__(self, settings: Settings, root: Path, classes: Sequence[str], on_bad_record: str):
        self.settings = settings
        self.root = root
        self.classes = list(classes)
        self.on_bad_record = check_on_bad_record(on_bad_record)
        self._rows: list[dict] = []
        self._labels: list[np.ndarray] = []
        self._zero = np.zeros(len(self.classes), np.uint8)

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def add(
        self,
        record_id: str,
        file: Path,
        label: np.ndarray | Sequence[int],
        native_fs: float,
        native_length: int,
        *,
        patient_id: str = "",
        fold: int = -1,
        content_hash: str = "",
    ) -> None:
        """A readable record; DROPPED with the reason when the protocol's window does not fit.

        A record below the requested rate stops the index (ValueError, whatever on_bad_record
        says): no protocol upsamples, and the record is not damaged, the request is wrong. A rate
        that is no rate (0, inf) or one the protocol cannot reach fs from (the paper's integer
        decimation from 333 Hz) is this record's problem: a bad record naming its file.
        """
        s = self.settings
        if not (math.isfinite(native_fs) and native_fs > 0):
            self.bad(BadRecordError(
                record_id, file, f"sampling rate {native_fs!r}; expected a finite number of Hz > 0"
            ))
            return
        if native_fs < s.fs:
            raise ValueError(no_upsampling(file, native_fs, s.fs, s.protocol.name))
        status, reason = OK, ""
        try:
            out_length = s.protocol.resampled_length(native_length, native_fs, s.fs, file)
        except (ValueError, ArithmeticError) as exc:
            self.bad(as_bad_record(record_id, file, exc))
            return
        if out_length < s.length:
            status = DROPPED
            reason = (
                f"too short: {native_length} samples at {native_fs:g} Hz give {out_length} at "
                f"{s.fs:g} Hz; {s.length} needed"
            )
        self._append(record_id, file, label, native_fs, native_length, patient_id, fold,
                     content_hash, status, reason)

    def drop(self, record_id: str, file: Path, reason: str, *, patient_id: str = "") -> None:
        """Leave a record out for one of the protocol's documented reasons (listed in `dropped`)."""
        self._append(record_id, file, self._zero, 0.0, 0, patient_id, -1, "", DROPPED, reason)

    def bad(self, error: BadRecordError) -> None:
        if self.on_bad_record == "error":
            raise error
        logger.warning("bad record, quarantined: %s", error)
        self._append(error.record_id, Path(error.file), self._zero, 0.0, 0, "", -1, "", BAD,
                     error.reason)

    def _append(self, record_id, file, label, native_fs, native_length, patient_id, fold,
                content_hash, status, reason) -> None:
        self._rows.append({
            "record_id": str(record_id),
            "file": self.rel(Path(file)),
            "patient_id": patient_id,
            "fold": int(fold),
            "native_fs": float(native_fs),
            "native_length": int(native_length),
            "hash": content_hash,
            "status": status,
            "reason": reason,
        })
        self._labels.append(np.asarray(label, dtype=np.uint8))
        seen = len(self._rows)
        if seen % _PROGRESS_EVERY == 0:
            logger.info("%s: %d records indexed", self.settings.dataset, seen)

    def finish(self) -> DatasetIndex:
        table = pd.DataFrame(self._rows, columns=list(INDEX_COLUMNS))
        labels = (np.vstack(self._labels) if self._labels
                  else np.zeros((0, len(self.classes)), np.uint8))
        for j, name in enumerate(self.classes):
            table[f"{_LABEL_PREFIX}{name}"] = labels[:, j]
        if table["record_id"].duplicated().any():
            repeated = table.loc[table["record_id"].duplicated(), "record_id"].tolist()[:5]
            raise ValueError(f"{self.root}: record id(s) {repeated} appear twice")
        table = table.sort_values("record_id", kind="stable").reset_index(drop=True)
        logger.info(
            "%s: %d records indexed (%d ok, %d dropped, %d bad)", self.settings.dataset,
            len(table), (table.status == OK).sum(), (table.status == DROPPED).sum(),
            (table.status == BAD).sum(),
        )
        return DatasetIndex(self.settings.dataset, self.root, self.settings, self.classes, table)


# --- phase 2: one record's signal ---------------------------------------------------------------


def interpolate_nan(x: np.ndarray) -> tuple[np.ndarray, int]:
    """NaN samples linearly interpolated from the valid samples of their lead (held flat at the
    ends); returns the signal and how many samples were filled. A lead with no valid sample is
    left NaN for the caller to report."""
    missing = np.isnan(x)
    count = int(missing.sum())
    if not count:
        return x, 0
    out = x.copy()
    t = np.arange(x.shape[-1])
    for i in np.flatnonzero(missing.any(axis=-1)):
        valid = ~missing[i]
        if valid.any():
            out[i, ~valid] = np.interp(t[~valid], t[valid], x[i, valid])
    return out, count


@dataclass(frozen=True)
class Preprocessed:
    """One record after the protocol: the model input, or None when the protocol drops it."""

    signal: np.ndarray | None  # (12, length) float32
    reason: str  # why it was dropped, else ""
    n_missing: int  # NaN samples filled or interpolated


def preprocess(
    signal: np.ndarray, native_fs: float, settings: Settings, record_id: str, file: object
) -> Preprocessed:
    """Apply the protocol to one record (12 leads in `settings.leads` order, millivolts).

    Infinite samples are always a bad record: no format stores them, so they mean corruption.
    So are values beyond float32's range (a header gain such as 1e-300 turns int16 samples into
    1e300 mV) and a window that is not finite once it is float32: the shard would hold inf or
    NaN, and training would fail later without naming the record.
    Under the paper's rule, missing samples are filled after the scaling, as the Georgia
    notebook did (sklearn's MinMaxScaler ignores NaN in the min and max and keeps them NaN).
    """
    s = settings
    p = s.protocol
    if signal.ndim != 2 or signal.shape[0] != len(s.leads):
        raise BadRecordError(
            record_id, file, f"{signal.shape[0]} leads after reordering; expected 12"
        )
    if np.isinf(signal).any():
        bad = [s.leads[i] for i in np.flatnonzero(np.isinf(signal).any(axis=-1))]
        raise BadRecordError(record_id, file, f"infinite samples in lead(s) {bad}")
    huge = np.abs(signal) > _FLOAT32_MAX  # NaN compares False: missing samples are not huge
    if huge.any():
        bad = [s.leads[i] for i in np.flatnonzero(huge.any(axis=-1))]
        raise BadRecordError(
            record_id, file,
            f"values in lead(s) {bad} exceed float32's range (largest magnitude "
            f"{np.nanmax(np.abs(signal)):.3g} mV > {_FLOAT32_MAX:.3g}); check the header's gain",
        )
    n_missing = 0
    if p.interpolate_missing:
        signal, n_missing = interpolate_nan(signal)
        _check_no_nan(signal, s.leads, record_id, file, " with no valid sample to interpolate from")
    try:
        resampled = p.resample(signal, native_fs, s.fs, file)
    except ValueError as exc:
        raise BadRecordError(record_id, file, str(exc)) from exc
    window = p.crop(resampled, s.length, s.dataset)
    if window is None:
        return Preprocessed(
            None,
            f"too short: {signal.shape[-1]} samples at {native_fs:g} Hz give "
            f"{resampled.shape[-1]} at {s.fs:g} Hz; {s.length} needed",
            n_missing,
        )
    fill = not p.interpolate_missing and s.dataset in p.fill_nan_datasets
    if fill:
        n_missing = int(np.isnan(window).sum())
    elif not p.interpolate_missing:
        _check_no_nan(window, s.leads, record_id, file, "")
    if s.scaling == "minmax":
        window = p.minmax(window)
    if fill and n_missing:
        window = fill_nan_neighbours(window)
        _check_no_nan(window, s.leads, record_id, file, " with no valid sample to fill from")
    with np.errstate(over="ignore", invalid="ignore"):  # reported below, naming the leads
        out = np.asarray(window, dtype=np.float32)
    finite = np.isfinite(out).all(axis=-1)
    if not finite.all():
        # e.g. the anti-aliasing filter overshooting a square wave just below float32's maximum
        bad = [s.leads[i] for i in np.flatnonzero(~finite)]
        raise BadRecordError(
            record_id, file,
            f"non-finite values in lead(s) {bad} after preprocessing (beyond float32's range "
            f"{_FLOAT32_MAX:.3g} after resampling or scaling); check the header's gain",
        )
    return Preprocessed(out, "", n_missing)


def _check_no_nan(
    x: np.ndarray, leads: Sequence[str], record_id: str, file: object, detail: str
) -> None:
    nan = np.isnan(x).any(axis=-1)
    if nan.any():
        bad = [leads[i] for i in np.flatnonzero(nan)]
        raise BadRecordError(record_id, file, f"missing (NaN) samples in lead(s) {bad}{detail}")
