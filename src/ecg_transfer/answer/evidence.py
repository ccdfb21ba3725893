"""From the run's jobs to the evidence the claims judge: each model's F1 with its replicates.

One call of :func:`.bootstrap.model_replicates` per selection scores every model of the run —
every scratch and fine-tuned model, full split and size axis — on the same record resamples of
its downstream test set, so every table row, family mean and claim of that selection is
arithmetic on the same replicates (:mod:`.bootstrap` says which sources of chance they carry).

Under the paper selection each model's epoch is the best *test* epoch; where every seed of a
model saved its per-epoch test probabilities (``epoch_probs`` of predictions.npz), the best
epoch is taken again in every replicate, so the optimism of that choice is inside the interval.
Files from before ``epoch_probs`` existed fall back to the saved epoch's probabilities, and
:attr:`SelectionEvidence.reselected` says how many models could not be reselected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ecg_transfer.aggregate import _mean_curve
from ecg_transfer.answer.bootstrap import ModelInput, model_replicates
from ecg_transfer.answer.runs import Comparison, Run, pairings
from ecg_transfer.answer.verdicts import ConvergencePair, Evidence, Pairing, TestSplit

__all__ = ["ModelKey", "SelectionEvidence", "convergence_pairs", "model_key",
           "selection_evidence"]

#: (regime, downstream, arch, upstream or "", size): one model, all its seeds.
ModelKey = tuple[str, str, str, str, object]


def model_key(run: Run) -> ModelKey:
    return (run.regime, run.downstream, run.arch, run.upstream or "", run.size)


@dataclass(frozen=True)
class SelectionEvidence:
    """The evidence of one selection, the pairings it came from, and how it was built."""

    evidence: Evidence
    comparisons: Mapping[Pairing, Comparison]
    models: int
    reselected: int


def _model_inputs(comparisons: Sequence[Comparison], selection: str
                  ) -> tuple[dict[ModelKey, ModelInput], int]:
    runs: dict[ModelKey, tuple[Run, ...]] = {}
    for c in comparisons:
        for side in (c.scratch, c.finetune):
            runs[model_key(side[0])] = side
    inputs, reselected = {}, 0
    for key, seeds in runs.items():
        curves = selection == "paper" and all(r.epoch_probs is not None for r in seeds)
        reselected += curves
        inputs[key] = ModelInput(seeds[0].downstream, [
            r.epoch_probs if curves else r.probs[selection] for r in seeds])
    return inputs, reselected


def _pairing(c: Comparison, families: Mapping[str, str]) -> Pairing:
    return Pairing(downstream=c.downstream, arch=c.arch, family=families[c.arch],
                   upstream=c.upstream, size=c.size, n_train=c.n_train,
                   scratch=model_key(c.scratch[0]), finetune=model_key(c.finetune[0]),
                   constant_f1=float(np.mean([r.baseline_f1 for r in c.scratch + c.finetune])))


def selection_evidence(runs: Sequence[Run], selection: str, *, families: Mapping[str, str],
                       n_boot: int, seed: int,
                       arch_order: Sequence[str] = ()) -> SelectionEvidence:
    """Every model and pairing of ``selection``, bootstrapped together.

    ``Evidence.n_train`` lists every downstream set with a full-split pairing in *any*
    selection, so "the smallest set" is the run's smallest set whatever the selection.
    """
    comparisons = pairings(runs, arch_order, selection=selection)
    inputs, reselected = _model_inputs(comparisons, selection)
    test_sets = {c.downstream: c.scratch[0].y_true for c in comparisons}
    estimates = (model_replicates(test_sets, inputs, n_boot=n_boot, seed=seed)
                 if inputs else {})
    by_pairing = {_pairing(c, families): c for c in comparisons}
    n_train = {c.downstream: c.n_train for c in pairings(runs, full_only=True)}
    splits = {}
    for run in runs:
        if run.downstream not in splits:
            y = run.y_true
            splits[run.downstream] = TestSplit(len(y), tuple(int(v) for v in y.sum(axis=0)))
    seeds = {k: len(m.seeds) for k, m in inputs.items()}
    evidence = Evidence(selection, estimates, seeds, list(by_pairing), splits, n_train,
                        n_boot, seed)
    return SelectionEvidence(evidence, by_pairing, len(inputs), reselected)


def convergence_pairs(runs: Sequence[Run], arch_order: Sequence[str] = ()
                      ) -> list[ConvergencePair]:
    """Per full-split pairing, the per-epoch test F1 of metrics.csv averaged over seeds."""
    return [ConvergencePair(c.downstream, c.arch, c.upstream,
                            _mean_curve([r.log for r in c.scratch]).to_numpy(),
                            _mean_curve([r.log for r in c.finetune]).to_numpy(),
                            seeds=min(len(c.scratch), len(c.finetune)))
            for c in pairings(runs, arch_order, full_only=True)]
