"""Seeded perturbations of 12-lead ECG test sets, for asking how robust each model is.

Every function takes ``signals`` of shape (records, leads, samples) at sampling rate ``fs``, in
millivolts or min-max scaled per lead, and returns a new array of the same shape and dtype (the
input is never written to). A seed fixes the perturbation, so every model of a study sees the
*same* corrupted test set; records differ from each other. The noise shape depends only on the
seed and the array's shape, and is then scaled to each lead's power, so the levels of one seed
are the same noise at different strengths (and lead drop-out's lead sets are nested: the leads
dropped at k = 3 include those dropped at k = 1). Perturb a test set in one call (or always in
the same batches): the draws run through the array in order.

**SNR.** ``SNR = 10 log10(P_signal / P_noise)`` per lead of each record, where ``P_signal`` is
the variance of the clean lead over the record (its mean, an offset that per-lead min-max
scaling and electrode offsets set arbitrarily, is not ECG power) and ``P_noise`` the mean square
of what is added (a shift of the baseline *is* noise). The noise is drawn, then scaled so that
every lead of every record is at exactly the requested SNR, not only on average;
:func:`measured_snr_db` measures it back. A lead with no variance (flat, or already dropped)
gets no noise, since any SNR of it is undefined.

This is not the MIT-BIH Noise Stress Test's SNR. Its ``nst`` (WFDB ``app/nst.c``) takes the
signal power from the QRS peak-to-peak amplitude A, S = A²/8 (``nsr = 10^(-snr/20) * sqrt(2)/4``,
A measured by ``sigamp -a`` within ±50 ms of annotated normal beats), and the noise power from
RMS amplitudes in 1-s windows each with its mean removed (``sigamp -r``). That needs beat
annotations the 12-lead test sets do not have, and the 1-s mean removal hides much of the power
of a wander below 0.5 Hz. Because an ECG is spiky, A²/8 exceeds its variance: on ten PTB-XL
records (A taken as the median range of 1-s windows, a stand-in for annotated beats) by 6-9 dB
per record (median over leads). So an NSTDB level of x dB is roughly x - 7 dB here, a harsher
number for the same noise (an estimate, not a conversion).

Nor are these neurokit2's ``signal_distort`` levels, which are amplitudes relative to the
signal's standard deviation rather than SNRs, and which at this study's 100 Hz and 10 s would
add nothing for most of what is wanted: its ``signal_simulate`` and ``_signal_distort_noise``
skip, with only a warning, every frequency above 0.1·fs (so 50/60 Hz power line and anything
above 10 Hz) and every frequency whose period exceeds the record (below 0.1 Hz). So neurokit2
is not used, nor needed: each kind below is a few lines of numpy.

**Kinds** (:data:`LEVELS` holds a default grade of levels for each):

* ``baseline_wander`` (level: SNR in dB): three sinusoids per record with frequencies drawn
  uniformly from 0.05-0.5 Hz (respiration, about 0.15-0.5 Hz, and slower body movement) and
  random phases, shared by the leads of a record (one cause), mixed with random weights per
  lead.
* ``powerline`` (SNR in dB): the mains fundamental (``line_hz`` 50 or 60 Hz, no harmonics) with
  a random phase per record and a random polarity per lead. Sampled at ``fs`` with no
  anti-aliasing filter it appears at the aliased frequency |f - fs·round(f/fs)|
  (:func:`aliased_frequency`): at fs = 100 Hz, 60 Hz shows as 40 Hz and 50 Hz lands exactly on
  the Nyquist frequency, where a sampled sinusoid keeps only cos(phase) of its amplitude: the
  phase 0 is used there, i.e. an alternating +A, -A. A real record downsampled to 100 Hz
  through an anti-aliasing low-pass filter holds no mains interference at all, so at 100 Hz
  this is a synthetic narrow-band stress at the aliased frequency, not a replica of a
  recorder's artefact; at fs = 500 Hz it is at the real frequency.
* ``emg`` (SNR in dB): Gaussian white noise band-limited to 20 Hz-fs/2 by zeroing its Fourier
  coefficients outside the band (exact, zero-phase). Muscle noise spans about 20-500 Hz; at
  fs = 100 Hz only its 20-50 Hz part can exist in the record, and that is what is added.
* ``lead_dropout`` (level: k leads): k distinct leads of each record, drawn per record, are set
  to 0 (the isoelectric level for millivolt data; for min-max scaled data 0 is mid-range).
* ``none``: the input, copied.

A level of ``None`` means "unperturbed" for every kind, as does k = 0 for lead drop-out and an
infinite SNR; an SNR of 0 dB is a real level (noise as strong as the signal).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["KINDS", "LEVELS", "aliased_frequency", "baseline_wander", "emg", "lead_dropout",
           "measured_snr_db", "perturb", "powerline"]

_SNR_GRADE = (24.0, 18.0, 12.0, 6.0, 0.0)
#: A default grade of levels per kind, mildest first: SNR in dB for the noises, number of leads
#: for drop-out.
LEVELS: dict[str, tuple[float, ...]] = {
    "baseline_wander": _SNR_GRADE,
    "powerline": _SNR_GRADE,
    "emg": _SNR_GRADE,
    "lead_dropout": (1, 3, 6, 9),
}
KINDS = ("none", *LEVELS)


def _checked(signals: np.ndarray) -> np.ndarray:
    signals = np.asarray(signals)
    if signals.ndim != 3:
        raise ValueError(
            f"signals must be a 3-D (records, leads, samples) array, got shape {signals.shape}"
        )
    if not np.issubdtype(signals.dtype, np.floating):
        raise ValueError(f"signals must be floating point, got dtype {signals.dtype}")
    if not np.isfinite(signals).all():
        raise ValueError("signals contain NaN or infinite values")
    return signals


def _checked_fs(fs: float) -> float:
    if not (isinstance(fs, numbers.Real) and math.isfinite(fs) and fs > 0):
        raise ValueError(f"fs must be a positive sampling rate in Hz, got {fs!r}")
    return float(fs)


def _checked_snr(snr_db: float | None) -> float | None:
    """The SNR, or None for 'leave the signals alone' (None or +inf)."""
    if snr_db is None or snr_db == math.inf:
        return None
    if not (isinstance(snr_db, numbers.Real) and math.isfinite(snr_db)):
        raise ValueError(f"snr_db must be a finite number of decibels (or None), got {snr_db!r}")
    return float(snr_db)


def _at_snr(signals: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``signals`` plus ``noise`` scaled so that each lead of each record is at ``snr_db``."""
    clean = signals.astype(np.float64)
    p_signal = clean.var(axis=-1)
    p_noise = np.mean(noise**2, axis=-1)
    target = p_signal / 10.0 ** (snr_db / 10.0)
    scale = np.sqrt(np.divide(target, p_noise, out=np.zeros_like(target), where=p_noise > 0))
    clean += noise * scale[..., None]
    return clean.astype(signals.dtype)


def measured_snr_db(clean: ArrayLike, noisy: ArrayLike) -> np.ndarray:
    """SNR in dB of each (record, lead) of ``noisy`` against ``clean``, as defined above.

    +inf where nothing was added; NaN where the clean lead is flat and nothing was added.
    """
    clean = np.asarray(clean, dtype=np.float64)
    added = np.asarray(noisy, dtype=np.float64) - clean
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10.0 * np.log10(clean.var(axis=-1) / np.mean(added**2, axis=-1))


def aliased_frequency(freq_hz: float, fs: float) -> float:
    """Where a sinusoid of ``freq_hz`` shows up when sampled at ``fs`` with no anti-aliasing."""
    fs = _checked_fs(fs)
    return abs(freq_hz - fs * round(freq_hz / fs))


def baseline_wander(signals: ArrayLike, snr_db: float | None, fs: float, seed: int, *,
                    band: tuple[float, float] = (0.05, 0.5),
                    n_components: int = 3) -> np.ndarray:
    """Slow sinusoidal drift in ``band`` (Hz) at ``snr_db`` per lead (see the module docstring)."""
    signals, fs, snr = _checked(signals), _checked_fs(fs), _checked_snr(snr_db)
    low, high = band
    if not 0 < low <= high < fs / 2:
        raise ValueError(f"band must satisfy 0 < low <= high < fs/2 = {fs / 2} Hz, got {band}")
    if snr is None:
        return signals.copy()
    n, leads, samples = signals.shape
    rng = np.random.default_rng(seed)
    freqs = rng.uniform(low, high, (n, n_components, 1))
    phases = rng.uniform(0.0, 2 * np.pi, (n, n_components, 1))
    weights = rng.standard_normal((n, leads, n_components))
    t = np.arange(samples) / fs
    waves = np.cos(2 * np.pi * freqs * t + phases)              # (records, components, samples)
    return _at_snr(signals, np.einsum("nlc,nct->nlt", weights, waves), snr)


def powerline(signals: ArrayLike, snr_db: float | None, fs: float, seed: int, *,
              line_hz: float = 50.0) -> np.ndarray:
    """Mains interference at ``line_hz``, as sampled at ``fs`` (aliased), at ``snr_db`` per lead."""
    signals, fs, snr = _checked(signals), _checked_fs(fs), _checked_snr(snr_db)
    apparent = aliased_frequency(line_hz, fs)
    if apparent == 0:
        raise ValueError(
            f"line_hz = {line_hz} Hz sampled at fs = {fs} Hz aliases to 0 Hz, a constant offset"
        )
    if snr is None:
        return signals.copy()
    n, leads, samples = signals.shape
    rng = np.random.default_rng(seed)
    phases = rng.uniform(0.0, 2 * np.pi, (n, 1, 1))
    polarity = rng.choice([-1.0, 1.0], (n, leads, 1))
    if apparent == fs / 2:
        # at Nyquist only cos(phase) of the amplitude survives sampling; show all of it
        phases = np.zeros_like(phases)
    t = np.arange(samples) / fs
    return _at_snr(signals, polarity * np.cos(2 * np.pi * line_hz * t + phases), snr)


def emg(signals: ArrayLike, snr_db: float | None, fs: float, seed: int, *,
        band: tuple[float, float | None] = (20.0, None)) -> np.ndarray:
    """Gaussian noise band-limited to ``band`` (Hz; None = fs/2) at ``snr_db`` per lead."""
    signals, fs, snr = _checked(signals), _checked_fs(fs), _checked_snr(snr_db)
    low, high = band[0], fs / 2 if band[1] is None else band[1]
    if not 0 <= low < high <= fs / 2:
        raise ValueError(
            f"band must satisfy 0 <= low < high <= fs/2 = {fs / 2} Hz, got ({low}, {high})"
        )
    if snr is None:
        return signals.copy()
    samples = signals.shape[-1]
    freqs = np.fft.rfftfreq(samples, 1 / fs)
    in_band = (freqs >= low) & (freqs <= high)
    if not in_band.any():
        raise ValueError(f"no frequency of a {samples}-sample record lies in {low}-{high} Hz")
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(signals.shape), axis=-1)
    spectrum[..., ~in_band] = 0
    return _at_snr(signals, np.fft.irfft(spectrum, n=samples, axis=-1), snr)


def lead_dropout(signals: ArrayLike, k: int | None, seed: int) -> np.ndarray:
    """``k`` of each record's leads set to 0, a different random set per record."""
    signals = _checked(signals)
    n, leads, _ = signals.shape
    if k is None:
        k = 0
    if isinstance(k, numbers.Real) and not isinstance(k, bool) and float(k).is_integer():
        k = int(k)
    if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= leads:
        raise ValueError(f"k must be a whole number of leads from 0 to {leads}, got {k!r}")
    out = signals.copy()
    if k == 0:
        return out
    order = np.random.default_rng(seed).random((n, leads)).argsort(axis=1)
    out[np.arange(n)[:, None], order[:, :k]] = 0
    return out


def _none(signals: ArrayLike, level: float | None, fs: float, seed: int) -> np.ndarray:
    return _checked(signals).copy()


def _dropout(signals: ArrayLike, level: float | None, fs: float, seed: int) -> np.ndarray:
    return lead_dropout(signals, level, seed)


_DISPATCH: dict[str, Callable[[ArrayLike, float | None, float, int], np.ndarray]] = {
    "none": _none,
    "baseline_wander": baseline_wander,
    "powerline": powerline,
    "emg": emg,
    "lead_dropout": _dropout,
}


def perturb(signals: ArrayLike, kind: str, level: float | None, fs: float,
            seed: int) -> np.ndarray:
    """Apply perturbation ``kind`` at ``level`` (SNR in dB, or k leads) with ``seed``.

    The one entry point an evaluation needs: ``for level in LEVELS[kind]: perturb(...)``.
    Non-default options (``line_hz``, bands) are on the individual functions.
    """
    if kind not in _DISPATCH:
        raise ValueError(f"unknown perturbation kind {kind!r}; expected one of {KINDS}")
    return _DISPATCH[kind](signals, level, fs, seed)
