"""A parametric 12-lead ECG: Gaussian P-QRS-T waves of a rotating heart vector (dipole).

Why a dipole: every lead is a projection of one 3-D heart vector onto an electrode's lead vector,
and the 12 leads are formed from nine electrode potentials (RA, LA, LL, V1..V6) exactly as an
electrocardiograph forms them. So the limb-lead identities (III = II - I, aVR = -(I + II)/2, ...)
hold in every synthetic record, noise included, and a diagnostic feature defined once as a change
of the heart vector (an RBBB's terminal rightward-anterior force, an infarct's Q vector) shows in
the right leads of every dataset. That shared feature space is what lets a model pretrained on
one demo dataset transfer to another, as the study asks of the real ones.

Why class effects are moderate: a demo whose classes differ only by an obvious feature is solved
perfectly in a few epochs, and then pretraining can not help. Here each finding is drawn from a
range that reaches the normal range's edge, patients differ in axis, amplitude, electrode
placement and heart rate, and baseline wander, mains hum, muscle noise and ectopic beats are
added independently of the labels.

Why a difficulty knob: a model needs many optimiser steps to find moderate effects under that
much patient variation, more than a demo run on two CPU cores can afford. `difficulty` (0, 1]
eases the task without changing which records have which findings: 1 is the realistic setting
above; below it every spread between patients (axis, amplitude, electrode placement, gain,
intervals) and every noise shrinks by that factor, and every finding's size moves that far
towards a clear textbook value (`_ease`), so borderline cases disappear. Easing transforms
values after they are drawn, so at difficulty 1 the generator draws the very random numbers it
always drew and its archives do not change by a bit.

Units: millivolts, seconds. Coordinates of the heart vector: x to the patient's left, y to the
feet, z to the front.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


def _unit(*v: float) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    return a / np.linalg.norm(a)


# Directions the findings point to: the heart region a lead group faces.
REGIONS: dict[str, np.ndarray] = {
    "lateral": _unit(0.9, -0.25, 0.15),  # I, aVL, V5, V6
    "inferior": _unit(0.1, 1.0, 0.0),  # II, III, aVF
    "anterior": _unit(-0.1, 0.0, 1.0),  # V1-V4
    "septal": _unit(-0.5, 0.0, 0.85),  # V1, V2
    "anterolateral": _unit(0.65, -0.05, 0.75),  # V3-V6, I, aVL
    "inferolateral": _unit(0.65, 0.75, 0.1),  # II, III, aVF, V5, V6
    "posterior": _unit(0.1, 0.0, -1.0),  # mirror image in V1-V3
    "apical": _unit(0.7, 0.6, 0.35),  # I, II, aVF, V4-V6: where ST depression usually shows
}

# Electrode indices: RA, LA, LL, then V1..V6.
_RA, _LA, _LL = 0, 1, 2


def _mix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a (m, k) times b (k, n), summed in a fixed order.

    Why not `a @ b`: BLAS picks kernels and threads by machine and load, so its sums can differ
    in the last bit between machines (and a threaded BLAS is ~100x slower for these skinny
    products on a busy 2-core machine). The archives' sha256 is pinned, so every float
    operation here must give the same bits everywhere.
    """
    out = a[:, 0:1] * b[0]
    for j in range(1, a.shape[1]):
        out = out + a[:, j : j + 1] * b[j]
    return out


def _leads(e: np.ndarray) -> np.ndarray:
    """Nine electrode potentials -> the 12 leads, as an electrocardiograph combines them."""
    ra, la, ll = e[_RA], e[_LA], e[_LL]
    wilson = (ra + la + ll) / 3.0
    limb = [la - ra, ll - ra, ll - la, ra - (la + ll) / 2, la - (ra + ll) / 2, ll - (ra + la) / 2]
    return np.vstack([np.array(limb), e[3:] - wilson])


# Electrode lead vectors: an equilateral Einthoven triangle (RA + LA + LL = 0) and six chest
# electrodes around the heart in the horizontal plane, nearer ones seeing larger potentials.
_LIMB = np.array([[-0.5, -0.289, 0.0], [0.5, -0.289, 0.0], [0.0, 0.577, 0.0]])
_CHEST_ANGLE = np.radians([118.0, 96.0, 78.0, 58.0, 32.0, 6.0])
_CHEST_GAIN = np.array([1.0, 1.5, 1.75, 1.75, 1.4, 1.0])
_CHEST_Y = np.array([-0.05, -0.05, 0.0, 0.1, 0.15, 0.2])


@dataclass
class Findings:
    """What the heart does in one record; the defaults are a normal ECG.

    Dataset generators start from `Subject.baseline` and change fields through `apply`, so one
    named finding means the same waveform change in every dataset.
    """

    rhythm: str = "sinus"  # "sinus", "af" or "flutter"
    hr: float = 72.0  # mean ventricular rate, beats/min
    hrv: float = 0.03  # relative beat-to-beat RR variation in sinus rhythm
    pr: float = 0.16  # P onset to QRS onset, s
    p_amp: float = 0.1  # mV, each of the two atrial components
    p_width: float = 1.0  # scale of the P-wave duration
    la_share: float = 1.0  # left-atrial component relative to the right-atrial one
    qrs: str = "normal"  # "normal", "rbbb", "irbbb", "lbbb", "ivcd", "rvh"
    qrs_width: float = 0.09  # s
    axis: float = 50.0  # frontal QRS axis, degrees
    horiz: float = -0.12  # posterior (-) / anterior (+) tilt of the main QRS force
    qrs_gain: float = 1.0  # QRS voltage factor (hypertrophy > 1, low voltage < 1)
    r_amp: float = 1.3  # mV
    t_amp: float = 0.32  # mV
    t_axis: float = 45.0  # frontal T axis, degrees
    qtc: float = 0.41  # Bazett-corrected QT, s
    st: list[tuple[str, float]] = field(default_factory=list)  # (region, mV): + elevation there
    t_extra: list[tuple[str, float]] = field(default_factory=list)  # (region, mV) T change
    mi: list[tuple[str, float]] = field(default_factory=list)  # (region, mV of the Q wave)
    pac_rate: float = 0.0  # probability that a beat is a premature atrial one
    pvc_rate: float = 0.0  # probability that a beat is a premature ventricular one
    af_amp: float = 0.05  # mV of fibrillatory / flutter waves
    flutter_rate: float = 290.0  # atrial rate in flutter, /min
    flutter_ratio: int = 2  # AV conduction ratio in flutter
    af_irregularity: float = 0.22  # log-normal spread of the RR intervals in AF


@dataclass
class Subject:
    """One patient: body and recording set-up, shared by all of the patient's records."""

    rotation: np.ndarray  # (3, 3) heart orientation
    electrodes: np.ndarray  # (9, 3) electrode lead vectors (placement varies)
    gain: float  # overall voltage (body habitus)
    baseline: Findings  # this patient's own normal values
    pvc_dir: np.ndarray  # (3,) direction of this patient's ectopic ventricular focus
    noise: float  # white noise, mV
    wander: float  # baseline wander, mV
    mains: float  # mains hum, mV
    mains_hz: float
    difficulty: float = 1.0  # how far findings and noise are from textbook clarity; see above


def check_difficulty(difficulty: object) -> float:
    """`difficulty` as a float, or ValueError unless it is a real number in (0, 1]."""
    if isinstance(difficulty, bool) or not isinstance(
        difficulty, int | float | np.integer | np.floating
    ):
        raise ValueError(f"difficulty must be a number in (0, 1], got {difficulty!r}")
    d = float(difficulty)
    if not 0.0 < d <= 1.0:  # also refuses NaN
        raise ValueError(f"difficulty must be in (0, 1], got {difficulty!r}")
    return d


def _ease(value, target, difficulty: float):
    """`value` moved towards `target`, keeping the fraction `difficulty` of the distance.

    At difficulty 1 the value itself is returned, not a recomputation, so the realistic
    archives stay bit-identical.
    """
    if difficulty >= 1.0:
        return value
    return target + (value - target) * difficulty


def _ease_log(value: float, target: float, difficulty: float) -> float:
    """`_ease` on a log scale, for positive factors drawn log-normally."""
    if difficulty >= 1.0:
        return value
    return math.exp(_ease(math.log(value), math.log(target), difficulty))


def new_subject(
    rng: np.random.Generator, mains_hz: float = 50.0, difficulty: float = 1.0
) -> Subject:
    """Draw a patient. Normal values spread so that no single one separates the classes.

    Below difficulty 1 every spread around the population's typical value and every noise
    amplitude shrinks by the factor `difficulty`; the same random numbers are drawn.
    """
    d = check_difficulty(difficulty)
    angles = np.radians(_ease(rng.normal(0.0, [8.0, 8.0, 12.0]), 0.0, d))
    rotation = _rotation(*angles)
    electrodes = np.empty((9, 3))
    electrodes[:3] = _LIMB + _ease(rng.normal(0.0, 0.03, (3, 3)), 0.0, d)
    shift = rng.normal(0.0, np.radians(7.0), 6) + rng.normal(0.0, np.radians(6.0))
    a = _CHEST_ANGLE + _ease(shift, 0.0, d)
    spread = rng.lognormal(0.0, 0.12, 6)
    g = _CHEST_GAIN * (spread if d >= 1.0 else spread**d)
    electrodes[3:, 0] = g * np.cos(a)
    electrodes[3:, 1] = _CHEST_Y + _ease(rng.normal(0.0, 0.08, 6), 0.0, d)
    electrodes[3:, 2] = g * np.sin(a)
    axis = float(np.clip(_ease(rng.normal(45.0, 22.0), 45.0, d), -20.0, 95.0))
    base = Findings(
        hr=float(np.clip(_ease(rng.normal(74.0, 9.0), 74.0, d), 61.0, 99.0)),
        hrv=float(_ease(rng.uniform(0.01, 0.05), 0.03, d)),
        pr=float(_ease(rng.uniform(0.12, 0.195), 0.155, d)),
        p_amp=float(_ease(rng.uniform(0.1, 0.18), 0.15, d)),
        qrs_width=float(_ease(rng.uniform(0.075, 0.105), 0.09, d)),
        axis=axis,
        horiz=float(_ease(rng.normal(-0.12, 0.15), -0.12, d)),
        r_amp=_ease_log(float(rng.lognormal(math.log(1.3), 0.2)), 1.3, d),
        t_amp=_ease_log(float(rng.lognormal(math.log(0.3), 0.25)), 0.3, d),
        t_axis=float(axis + _ease(rng.normal(-5.0, 15.0), -5.0, d)),
        qtc=float(_ease(rng.uniform(0.38, 0.445), 0.41, d)),
    )
    return Subject(
        rotation=rotation,
        electrodes=electrodes,
        gain=_ease_log(float(rng.lognormal(0.0, 0.15)), 1.0, d),
        baseline=base,
        pvc_dir=_unit(*rng.normal(0.0, 1.0, 3)),
        noise=float(_ease(rng.uniform(0.006, 0.03), 0.0, d)),
        wander=float(_ease(rng.uniform(0.02, 0.25), 0.0, d)),
        mains=float(_ease(rng.uniform(0.0, 0.02), 0.0, d)) * float(rng.random() < 0.6),
        mains_hz=mains_hz,
        difficulty=d,
    )


def apply(
    f: Findings,
    finding: str,
    rng: np.random.Generator,
    strength: float = 1.0,
    region: str | None = None,
    difficulty: float = 1.0,
) -> Findings:
    """Return `f` changed by one named finding.

    `strength` (0..1] scales how far a finding departs from normal; values < 1 make borderline
    cases, which real label sets contain too. `region` (a key of REGIONS) fixes where an ST or T
    change shows, for label sets that name the leads (PTB-XL's ISCAL, ISCIN ...). Below
    `difficulty` 1 there are no borderline cases (strength counts as 1), and each drawn size
    moves that far towards a clear but plausible textbook value (the second argument of `_ease`).
    """
    if region is not None and region not in REGIONS:
        raise ValueError(f"region {region!r} is unknown; expected one of {sorted(REGIONS)}")
    d = check_difficulty(difficulty)
    s = strength if d >= 1.0 else 1.0
    g = replace(f, st=list(f.st), t_extra=list(f.t_extra), mi=list(f.mi))

    def u(lo: float, hi: float, target: float | None = None) -> float:
        """A uniform draw, eased towards `target` (None: the range's middle) below 1."""
        v = rng.uniform(lo, hi)
        return _ease(v, 0.5 * (lo + hi) if target is None else target, d)

    if finding == "SB":
        g.hr = u(40.0, 57.0, 42.0) if s >= 1 else u(54.0, 59.0)
    elif finding == "STACH":
        g.hr = u(103.0, 145.0, 135.0) if s >= 1 else u(100.0, 106.0)
    elif finding == "AF":
        g.rhythm, g.hr, g.af_amp = "af", u(60.0, 135.0), u(0.015, 0.08, 0.15)
        g.af_irregularity = _ease(0.22, 0.35, d)
    elif finding == "AFL":
        g.rhythm, g.flutter_rate = "flutter", u(250.0, 320.0)
        g.flutter_ratio = int(rng.choice([2, 2, 3, 4]))
        g.af_amp = u(0.08, 0.2, 0.25)
        g.hr = g.flutter_rate / g.flutter_ratio
    elif finding == "IAVB":
        g.pr = u(0.205, 0.34, 0.32) if s >= 1 else u(0.2, 0.23)
    elif finding in ("RBBB", "IRBBB", "LBBB", "IVCD"):
        g.qrs = finding.lower()
        lo, hi, target = {
            "RBBB": (0.122, 0.16, 0.16),
            "IRBBB": (0.1, 0.118, 0.115),
            "LBBB": (0.13, 0.17, 0.17),
            "IVCD": (0.112, 0.135, 0.13),
        }[finding]
        g.qrs_width = u(lo, hi, target)
    elif finding == "LAD":
        g.axis = u(-80.0, -31.0, -60.0) if s >= 1 else u(-40.0, -25.0)
        g.t_axis = g.axis + u(30.0, 70.0)
    elif finding == "RAD":
        g.axis = u(95.0, 150.0, 130.0)
    elif finding == "PAC":
        g.pac_rate = u(0.07, 0.25, 0.4) * s
    elif finding == "PVC":
        g.pvc_rate = u(0.06, 0.22, 0.35) * s
    elif finding == "STD":
        where = region or str(
            rng.choice(["apical", "apical", "lateral", "anterolateral", "posterior"])
        )
        g.st.append((where, -u(0.07, 0.25, 0.3) * s))
    elif finding == "STE":
        where = region or str(rng.choice(["anterior", "inferior", "septal", "anterolateral"]))
        g.st.append((where, u(0.1, 0.3, 0.35) * s))
    elif finding == "TINV":
        where = region or str(
            rng.choice(["lateral", "anterolateral", "inferior", "apical", "anterior"])
        )
        g.t_extra.append((where, -u(0.3, 0.6, 0.65) * s))
    elif finding == "TAB":  # flat, low or slightly negative T
        g.t_amp *= u(-0.25, 0.35, -0.25)
    elif finding == "NSTT":  # non-specific ST-T changes: lower T, slight ST sag
        g.t_amp *= u(0.25, 0.6, 0.25)
        g.st.append(("apical", -u(0.02, 0.07, 0.08)))
    elif finding == "LQT":
        g.qtc = u(0.475, 0.56, 0.54) if s >= 1 else u(0.455, 0.475)
        g.t_amp *= u(0.7, 1.0, 1.0)
    elif finding == "MI":  # old infarct: Q waves and negative T facing the scar
        where = region or str(rng.choice(["inferior", "anterior", "septal", "lateral"]))
        g.mi.append((where, u(0.15, 0.45, 0.45) * s))
        g.t_extra.append((where, -u(0.05, 0.3, 0.3) * s))
    elif finding == "STEMI":  # acute: Q forming, ST raised facing the injury
        where = region or str(rng.choice(["inferior", "anterior", "septal", "anterolateral"]))
        g.mi.append((where, u(0.05, 0.3, 0.3) * s))
        g.st.append((where, u(0.1, 0.35, 0.35) * s))
    elif finding == "LVH":
        g.qrs_gain *= u(1.55, 2.3, 2.3) if s >= 1 else u(1.35, 1.55)
        g.qrs_width = max(g.qrs_width, u(0.095, 0.115, 0.11))
        if rng.random() < 0.5:  # strain pattern
            g.st.append(("lateral", -u(0.04, 0.12, 0.12)))
            g.t_extra.append(("lateral", -u(0.2, 0.45, 0.45)))
    elif finding == "RVH":
        g.qrs, g.axis = "rvh", u(100.0, 140.0, 125.0)
    elif finding == "LAE":
        g.p_width, g.la_share = u(1.25, 1.5, 1.5), u(1.4, 2.0, 2.0)
    elif finding == "LOWV":
        g.qrs_gain *= u(0.3, 0.55, 0.3)
    else:
        raise ValueError(f"finding {finding!r} is unknown to the demo ECG model")
    return g


def _rotation(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = (
        math.cos(ax),
        math.sin(ax),
        math.cos(ay),
        math.sin(ay),
        math.cos(az),
        math.sin(az),
    )
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return _mix(rz, _mix(ry, rx))


def _frontal(deg: float, z: float) -> np.ndarray:
    r = math.radians(deg)
    return _unit(math.cos(r), math.sin(r), z)


# A beat template: rows of (offset s, sigma s, repolarisation flag, amplitude vector x,y,z).
# Repolarisation waves (ST, T) move with the RR interval (Bazett); the others do not.
def _templates(f: Findings, subj: Subject) -> dict[int, np.ndarray]:
    """Wave tables for the four beat kinds: 0 sinus, 1 premature atrial, 2 ventricular, 3 AF."""
    w = f.qrs_width / 0.09
    gain = f.qrs_gain
    r_dir = _frontal(f.axis, f.horiz)
    rows: list[tuple[float, float, float, np.ndarray]] = []
    # Depolarisation.
    if f.qrs == "lbbb":
        main = _unit(0.8, 0.15, -0.6)
        width = f.qrs_width
        rows += [  # broad, notched R: the left ventricle activated late and slowly
            (0.3 * width, 0.018, 0, 0.95 * f.r_amp * gain * main),
            (0.68 * width, 0.022, 0, 1.0 * f.r_amp * gain * main),
            (width + 0.09, 0.045, 1, -0.12 * gain * main),  # discordant ST
        ]
        t_dir, t_amp = -main, 0.35 * gain
    else:
        rows += [(0.014 * w, 0.007 * w, 0, 0.15 * gain * _unit(-0.7, 0.2, 0.7))]  # septal q
        main = r_dir
        r_amp = f.r_amp * gain
        if f.qrs == "rvh":
            main = _unit(math.cos(math.radians(f.axis)), math.sin(math.radians(f.axis)), 0.9)
        rows += [(0.045 * w, 0.011 * w, 0, r_amp * main)]
        rows += [(0.076 * w, 0.01 * w, 0, 0.3 * gain * _unit(-0.45, -0.7, -0.3))]
        t_dir = _frontal(f.t_axis, 0.35)
        t_amp = f.t_amp
        if f.qrs in ("rbbb", "irbbb"):
            terminal = _unit(-0.55, 0.05, 0.85)
            amp = (0.8 if f.qrs == "rbbb" else 0.35) * gain
            rows += [(f.qrs_width - 0.022, 0.016, 0, amp * terminal)]
            t_dir = _unit(*(t_dir - 0.6 * terminal))
    # Infarct Q vectors point away from the dead region, which also loses R towards it.
    for region, q in f.mi:
        u = REGIONS[region]
        rows += [(0.022 * w, 0.012, 0, -q * gain * u)]
        rows += [
            (0.045 * w, 0.011 * w, 0, -0.5 * max(float((main * u).sum()), 0.0) * f.r_amp * gain * u)
        ]
    qrs_end = max(f.qrs_width, 0.06)
    # Repolarisation: T peak ~ 0.1 s before the end of QT; ST deviation fills J..T.
    qt = f.qtc  # at RR = 1 s; scaled per beat
    t_sig = 0.042 * qt / 0.41
    t_off = qt - 2.3 * t_sig
    rows += [
        (t_off, t_sig, 1, t_amp * t_dir),
        (t_off + 1.3 * t_sig, 0.7 * t_sig, 1, 0.25 * t_amp * t_dir),
    ]
    st_mid = 0.5 * (qrs_end + t_off)
    st_sig = max(0.3 * (t_off - qrs_end), 0.02)
    for region, mv in f.st:
        rows += [
            (st_mid, st_sig, 1, mv * REGIONS[region]),
            (t_off, t_sig, 1, 0.6 * mv * REGIONS[region]),
        ]
    for region, mv in f.t_extra:
        rows += [(t_off, t_sig, 1, mv * REGIONS[region])]
    ventricular = np.array([(o, s, rep, *a) for o, s, rep, a in rows])

    # Atrial waves: right atrium first (inferior-anterior), then left (leftward-posterior).
    pw = f.p_width
    p_ra = (-f.pr + 0.032 * pw, 0.018 * pw, 0, f.p_amp * _unit(0.15, 0.9, 0.45))
    p_la = (-f.pr + 0.068 * pw, 0.02 * pw, 0, f.p_amp * f.la_share * _unit(0.85, 0.35, -0.45))
    atrial = np.array([(o, s, rep, *a) for o, s, rep, a in (p_ra, p_la)])
    pac_p = atrial.copy()  # ectopic focus low in the atrium: P upright in aVR, inverted in II
    pac_p[:, 3:] = atrial[:, 3:] * np.array([0.6, -0.9, 0.4])
    # A ventricular ectopic beat: broad, bizarre, with a discordant T.
    v = subj.pvc_dir
    pvc = np.array(
        [
            (0.04, 0.024, 0, *(1.1 * gain * v)),
            (0.1, 0.028, 0, *(0.8 * gain * _unit(*(v + np.array([0.3, -0.2, 0.2]))))),
            (0.36, 0.06, 1, *(-0.45 * v)),
        ]
    )
    return {
        0: np.vstack([atrial, ventricular]),
        1: np.vstack([pac_p, ventricular]),
        2: pvc,
        3: ventricular,
    }


def _beats(f: Findings, duration: float, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """QRS onset times, beat kinds and preceding RR intervals from before 0 to past the end.

    A record labelled with ectopic beats gets at least one of each inside the record (a
    cardiologist labelled it because one was there), placed at a random beat.
    """
    rr0 = 60.0 / f.hr
    sigma = f.af_irregularity
    drift = 0.024 * (sigma / 0.22) ** 2  # keeps the mean RR near rr0
    cap = int(duration / 0.25) + 16
    z = rng.standard_normal(cap)
    uni = rng.random((cap, 3))
    resp_hz = float(rng.uniform(0.15, 0.35))
    n_est = max(int(duration / rr0), 4)
    force_pvc = int(rng.integers(2, n_est - 1)) if f.pvc_rate > 0 else -1
    force_pac = int(rng.integers(2, n_est - 1)) if f.pac_rate > 0 else -1
    if force_pac == force_pvc >= 0:
        force_pac = force_pvc + 2
    times, kinds, rrs = [], [], []
    had_pvc = had_pac = False
    t = -float(rng.uniform(0.3, 1.0)) * rr0
    prev_rr = rr0
    pending_pause = 0.0
    i = 0
    while t < duration + 0.6 and i < cap:
        want_pvc = uni[i, 0] < f.pvc_rate or (i >= force_pvc >= 0 and not had_pvc)
        want_pac = uni[i, 0] > 1.0 - f.pac_rate or (i >= force_pac >= 0 and not had_pac)
        if f.rhythm == "af":
            rr = rr0 * float(np.exp(sigma * z[i] - drift))
            rr = min(max(rr, 0.3), 2.2)
            kind = 3
            if want_pvc and kinds and kinds[-1] != 2:
                kind, rr = 2, max(0.7 * rr, 0.3)
        elif f.rhythm == "flutter":
            ratio = f.flutter_ratio if uni[i, 1] > 0.15 else f.flutter_ratio + 1
            rr = ratio * 60.0 / f.flutter_rate
            kind = 3
        else:
            rr = rr0 * (1.0 + f.hrv * z[i] + 0.5 * f.hrv * math.sin(2 * math.pi * resp_hz * t))
            kind = 0
            if pending_pause:
                rr, pending_pause = pending_pause, 0.0
            elif want_pvc and kinds and kinds[-1] != 2:
                kind = 2
                rr = rr0 * (0.52 + 0.15 * uni[i, 1])
                pending_pause = 2.0 * rr0 - rr  # compensatory pause
            elif want_pac and kinds and kinds[-1] == 0:
                kind = 1
                rr = rr0 * (0.6 + 0.18 * uni[i, 1])
                pending_pause = rr0 * (1.0 + 0.1 * uni[i, 2])  # reset, not compensatory
        t += rr
        if 0.2 < t < duration - 0.5:
            had_pvc |= kind == 2
            had_pac |= kind == 1
        times.append(t)
        kinds.append(kind)
        rrs.append(prev_rr if kind != 2 else rr0)
        prev_rr = rr
        i += 1
    return np.array(times), np.array(kinds), np.array(rrs)


def _atrial_activity(f: Findings, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fibrillatory (irregular 4-9 Hz) or flutter (regular sawtooth) waves, scalar."""
    if f.rhythm == "af":
        out = np.zeros_like(t)
        for _ in range(3):
            hz = rng.uniform(4.0, 9.0)
            mod = rng.uniform(0.5, 2.5) * np.sin(
                2 * np.pi * rng.uniform(0.1, 0.6) * t + rng.uniform(0, 6.3)
            )
            out += rng.uniform(0.4, 1.0) * np.sin(2 * np.pi * hz * t + mod + rng.uniform(0, 6.3))
        return f.af_amp * out / 1.5
    phase = (t * f.flutter_rate / 60.0 + rng.random()) % 1.0
    return f.af_amp * (2.0 * np.abs(phase - 0.25) - 0.5 + 0.8 * np.maximum(phase - 0.8, 0.0))


def render(
    f: Findings, subj: Subject, fs: float, n: int, rng: np.random.Generator, frank: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """Synthesize one record: (12, n) leads in LEADS order, mV; and (3, n) Frank leads if asked.

    The waves are summed with `np.bincount` over short windows around each wave, so the cost is
    a few operations per output sample whatever the record's length.
    """
    duration = n / fs
    times, kinds, rrs = _beats(f, duration, rng)
    templates = _templates(f, subj)
    offs, sigs, amps = [], [], []
    qt_scale = np.sqrt(np.clip(rrs, 0.3, 2.0))
    jitter = 1.0 + 0.04 * rng.standard_normal(len(times))
    for kind, table in templates.items():
        sel = kinds == kind
        if not sel.any() or table.size == 0:
            continue
        tb = times[sel][:, None]
        scale = np.where(table[None, :, 2] > 0, qt_scale[sel][:, None], 1.0)
        offs.append((tb + table[None, :, 0] * scale).ravel())
        sigs.append((table[None, :, 1] * scale).ravel())
        amps.append((jitter[sel][:, None, None] * table[None, :, 3:]).reshape(-1, 3))
    center = np.concatenate(offs)
    sigma = np.concatenate(sigs)
    amp = _mix(np.concatenate(amps), subj.rotation.T * subj.gain)
    half = math.ceil(4.0 * float(sigma.max()) * fs)
    k = np.arange(-half, half + 1)
    idx = np.rint(center * fs).astype(np.int64)[:, None] + k[None, :]
    g = np.exp(-0.5 * ((idx / fs - center[:, None]) / sigma[:, None]) ** 2)
    ok = (idx >= 0) & (idx < n)
    flat_idx, flat_g = idx[ok], g[ok]
    rows = np.broadcast_to(np.arange(len(center))[:, None], idx.shape)[ok]
    heart = np.empty((3, n))
    for d in range(3):
        heart[d] = np.bincount(flat_idx, weights=flat_g * amp[rows, d], minlength=n)
    t = np.arange(n) / fs
    if f.rhythm != "sinus":
        atrial_dir = _mix(subj.rotation, _unit(-0.25, 0.55, 0.8)[:, None])
        heart += atrial_dir * _atrial_activity(f, t, rng)
    resp = 1.0 + 0.05 * np.sin(2 * np.pi * rng.uniform(0.15, 0.35) * t + rng.uniform(0, 6.3))
    heart *= resp

    electrodes = _mix(subj.electrodes, heart) + _noise(subj, 9, t, rng)
    leads = _leads(electrodes)
    xyz = None
    if frank:
        xyz = np.array([heart[0], heart[1], -heart[2]]) * 0.9 + _noise(subj, 3, t, rng)
    return leads, xyz


def _noise(subj: Subject, m: int, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """White, baseline-wander, mains and occasional muscle noise on m electrodes."""
    n = t.size
    out = rng.standard_normal((m, n)) * subj.noise
    # Wander: respiration plus a slow drift, mixed differently into each electrode.
    sources = np.vstack(
        [
            np.sin(2 * np.pi * rng.uniform(0.12, 0.4) * t + rng.uniform(0, 6.3)),
            np.sin(2 * np.pi * rng.uniform(0.02, 0.1) * t + rng.uniform(0, 6.3)),
        ]
    )
    out += _mix(rng.normal(0.0, 1.0, (m, 2)) * subj.wander * np.array([0.5, 1.0]), sources)
    if subj.mains:
        hum = np.sin(2 * np.pi * subj.mains_hz * t + rng.uniform(0, 6.3))
        out += rng.normal(0.0, subj.mains, m)[:, None] * hum
    if rng.random() < 0.2:  # a burst of muscle noise on a few electrodes
        start = int(rng.integers(0, max(n - 1, 1)))
        stop = min(n, start + int(rng.uniform(0.1, 0.3) * n))
        who = rng.random(m) < 0.4
        burst = rng.standard_normal((int(who.sum()), stop - start))
        out[who, start:stop] += burst * _ease(rng.uniform(0.02, 0.08), 0.0, subj.difficulty)
    return out


def to_digital(mv: np.ndarray, gain: float) -> np.ndarray:
    """mV -> int16 ADC units, saturating like a real amplifier rather than wrapping.

    Rounding to integers is also what keeps the archives byte-identical across CPUs: numpy's
    exp and sin may differ in the last bit between SIMD implementations, and such a difference
    changes a rounded sample only if it falls within ~1e-12 of a half-integer.
    """
    return np.clip(np.rint(mv * gain), -32767, 32767).astype("<i2")
