"""Does MELEP pick the better upstream *within* a downstream set? Exact permutation tests.

MELEP scores a pretrained model for a downstream set before fine-tuning; **lower MELEP should
mean a larger gain** Δ (fine-tuned F1 - scratch F1). Pooling every downstream set into one
Spearman correlation answers another question: downstream sets differ in label entropy (which
bounds MELEP) and in how much fine-tuning can add, so set-level differences alone give a pooled
r near -0.87 when MELEP says nothing about which upstream to pick within any set, and a
bootstrap over the pairs cannot see that (with three sets its interval is [-1, -1]).

The question a user has is: given a downstream set, does the upstream with the lower MELEP
transfer better? So the unit of comparison is the upstream within a set, and the null
hypothesis is that **within each downstream set, MELEP carries no information about which
upstream transfers best**: the MELEP scores could have landed on any of the set's upstreams.
The permutation that follows from it relabels the upstreams of the scores, within each set,
with **one permutation for every architecture of the set**: the architectures are fine-tuned
from the same upstream datasets, so if an upstream suits a set it tends to suit every
architecture, and permuting each architecture on its own would treat them as independent
replicates and make p-values too small (1/36 instead of 1/6 for two architectures and three
upstreams). Sets are permuted independently of each other.

A permutation maps upstream u to π(u), so each architecture of the set needs a row for every
upstream of the set: **only architectures with every upstream of their set are used**, and the
rows of an architecture missing one are dropped and listed with the reason (reduce the table to
a complete block beforehand to choose differently). Every input row is either used or listed
in ``dropped_rows``.

When the permutations of all sets together are few enough, all of them are enumerated and
the p-value is exact; otherwise random permutations are drawn and the p-value is
(hits + 1) / (draws + 1), which is never below the exact one in expectation. ``min_p`` is the
smallest p-value the design can give at all: with three upstreams and one set it is 1/6, so a
claim at level 0.05 is not testable there, whatever the data.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy.stats import rankdata

__all__ = [
    "CORRELATION_COLUMNS",
    "RANKING_COLUMNS",
    "DroppedRow",
    "RankingHits",
    "Table",
    "WithinSetCorrelation",
    "ranking_hits",
    "within_set_correlation",
]

#: Columns :func:`within_set_correlation` reads (``score`` is MELEP, ``delta`` the realised Δ).
CORRELATION_COLUMNS = ("downstream", "arch", "upstream", "score", "delta")
#: Columns :func:`ranking_hits` reads.
RANKING_COLUMNS = ("downstream", "arch", "upstream", "score", "finetune_f1")
#: Correlations of two permutations closer than this are the same value (sums of float terms
#: in a different order differ by ~1e-15; distinct Spearman values differ by far more).
_TOL = 1e-9
_LABELS = ("downstream", "arch", "upstream")


class Table(Protocol):
    """A pandas DataFrame or a mapping of column name to equal-length array."""

    def __contains__(self, key: Any, /) -> bool: ...

    def __getitem__(self, key: Any, /) -> Any: ...


@dataclass(frozen=True)
class DroppedRow:
    """One input row left out of the test, and why."""

    downstream: str
    arch: str
    upstream: str
    reason: str


@dataclass(frozen=True)
class WithinSetCorrelation:
    """Mean within-set Spearman correlation of MELEP with Δ, and its permutation p-values.

    ``statistic`` is the mean over the tested sets of ``per_set`` (each set weighs the same,
    whatever its number of rows). ``p_less`` = P(T_perm <= T_obs) supports "lower MELEP,
    larger Δ"; ``p_greater`` = P(T_perm >= T_obs) the opposite; ``p_value`` is the one named
    by ``alternative``, and ``min_p`` the smallest value it could take with this design (ties
    included). With no testable set the statistic and p-values are NaN and ``min_p`` is 1.
    """

    statistic: float
    per_set: Mapping[str, float]
    alternative: str
    p_value: float
    p_less: float
    p_greater: float
    min_p: float
    n_sets: int
    n_pairs: int
    n_permutations: int
    exact: bool
    dropped_rows: tuple[DroppedRow, ...]
    dropped_sets: Mapping[str, str]


@dataclass(frozen=True)
class RankingHits:
    """How often the lowest MELEP picks the upstream with the best fine-tuned F1.

    ``hits`` of ``n`` (downstream, arch) groups; ``p_value`` = P(at least ``hits``) under the
    joint within-set permutation; ``expected`` the mean hits under it; ``min_p`` the smallest
    p-value the design can give (every group hit). With no group, p-values are NaN.
    """

    hits: int
    n: int
    p_value: float
    expected: float
    min_p: float
    n_sets: int
    n_permutations: int
    exact: bool
    dropped_rows: tuple[DroppedRow, ...]
    dropped_sets: Mapping[str, str]


@dataclass(frozen=True)
class _Block:
    """One downstream set as a complete (architecture x upstream) block, both sorted."""

    downstream: str
    archs: tuple[str, ...]
    upstreams: tuple[str, ...]
    score: np.ndarray
    value: np.ndarray


# --------------------------------------------------------------------------------------------
# Input


def _is_missing(x: object) -> bool:
    try:
        return x is None or bool(x != x)
    except TypeError:  # pandas.NA compares to NA, whose truth value is ambiguous
        return True


def _read(table: Table, columns: Sequence[str]) -> tuple[list[tuple[str, str, str]],
                                                           dict[str, np.ndarray]]:
    """The (downstream, arch, upstream) keys and numeric columns, checked."""
    missing = [c for c in columns if c not in table]
    if missing:
        raise ValueError(f"table: missing column(s) {', '.join(map(repr, missing))}; expected "
                         f"{', '.join(columns)}")
    raw = {c: np.asarray(table[c], dtype=object).ravel() for c in columns}
    n = len(raw[columns[0]])
    for c in columns:
        if len(raw[c]) != n:
            raise ValueError(f"table: column {c!r} has {len(raw[c])} rows, {columns[0]!r} {n}")
        bad = [i for i, x in enumerate(raw[c]) if _is_missing(x)]
        if bad:
            raise ValueError(f"table: column {c!r} is missing (NaN/None) in row(s) {bad[:5]}; "
                             f"expected a value in every row")
    down, arch, up = (raw[c] for c in _LABELS)
    keys = [(str(down[i]), str(arch[i]), str(up[i])) for i in range(n)]
    values: dict[str, np.ndarray] = {}
    for c in columns[len(_LABELS):]:
        try:
            values[c] = raw[c].astype(float)
        except (TypeError, ValueError):
            raise ValueError(f"table: column {c!r} is not numeric; expected numbers") from None
        bad = np.flatnonzero(~np.isfinite(values[c])).tolist()
        if bad:
            raise ValueError(f"table: column {c!r} is not finite in row(s) {bad[:5]}; expected "
                             f"finite numbers")
    seen: dict[tuple[str, str, str], int] = {}
    for i, key in enumerate(keys):
        if key in seen:
            raise ValueError(f"table: rows {seen[key]} and {i} have the same (downstream, arch, "
                             f"upstream) {key}; expected one row each (average seeds first)")
        seen[key] = i
    return keys, values


def _blocks(keys: list[tuple[str, str, str]], score: np.ndarray, value: np.ndarray
            ) -> tuple[list[_Block], list[DroppedRow], dict[str, str]]:
    """Each downstream set's complete block; sets with fewer than 2 upstreams or no complete
    architecture are left out, and so are the rows of incomplete architectures."""
    by_set: dict[str, dict[tuple[str, str], int]] = {}
    for i, (down, arch, up) in enumerate(keys):
        by_set.setdefault(down, {})[arch, up] = i
    blocks: list[_Block] = []
    dropped: list[DroppedRow] = []
    dropped_sets: dict[str, str] = {}
    for down in sorted(by_set):
        rows = by_set[down]
        ups = tuple(sorted({u for _, u in rows}))
        archs = tuple(sorted({a for a, _ in rows}))
        full = tuple(a for a in archs if all((a, u) in rows for u in ups))
        reason = ("fewer than 2 upstreams: no choice of upstream to test" if len(ups) < 2
                  else "no architecture has every upstream of the set" if not full else "")
        if reason:
            dropped_sets[down] = reason
        for a, u in sorted(rows):
            if reason:
                dropped.append(DroppedRow(down, a, u, f"set left out: {reason}"))
            elif a not in full:
                lacks = ", ".join(repr(x) for x in ups if (a, x) not in rows)
                dropped.append(DroppedRow(down, a, u, f"arch {a!r} lacks upstream(s) {lacks}"))
        if not reason:
            index = np.array([[rows[a, u] for u in ups] for a in full])
            blocks.append(_Block(down, full, ups, score[index], value[index]))
    return blocks, dropped, dropped_sets


def _drop_block(block: _Block, reason: str, dropped: list[DroppedRow],
                dropped_sets: dict[str, str]) -> None:
    dropped_sets[block.downstream] = reason
    dropped.extend(DroppedRow(block.downstream, a, u, f"set left out: {reason}")
                   for a in block.archs for u in block.upstreams)


# --------------------------------------------------------------------------------------------
# Permutations


def _all_perms(k: int) -> np.ndarray:
    return np.array(list(itertools.permutations(range(k))), dtype=np.intp).reshape(-1, k)


def _random_perms(rng: np.random.Generator, k: int, n: int) -> np.ndarray:
    return rng.permuted(np.broadcast_to(np.arange(k), (n, k)), axis=1)


def _check_args(max_exact: int, n_perm: int) -> None:
    if max_exact < 0:
        raise ValueError(f"max_exact={max_exact}; expected >= 0")
    if n_perm < 1:
        raise ValueError(f"n_perm={n_perm}; expected >= 1")


# --------------------------------------------------------------------------------------------
# Within-set correlation


def _rho_terms(block: _Block) -> tuple[np.ndarray, float] | str:
    """M and the norm with rho(π) = Σ_u M[π(u), u] / norm, or why the set has no rho.

    Spearman's rho is Pearson's r of the ranks. Permuting upstreams within each architecture
    moves the scores, and with them their ranks, among the set's rows without changing the
    ranks' mean or spread, so every permutation's rho is a sum of entries of one k x k matrix.
    """
    if block.score.size < 3:
        return "fewer than 3 rows"
    rs = rankdata(block.score, axis=None).reshape(block.score.shape)
    rd = rankdata(block.value, axis=None).reshape(block.value.shape)
    rs, rd = rs - rs.mean(), rd - rd.mean()
    if not rs.any():
        return "score is constant"
    if not rd.any():
        return "delta is constant"
    return rs.T @ rd, float(np.sqrt((rs**2).sum() * (rd**2).sum()))


def _rhos(m: np.ndarray, norm: float, perms: np.ndarray) -> np.ndarray:
    return m[perms, np.arange(m.shape[0])].sum(axis=1) / norm


def within_set_correlation(table: Table, *, alternative: str = "less",
                           max_exact: int = 100_000, n_perm: int = 20_000,
                           seed: int = 0) -> WithinSetCorrelation:
    """Mean over downstream sets of Spearman(MELEP, Δ), tested by the joint within-set
    permutation of the module docstring.

    ``table`` is a pandas DataFrame or a mapping of equal-length arrays with the columns of
    :data:`CORRELATION_COLUMNS`, one row per (downstream, arch, upstream). A set is left out
    (``dropped_sets``) with fewer than 2 upstreams, no architecture having all of them, fewer
    than 3 rows, or a constant score or Δ (its rho is undefined under every permutation alike).
    All permutations are enumerated when their number, the product over sets of k!, is at most
    ``max_exact``; otherwise ``n_perm`` are drawn with ``seed``. In that case ``min_p`` is
    max(1 / (n_perm + 1), the design's), a set with more than ``max_exact`` permutations
    counting 1/k! towards the design's (a lower bound: ties are not looked for).
    """
    if alternative not in ("less", "greater"):
        raise ValueError(f"alternative={alternative!r}; expected 'less' or 'greater'")
    _check_args(max_exact, n_perm)
    keys, values = _read(table, CORRELATION_COLUMNS)
    blocks, dropped, dropped_sets = _blocks(keys, values["score"], values["delta"])
    terms = []
    for block in blocks:
        got = _rho_terms(block)
        if isinstance(got, str):
            _drop_block(block, got, dropped, dropped_sets)
        else:
            terms.append((block, *got))
    per_set = {b.downstream: float(np.trace(m) / norm) for b, m, norm in terms}
    n_pairs = sum(b.score.size for b, _, _ in terms)
    common = {"per_set": per_set, "alternative": alternative, "n_sets": len(terms),
              "n_pairs": n_pairs, "dropped_rows": tuple(dropped),
              "dropped_sets": dict(sorted(dropped_sets.items()))}
    if not terms:
        nan = math.nan
        return WithinSetCorrelation(statistic=nan, p_value=nan, p_less=nan, p_greater=nan,
                                    min_p=1.0, n_permutations=0, exact=True, **common)
    observed = sum(per_set.values())  # T times the number of sets: the tests compare sums
    tol = _TOL * len(terms)
    total = math.prod(math.factorial(b.score.shape[1]) for b, _, _ in terms)
    sign = 1.0 if alternative == "less" else -1.0
    if total <= max_exact:
        t = np.zeros(1)
        for _, m, norm in terms:
            t = (t[:, None] + _rhos(m, norm, _all_perms(m.shape[0]))[None, :]).ravel()
        p_less = float(np.mean(t <= observed + tol))
        p_greater = float(np.mean(t >= observed - tol))
        min_p = float(np.mean(sign * t <= (sign * t).min() + tol))
        n_permutations, exact = total, True
    else:
        rng = np.random.default_rng(seed)
        t = np.zeros(n_perm)
        design = 1.0
        for _, m, norm in terms:
            k = m.shape[0]
            t += _rhos(m, norm, _random_perms(rng, k, n_perm))
            if math.factorial(k) <= max_exact:
                every = sign * _rhos(m, norm, _all_perms(k))
                design *= float(np.mean(every <= every.min() + _TOL))
            else:
                design /= math.factorial(k)
        p_less = (int(np.sum(t <= observed + tol)) + 1) / (n_perm + 1)
        p_greater = (int(np.sum(t >= observed - tol)) + 1) / (n_perm + 1)
        min_p = max(design, 1 / (n_perm + 1))
        n_permutations, exact = n_perm, False
    return WithinSetCorrelation(
        statistic=observed / len(terms), p_value=p_less if alternative == "less" else p_greater,
        p_less=p_less, p_greater=p_greater, min_p=min_p, n_permutations=n_permutations,
        exact=exact, **common)


# --------------------------------------------------------------------------------------------
# Ranking hits


def _hits(block: _Block, perms: np.ndarray) -> np.ndarray:
    """Hits of the set under each permutation: per architecture, the upstream that receives
    the lowest score (a tie goes to the upstream first in sorted order, as in
    beyond.melep_ranking) hits when its fine-tuned F1 equals the architecture's best."""
    best = block.value == block.value.max(axis=1, keepdims=True)  # (archs, k)
    picks = block.score[:, perms].argmin(axis=2)  # (archs, perms)
    return best[np.arange(best.shape[0])[:, None], picks].sum(axis=0)


def ranking_hits(table: Table, *, max_exact: int = 100_000, n_perm: int = 20_000,
                 seed: int = 0) -> RankingHits:
    """Count the (downstream, arch) groups where the lowest MELEP picks an upstream with the
    best fine-tuned F1, and P(at least that many) under the joint within-set permutation.

    ``table`` has the columns of :data:`RANKING_COLUMNS`, one row per (downstream, arch,
    upstream). The scratch model is common to a (downstream, arch) group, so the best
    fine-tuned F1 is the best Δ. Sets are independent under the null, so when each set's k! is
    at most ``max_exact`` the per-set distributions of hits are enumerated and convolved (exact
    however many sets there are); otherwise ``n_perm`` joint draws with ``seed`` give
    (hits + 1) / (n_perm + 1).
    """
    _check_args(max_exact, n_perm)
    keys, values = _read(table, RANKING_COLUMNS)
    blocks, dropped, dropped_sets = _blocks(keys, values["score"], values["finetune_f1"])
    common = {"n_sets": len(blocks), "dropped_rows": tuple(dropped),
              "dropped_sets": dict(sorted(dropped_sets.items()))}
    ident = [np.arange(len(b.upstreams))[None, :] for b in blocks]
    hits = int(sum(_hits(b, p)[0] for b, p in zip(blocks, ident, strict=True)))
    n = sum(len(b.archs) for b in blocks)
    if not blocks:
        return RankingHits(hits=0, n=0, p_value=math.nan, expected=math.nan, min_p=1.0,
                           n_permutations=0, exact=True, **common)
    sizes = [math.factorial(len(b.upstreams)) for b in blocks]
    if max(sizes) <= max_exact:
        pmf = np.ones(1)
        for b in blocks:
            counts = np.bincount(_hits(b, _all_perms(len(b.upstreams))),
                                 minlength=len(b.archs) + 1)
            pmf = np.convolve(pmf, counts / counts.sum())
        top = np.flatnonzero(pmf > 0).max()
        return RankingHits(hits=hits, n=n, p_value=float(min(1.0, pmf[hits:].sum())),
                           expected=float(np.arange(len(pmf)) @ pmf), min_p=float(pmf[top]),
                           n_permutations=math.prod(sizes), exact=True, **common)
    rng = np.random.default_rng(seed)
    draws = sum(_hits(b, _random_perms(rng, len(b.upstreams), n_perm)) for b in blocks)
    design = 1.0
    for b, size in zip(blocks, sizes, strict=True):
        if size <= max_exact:
            every = _hits(b, _all_perms(len(b.upstreams)))
            design *= float(np.mean(every == every.max()))
        else:
            design /= size
    return RankingHits(hits=hits, n=n,
                       p_value=(int(np.sum(draws >= hits)) + 1) / (n_perm + 1),
                       expected=float(np.mean(draws)), min_p=max(design, 1 / (n_perm + 1)),
                       n_permutations=n_perm, exact=False, **common)
