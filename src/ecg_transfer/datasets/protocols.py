"""The preprocessing protocols: `paper` (the seed paper's code) and `sound` (the careful one).

A *protocol* is the set of choices that turn a dataset's native recordings into fixed-size model
inputs: how to reach the target sampling rate, which window of the recording to keep, the
default amplitude scaling, what to do with missing samples and which diagnosis codes count as
one. The readers only read files and labels; the index builder (`indexing.IndexBuilder`) and
`preprocessing.preprocess` apply the protocol. So a protocol is one `Protocol(...)` entry in
`PROTOCOLS`, with no change to the readers.

Some choices of the paper were per dataset (its scaling, which datasets' missing samples it
filled); a dataset the tables do not name (a folder of records of the user's) gets the generic
choice: millivolts, and a missing sample is a bad record under `paper` (interpolated under
`sound`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .names import NAMES
from .signals import minmax, minmax_sklearn


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

    def scaling_for(self, dataset: str) -> str:
        """The scaling `dataset` gets when the config names none: the protocol's choice for a
        built-in dataset, millivolts ("none") for any other (amplitude is diagnostic, and
        every reader converts to mV)."""
        return self.default_scaling.get(dataset, "none")


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
