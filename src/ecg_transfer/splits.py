"""Every way the study divides a dataset into train, test and validation records.

Split codes, stored in each shard's ``split`` column: TRAIN=0, TEST=1, VAL=2 (names in
:data:`SPLIT_NAMES`, in code order).

The ``paper`` protocol splits records independently with ``train_test_split``
(:func:`paper_split`), or by PTB-XL's ``strat_fold`` (:func:`fold_split`). That lets one
patient's records, or one signal stored under two names (Georgia has such pairs), sit in both
train and test, which inflates test scores. The ``sound`` protocol (:func:`sound_split`) instead
merges every set of records that share a patient id or a duplicate key into one *unit* and
assigns whole units to splits.

Units are assigned by iterative stratification for multi-label data (Sechidis, Tsoumakas &
Vlahavas, "On the stratification of multi-label data", ECML PKDD 2011), run on units whose label
counts are the sums over their records. Plain label-combination stratification fails on
multi-label ECG data because most combinations are rare; iterative stratification deals first
with the rarest label, whose distribution is the easiest to spoil, so every label keeps close to
its overall proportion in each split.

This module needs only numpy (scikit-learn for the paper's ``train_test_split``, imported when
used), so the training stage can carve validation splits without the dataset readers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["SPLIT_NAMES", "TEST", "TRAIN", "UNUSED", "VAL", "SplitSpec", "assign_split",
           "carve_validation", "fold_split", "nested_subset", "paper_split", "sound_split",
           "split_records", "stratified_order", "subset_size", "units"]

SPLIT_NAMES = ("train", "test", "val")
TRAIN, TEST, VAL = 0, 1, 2
#: Train records a size-axis job leaves out (:func:`nested_subset`); never stored in a shard.
UNUSED = 255


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
    duplicate_keys: Sequence[str | None] | None = None,
) -> np.ndarray:
    """A copy of ``split`` where a seeded, stratified ``fraction`` of TRAIN has become VAL.

    Model selection needs data the model did not train on, and shards made with the ``paper``
    protocol have only train and test; test must stay untouched, so validation comes out of
    train. TEST (and any existing VAL) records never move. With ``groups`` (patient ids) a
    patient's train records move together, and with ``duplicate_keys`` (signal hashes) so do
    copies of one signal. At least one record becomes VAL when ``fraction`` > 0
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
    for name, keys in (("groups", groups), ("duplicate_keys", duplicate_keys)):
        if keys is not None and len(keys) != len(y):
            raise ValueError(f"{name} has {len(keys)} entries but there are {len(y)} records")
    unit = units(len(train), None if groups is None else [groups[i] for i in train],
                 None if duplicate_keys is None else [duplicate_keys[i] for i in train])
    n_units = int(unit.max()) + 1
    if n_units < 2:
        if len(train) < 2:
            return out  # one train record: nothing can be carved without emptying train
        raise ValueError(
            f"cannot carve a validation split: all {len(train)} train records belong to one "
            "group (patient or duplicated signal), and a group may not span train and "
            "validation"
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


# --- the paper's splits ------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitSpec:
    """How a dataset is divided (the config's ``split`` section).

    The paper's is ``train_test_split(test_size=0.33, random_state=1)``. ``test_fold`` (PTB-XL)
    uses the dataset's own ``strat_fold`` instead of a random test split, and ``val_fold`` makes
    another fold the validation split (PTB-XL's recommendation: folds 1-8 train, 9 validation,
    10 test; every fold that is neither is train). ``val_size`` is the
    fraction of all records in the validation split, carved out of train; None is the protocol's
    default (paper: 0, the paper had none; sound: 0.1). ``stratify`` is the paper's option;
    sound always stratifies (iteratively, on the multi-label matrix).
    """

    test_size: float = 0.33
    random_state: int = 1
    stratify: bool = False
    test_fold: int | None = None
    val_fold: int | None = None
    val_size: float | None = None

    def __post_init__(self) -> None:
        if self.val_fold is not None and self.test_fold is None:
            raise ValueError("split.val_fold needs split.test_fold (fold splits are PTB-XL's)")
        if self.val_fold is not None and self.val_fold == self.test_fold:
            raise ValueError(f"split.val_fold and split.test_fold are both {self.val_fold}")
        if self.val_fold is not None and self.val_size:
            raise ValueError("give split.val_fold or split.val_size, not both")


def split_records(rs, spec: SplitSpec) -> tuple[np.ndarray, str]:
    """The paper's train/test split of a RecordSet; returns the split vector and its description.

    Records are sorted by name before splitting (the readers guarantee it), so the split is the
    same on every machine, unlike the paper's glob-ordered lists.
    """
    return paper_split(rs.labels, rs.folds, spec)


def paper_split(
    labels: np.ndarray, folds: np.ndarray | None, spec: SplitSpec
) -> tuple[np.ndarray, str]:
    n = len(labels)
    split = np.full(n, TRAIN, dtype=np.uint8)
    if spec.test_fold is not None:
        return fold_split(folds, spec)
    from sklearn.model_selection import train_test_split

    stratify = None
    method = f"train_test_split(test_size={spec.test_size}, random_state={spec.random_state}"
    if spec.stratify:
        stratify = _stratification_groups(labels)
        method += ", stratify=label combination (combinations seen once pooled)"
    _, test_idx = train_test_split(
        np.arange(n), test_size=spec.test_size, random_state=spec.random_state, stratify=stratify
    )
    split[test_idx] = TEST
    return split, method + ")"


def fold_split(folds: np.ndarray | None, spec: SplitSpec) -> tuple[np.ndarray, str]:
    if folds is None or (np.asarray(folds) < 0).all():
        raise ValueError(
            f"split.test_fold={spec.test_fold} but dataset has no folds (only PTB-XL has "
            "strat_fold); remove test_fold from its split config"
        )
    split = np.full(len(folds), TRAIN, dtype=np.uint8)
    method = f"strat_fold == {spec.test_fold} is test"
    for fold, code, key in ((spec.test_fold, TEST, "test_fold"), (spec.val_fold, VAL, "val_fold")):
        if fold is None:
            continue
        split[np.asarray(folds) == fold] = code
        if not (split == code).any():
            raise ValueError(f"split.{key}={fold}: no record is in that fold")
    if spec.val_fold is not None:
        method += f", strat_fold == {spec.val_fold} validation"
    return split, method + ", the other folds train"


def assign_split(
    spec: SplitSpec,
    labels: np.ndarray,
    *,
    protocol: str,
    default_val_size: float,
    folds: np.ndarray | None = None,
    groups: Sequence[str] | None = None,
    duplicate_keys: Sequence[str] | None = None,
) -> tuple[np.ndarray, str]:
    """Split vector (TRAIN/TEST/VAL) of a dataset's records by its protocol, and its description.

    paper: :func:`paper_split`'s rule, then, if ``val_size`` > 0, a seeded stratified share of
    train becomes validation (test stays exactly the paper's). sound: :func:`sound_split`, which
    keeps every patient (``groups``: PTB-XL ``patient_id``, PTB folder) and every duplicated
    signal (``duplicate_keys``: a content hash) inside one split; with ``test_fold`` the fold is
    test and validation is carved from train by patient. ``folds`` are PTB-XL's ``strat_fold``
    (negative where a dataset has none). ``default_val_size`` is the protocol's (paper 0, sound
    0.1), used when ``spec.val_size`` is None.
    """
    folds = None if folds is None else np.asarray(folds, dtype=np.int64)
    has_folds = folds is not None and bool((folds >= 0).any())
    if spec.val_fold is not None:
        val_size = 0.0  # the fold is the validation split
    else:
        val_size = default_val_size if spec.val_size is None else spec.val_size
    if protocol == "sound" and spec.test_fold is None:
        split = sound_split(
            labels, groups=groups, duplicate_keys=duplicate_keys,
            test_size=spec.test_size, val_size=val_size, random_state=spec.random_state,
        )
        method = (
            f"sound_split(test_size={spec.test_size}, val_size={val_size}, random_state="
            f"{spec.random_state}): iterative stratification; patients"
            f"{'' if groups is not None else ' (none in this dataset)'} and identical signals "
            "kept in one split"
        )
        return split, method
    if protocol == "sound":
        split, method = fold_split(folds, spec)
    else:
        split, method = paper_split(labels, folds if has_folds else None, spec)
    if val_size > 0:
        # carve_validation's fraction is of train; val_size is of all records.
        fraction = min(val_size * len(split) / max(int((split == TRAIN).sum()), 1), 0.99)
        split = carve_validation(split, labels, fraction, spec.random_state, groups=groups,
                                 duplicate_keys=duplicate_keys if protocol == "sound" else None)
        method += (
            f"; val_size={val_size} of all records carved from train (seed {spec.random_state})"
        )
    return split, method


def _stratification_groups(labels: np.ndarray) -> np.ndarray:
    """One group per label combination; combinations seen once share a group.

    sklearn refuses to stratify on a group of one; pooling the singletons keeps the stratification
    of everything else.
    """
    keys = np.array(["".join(map(str, row)) for row in labels])
    uniq, counts = np.unique(keys, return_counts=True)
    rare = set(uniq[counts < 2])
    groups = np.array(["rare" if k in rare else k for k in keys])
    if (groups == "rare").sum() == 1:  # a pooled group of one: fold it into the largest group
        values, c = np.unique(groups[groups != "rare"], return_counts=True)
        groups[groups == "rare"] = values[np.argmax(c)]
    return groups


# --- the dataset-size axis ----------------------------------------------------------------------


def stratified_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """A seeded order of the records whose every prefix is a label-stratified subset.

    The size axis trains on the first n records of this order for several n, so the subsets
    are nested (a smaller one is contained in every larger one) and each keeps the label
    proportions of the whole. Records are grouped by their rarest positive label (records
    without a label form their own group), as iterative stratification deals with the rarest
    label first. The groups are interleaved by Tijdeman's rule for the chairman assignment
    problem (R. Tijdeman, "The chairman assignment problem", Discrete Mathematics 1980): at each
    position n, among the groups at least ``s = 1 / (2G - 2)`` behind ``n * share``, the one
    whose next member is most overdue, ``(taken + 1 - s) / share``, which keeps every prefix
    of n records within ``1 - s`` (< 1) record of ``n * share`` for every group. So each
    class's rarest-label group is within one record of its share in every subset. Within a
    group the same rule orders the records by the other labels (recursively; at the end,
    randomly and seeded), so a common class collects at most the rounding of each group it
    appears in, not sampling noise.
    """
    y = _as_label_matrix(labels)
    n = len(y)
    rng = np.random.default_rng(seed)
    prevalence = y.sum(axis=0)
    if y.shape[1]:
        masked = np.where(y > 0, prevalence[None, :], np.iinfo(np.int64).max)
        group = np.where(y.any(axis=1), masked.argmin(axis=1), -1)
    else:
        group = np.full(n, -1)
    names = rng.permutation(np.unique(group))  # ties go to a random group, not the first label
    members = []
    for g in names:
        idx = np.flatnonzero(group == g)
        # within a group, the same rule on the labels other than the group's own, so that
        # common labels are stratified too (recursion ends when no label is left)
        rest = np.delete(y[idx], g, axis=1) if g >= 0 else y[idx][:, :0]
        inner = stratified_order(rest, int(rng.integers(2**32))) if rest.shape[1] else \
            rng.permutation(len(idx))
        members.append(list(idx[inner]))
    sizes = np.array([len(m) for m in members], dtype=float)
    share = sizes / max(n, 1)
    slack = 1.0 / (2 * (len(names) - 1)) if len(names) > 1 else 0.0
    taken = np.zeros(len(names))
    order = np.empty(n, dtype=np.int64)
    for position in range(n):
        # eligible: groups at least `slack` behind their share; of those, the most overdue
        eligible = (taken < sizes) & ((position + 1) * share - taken >= slack - 1e-12)
        if not eligible.any():
            eligible = taken < sizes
        due = np.where(eligible, (taken + 1 - slack) / share, np.inf)
        g = int(np.argmin(due))
        order[position] = members[g][int(taken[g])]
        taken[g] += 1
    return order


def subset_size(size: float, n_available: int, where: str) -> int:
    """Records in a training subset: ``size`` is a count (>= 1) or a fraction (0 < size < 1)."""
    if isinstance(size, bool) or not isinstance(size, int | float) or size <= 0:
        raise ValueError(f"{where}: training size {size!r} must be a count >= 1 or a fraction "
                         "in (0, 1)")
    n = round(size * n_available) if size < 1 else int(size)
    if size >= 1 and size != int(size):
        raise ValueError(f"{where}: training size {size} is neither a whole count nor a "
                         "fraction below 1")
    if n > n_available:
        raise ValueError(f"{where}: training size {size} exceeds the {n_available} training "
                         "records available")
    return max(n, 1)


def nested_subset(split: np.ndarray, labels: np.ndarray, size: float, seed: int,
                  where: str = "train_sizes") -> np.ndarray:
    """A copy of ``split`` in which only a stratified, nested subset of TRAIN keeps training.

    The other train records get :data:`UNUSED`; test and validation never change, so every
    size is scored on the same records. ``size`` is a count or a fraction of TRAIN.
    """
    split = np.asarray(split)
    train = np.flatnonzero(split == TRAIN)
    n = subset_size(size, len(train), where)
    order = stratified_order(np.asarray(labels)[train], seed)
    out = split.astype(np.uint8, copy=True)
    out[train[order[n:]]] = UNUSED
    return out
