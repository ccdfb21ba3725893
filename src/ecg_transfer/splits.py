"""Sound train/test/val splits: whole patients and duplicated signals stay in one split.

The ``paper`` protocol splits records independently with ``train_test_split`` (see
:func:`ecg_transfer.shards.split_records`). That lets one patient's records, or one signal stored
under two names (Georgia has such pairs), sit in both train and test, which inflates test scores.
The ``sound`` protocol instead merges every set of records that share a patient id or a
duplicate key into one *unit* and assigns whole units to splits.

Units are assigned by iterative stratification for multi-label data (Sechidis, Tsoumakas &
Vlahavas, "On the stratification of multi-label data", ECML PKDD 2011), run on units whose label
counts are the sums over their records. Plain label-combination stratification fails on
multi-label ECG data because most combinations are rare; iterative stratification deals first
with the rarest label, whose distribution is the easiest to spoil, so every label keeps close to
its overall proportion in each split.

Split codes are those of :mod:`ecg_transfer.shards`: TRAIN=0, TEST=1, VAL=2.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ecg_transfer.shards import TEST, TRAIN, VAL

__all__ = ["carve_validation", "sound_split", "units"]


def units(
    n: int,
    groups: Sequence[str | None] | None = None,
    duplicate_keys: Sequence[str | None] | None = None,
) -> np.ndarray:
    """Unit index (0..U-1, in order of first appearance) of each of ``n`` records.

    Records sharing a group (patient id) or a duplicate key (a hash of the signal) are merged,
    transitively: if a shares a patient with b and b's signal duplicates c's, a, b and c form one
    unit. ``None`` or ``""`` means "no key", so unlabelled patients do not collapse into one unit.
    """
    parent = np.arange(n)

    def find(i: int) -> int:
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:  # path compression keeps later finds O(1)
            parent[i], i = root, parent[i]
        return root

    for name, keys in (("groups", groups), ("duplicate_keys", duplicate_keys)):
        if keys is None:
            continue
        if len(keys) != n:
            raise ValueError(f"{name} has {len(keys)} entries but there are {n} records")
        first: dict[str, int] = {}
        for i, key in enumerate(keys):
            if key is None or key == "":
                continue
            j = first.setdefault(key, i)
            if j != i:
                ri, rj = find(i), find(j)
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
    roots = np.array([find(i) for i in range(n)], dtype=np.int64)
    _, inverse = np.unique(roots, return_inverse=True)
    # renumber by first appearance so unit ids do not depend on np.unique's sort order
    order = np.full(inverse.max() + 1 if n else 0, -1)
    ids = np.empty(n, dtype=np.int64)
    next_id = 0
    for i, u in enumerate(inverse):
        if order[u] < 0:
            order[u] = next_id
            next_id += 1
        ids[i] = order[u]
    return ids


def _as_label_matrix(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(
            f"labels must be an (N, C) multi-hot matrix, got an array of shape {labels.shape}"
        )
    return (labels != 0).astype(np.int64)


def _iterative_stratification(
    counts: np.ndarray, sizes: np.ndarray, proportions: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Assign each unit to a subset so that every label's records follow ``proportions``.

    ``counts`` (U, C) holds each unit's summed label counts, ``sizes`` (U,) its record count.
    This is Algorithm 1 of Sechidis et al. with examples generalised to weighted units: the
    desired counts are in records and a unit uses up as many as it holds.
    """
    n_units = len(counts)
    desired = sizes.sum() * proportions.astype(float)  # records still wanted per subset
    desired_label = counts.sum(0)[:, None] * proportions[None, :].astype(float)  # (C, K)
    assign = np.full(n_units, -1, dtype=np.int64)
    order = rng.permutation(n_units)  # the algorithm's random tie-breaking between examples
    remaining = counts.sum(0).astype(np.int64)
    allowed = proportions > 0

    def pick(candidates_score: np.ndarray) -> int:
        score = np.where(allowed, candidates_score, -np.inf)
        best = np.flatnonzero(score == score.max())
        if len(best) > 1:  # ties: the subset that still wants most records overall
            second = desired[best]
            best = best[second == second.max()]
        return int(best[0] if len(best) == 1 else rng.choice(best))

    while True:
        live = np.flatnonzero(remaining > 0)
        if len(live) == 0:
            break
        label = int(live[np.argmin(remaining[live])])  # the rarest label still unassigned
        for u in order[(counts[order, label] > 0) & (assign[order] < 0)]:
            k = pick(desired_label[label])
            assign[u] = k
            desired[k] -= sizes[u]
            desired_label[:, k] -= counts[u]
            remaining -= counts[u]
    for u in order[assign[order] < 0]:  # units without any label: fill by overall size
        k = pick(desired)
        assign[u] = k
        desired[k] -= sizes[u]
    return assign


def _ensure_nonempty(assign: np.ndarray, sizes: np.ndarray, wanted: Sequence[int]) -> None:
    """Move the smallest unit of the most populous subset into each wanted subset left empty.

    With a handful of units the stratification can leave a small subset (e.g. VAL at 10%) with
    nothing; a split the config asks for must hold at least one unit when there are enough.
    """
    if not wanted:
        return
    for k in wanted:
        if (assign == k).any():
            continue
        per_subset = np.bincount(assign, minlength=max(wanted) + 1)
        donor = int(np.argmax(per_subset))
        if per_subset[donor] < 2:
            continue  # too few units to give every subset one
        candidates = np.flatnonzero(assign == donor)
        assign[candidates[np.argmin(sizes[candidates])]] = k


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")


def sound_split(
    labels: np.ndarray,
    *,
    groups: Sequence[str | None] | None = None,
    duplicate_keys: Sequence[str | None] | None = None,
    test_size: float,
    val_size: float,
    random_state: int,
) -> np.ndarray:
    """Split vector (uint8: TRAIN, TEST, VAL) that keeps each patient and each duplicate together.

    ``test_size`` and ``val_size`` are fractions of all records. The result is seeded and
    deterministic: the same inputs and ``random_state`` give the same split on every machine.
    Rows of ``labels`` that are all zero (Georgia records with no class of the list) are spread
    by size alone. Each split with a non-zero size receives at least one unit when there are
    enough units.
    """
    _check_fraction("test_size", test_size)
    _check_fraction("val_size", val_size)
    if test_size + val_size >= 1.0:
        raise ValueError(
            f"test_size + val_size must be below 1 to leave records for training, got "
            f"{test_size} + {val_size}"
        )
    y = _as_label_matrix(labels)
    n = len(y)
    split = np.full(n, TRAIN, dtype=np.uint8)
    if n == 0:
        return split
    unit = units(n, groups, duplicate_keys)
    n_units = int(unit.max()) + 1
    counts = np.zeros((n_units, y.shape[1]), dtype=np.int64)
    np.add.at(counts, unit, y)
    sizes = np.bincount(unit, minlength=n_units)
    proportions = np.zeros(3)
    proportions[[TRAIN, TEST, VAL]] = [1.0 - test_size - val_size, test_size, val_size]
    rng = np.random.default_rng(random_state)
    assign = _iterative_stratification(counts, sizes, proportions, rng)
    _ensure_nonempty(assign, sizes, [k for k in (TEST, VAL) if proportions[k] > 0])
    split[:] = assign[unit]
    return split


def carve_validation(
    split: np.ndarray,
    labels: np.ndarray,
    fraction: float,
    seed: int,
    groups: Sequence[str | None] | None = None,
) -> np.ndarray:
    """A copy of ``split`` where a seeded, stratified ``fraction`` of TRAIN has become VAL.

    Model selection needs data the model did not train on, and shards made with the ``paper``
    protocol have only train and test; test must stay untouched, so validation comes out of
    train. TEST (and any existing VAL) records never move. With ``groups`` (patient ids) a
    patient's train records move together. At least one record becomes VAL when ``fraction`` > 0
    and TRAIN has two or more units; with a single unit nothing can move without emptying train,
    which raises ValueError.
    """
    _check_fraction("fraction", fraction)
    split = np.asarray(split)
    y = _as_label_matrix(labels)
    if split.shape != (len(y),):
        raise ValueError(f"split has shape {split.shape} but labels have {len(y)} rows")
    out = split.astype(np.uint8, copy=True)
    train = np.flatnonzero(out == TRAIN)
    if fraction == 0.0 or len(train) == 0:
        return out
    if groups is not None and len(groups) != len(y):
        raise ValueError(f"groups has {len(groups)} entries but there are {len(y)} records")
    train_groups = None if groups is None else [groups[i] for i in train]
    unit = units(len(train), train_groups)
    n_units = int(unit.max()) + 1
    if n_units < 2:
        if len(train) < 2:
            return out  # one train record: nothing can be carved without emptying train
        raise ValueError(
            f"cannot carve a validation split: all {len(train)} train records belong to one "
            "group (patient), and a group may not span train and validation"
        )
    counts = np.zeros((n_units, y.shape[1]), dtype=np.int64)
    np.add.at(counts, unit, y[train])
    sizes = np.bincount(unit, minlength=n_units)
    proportions = np.zeros(3)
    proportions[[TRAIN, VAL]] = [1.0 - fraction, fraction]
    assign = _iterative_stratification(counts, sizes, proportions, np.random.default_rng(seed))
    _ensure_nonempty(assign, sizes, [VAL, TRAIN])
    out[train] = assign[unit]
    return out
