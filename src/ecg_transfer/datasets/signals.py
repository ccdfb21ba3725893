"""Operations on one record's (leads, samples) array: the two min-max scalings and the two ways
of filling missing (NaN) samples. The protocols choose among them; nothing here knows a dataset.
"""

from __future__ import annotations

import warnings

import numpy as np


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
