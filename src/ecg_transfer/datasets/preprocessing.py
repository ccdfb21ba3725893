"""Phase 2 of reading a dataset: one record's signal through the protocol, into model input."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import BadRecordError
from .settings import Settings
from .signals import fill_nan_neighbours, interpolate_nan

_FLOAT32_MAX = float(np.finfo(np.float32).max)


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
