"""The test-set perturbations: requested SNRs, seeding, shapes, spectra and refusals."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ecg_transfer.perturb import (
    KINDS,
    LEVELS,
    aliased_frequency,
    baseline_wander,
    emg,
    lead_dropout,
    measured_snr_db,
    perturb,
    powerline,
)

FS = 100
NOISES = ("baseline_wander", "powerline", "emg")


def _signals(seed: int = 0, n: int = 8, scaled: bool = False) -> np.ndarray:
    """Random 12-lead records of 10 s at 100 Hz: white noise with a per-lead offset and gain,
    in millivolts or min-max scaled to [-1, 1] per lead."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 12, 1000)) * rng.uniform(0.1, 2.0, (n, 12, 1))
    x += rng.uniform(-1, 1, (n, 12, 1))
    if scaled:
        lo, hi = x.min(axis=-1, keepdims=True), x.max(axis=-1, keepdims=True)
        x = 2 * (x - lo) / (hi - lo) - 1
    return x.astype(np.float32)


def _independent_snr_db(clean: np.ndarray, noisy: np.ndarray) -> np.ndarray:
    clean = clean.astype(np.float64)
    noise = noisy.astype(np.float64) - clean
    signal = clean - clean.mean(axis=-1, keepdims=True)
    return 10 * np.log10((signal**2).sum(axis=-1) / (noise**2).sum(axis=-1))


def _power_fraction(added: np.ndarray, keep, window: bool = False) -> np.ndarray:
    """Fraction of each lead's power at the frequencies where ``keep(freqs)`` holds."""
    if window:
        added = added * np.hanning(added.shape[-1])
    power = np.abs(np.fft.rfft(added, axis=-1)) ** 2
    freqs = np.fft.rfftfreq(added.shape[-1], 1 / FS)
    return power[..., keep(freqs)].sum(axis=-1) / power.sum(axis=-1)


@pytest.mark.parametrize("scaled", [False, True])
@pytest.mark.parametrize("kind", NOISES)
def test_every_lead_is_at_the_requested_snr(kind: str, scaled: bool) -> None:
    x = _signals(scaled=scaled)
    for level in LEVELS[kind]:
        out = perturb(x, kind, level, FS, seed=1)
        snr = _independent_snr_db(x, out)
        assert np.abs(snr - level).max() < 0.5, (kind, level, snr.min(), snr.max())
        np.testing.assert_allclose(measured_snr_db(x, out), snr, atol=1e-9)


@pytest.mark.parametrize("kind", [*NOISES, "lead_dropout"])
def test_the_same_seed_gives_the_same_output_and_another_seed_another(kind: str) -> None:
    x = _signals()
    level = LEVELS[kind][1]
    first = perturb(x, kind, level, FS, seed=7)
    np.testing.assert_array_equal(first, perturb(x, kind, level, FS, seed=7))
    assert not np.array_equal(first, perturb(x, kind, level, FS, seed=8))
    # records differ from one another
    added = first.astype(np.float64) - x
    assert not np.allclose(added[0] / np.abs(added[0]).max(), added[1] / np.abs(added[1]).max())


@pytest.mark.parametrize("kind", KINDS)
def test_shape_and_dtype_are_kept_and_the_input_is_not_written_to(kind: str) -> None:
    for dtype in (np.float32, np.float64):
        x = _signals().astype(dtype)
        before = x.copy()
        level = LEVELS[kind][-1] if kind != "none" else None
        out = perturb(x, kind, level, FS, seed=3)
        assert out.shape == x.shape and out.dtype == dtype
        assert out is not x
        np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("k", LEVELS["lead_dropout"])
def test_lead_dropout_zeroes_exactly_k_leads_of_each_record_and_keeps_the_rest(k: int) -> None:
    x = _signals(n=40)
    out = lead_dropout(x, k, seed=5)
    zeroed = (out == 0).all(axis=-1)
    assert (zeroed.sum(axis=1) == k).all()
    np.testing.assert_array_equal(out[~zeroed], x[~zeroed])
    assert len({tuple(np.flatnonzero(row)) for row in zeroed}) > 1  # differs per record


def test_lead_dropout_sets_grow_with_k_for_one_seed() -> None:
    x = _signals(n=20)
    masks = [(lead_dropout(x, k, seed=2) == 0).all(axis=-1) for k in LEVELS["lead_dropout"]]
    for smaller, larger in itertools.pairwise(masks):
        assert (larger[smaller]).all()


def test_no_perturbation_returns_the_input_unchanged() -> None:
    x = _signals()
    for out in (perturb(x, "none", None, FS, seed=0),
                perturb(x, "lead_dropout", 0, FS, seed=0),
                *(perturb(x, kind, None, FS, seed=0) for kind in NOISES),
                *(perturb(x, kind, float("inf"), FS, seed=0) for kind in NOISES)):
        np.testing.assert_array_equal(out, x)
        assert out is not x


def test_baseline_wander_lives_below_1_hz() -> None:
    x = _signals()
    added = baseline_wander(x, 6.0, FS, seed=4).astype(np.float64) - x
    # a Hann window keeps the leakage of a 0.05 Hz wave, a fraction of a cycle in 10 s, from
    # spreading over the whole periodogram
    assert _power_fraction(added, lambda f: f < 1.0, window=True).min() > 0.99


@pytest.mark.parametrize(("line_hz", "apparent"), [(50.0, 50.0), (60.0, 40.0)])
def test_powerline_shows_at_the_aliased_line_frequency(line_hz: float, apparent: float) -> None:
    assert aliased_frequency(line_hz, FS) == apparent
    assert aliased_frequency(line_hz, 500) == line_hz
    x = _signals()
    added = powerline(x, 6.0, FS, seed=4, line_hz=line_hz).astype(np.float64) - x
    assert _power_fraction(added, lambda f: f == apparent).min() > 0.999


def test_powerline_at_500_hz_is_at_the_line_frequency() -> None:
    x = np.repeat(_signals(n=4), 5, axis=-1)
    added = powerline(x, 12.0, 500, seed=1, line_hz=60.0).astype(np.float64) - x
    power = np.abs(np.fft.rfft(added, axis=-1)) ** 2
    freqs = np.fft.rfftfreq(added.shape[-1], 1 / 500)
    assert (power[..., freqs == 60.0].sum(axis=-1) / power.sum(axis=-1)).min() > 0.999


def test_emg_noise_is_confined_to_its_band() -> None:
    x = _signals()
    added = emg(x, 6.0, FS, seed=4).astype(np.float64) - x
    assert _power_fraction(added, lambda f: f >= 20.0).min() > 0.999


def test_a_flat_lead_gets_no_noise() -> None:
    x = _signals()
    x[0, 3] = 0.25
    for kind in NOISES:
        out = perturb(x, kind, 6.0, FS, seed=1)
        np.testing.assert_array_equal(out[0, 3], x[0, 3])


def test_bad_input_is_refused_with_a_message_that_names_it() -> None:
    x = _signals()
    with pytest.raises(ValueError, match="unknown perturbation kind 'gaussian'"):
        perturb(x, "gaussian", 6.0, FS, seed=0)
    with pytest.raises(ValueError, match="from 0 to 12, got 13"):
        perturb(x, "lead_dropout", 13, FS, seed=0)
    with pytest.raises(ValueError, match="whole number of leads"):
        perturb(x, "lead_dropout", 2.5, FS, seed=0)
    with pytest.raises(ValueError, match=r"3-D \(records, leads, samples\)"):
        perturb(x[0], "emg", 6.0, FS, seed=0)
    with pytest.raises(ValueError, match="floating point"):
        perturb(x.astype(np.int16), "emg", 6.0, FS, seed=0)
    with pytest.raises(ValueError, match="NaN"):
        perturb(np.where(x > 2, np.nan, x), "emg", 6.0, FS, seed=0)
    with pytest.raises(ValueError, match="snr_db"):
        perturb(x, "emg", float("nan"), FS, seed=0)
    with pytest.raises(ValueError, match="fs must be"):
        perturb(x, "powerline", 6.0, 0, seed=0)
    with pytest.raises(ValueError, match="aliases to 0 Hz"):
        powerline(x, 6.0, 50, seed=0, line_hz=50.0)
    with pytest.raises(ValueError, match="band"):
        baseline_wander(x, 6.0, FS, seed=0, band=(0.5, 60.0))
