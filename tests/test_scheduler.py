"""workflow/rules/scheduler.smk: Snakemake's job scheduler keeps one wake-up timer pending, not one
more for every finished job (bench/README.md, issue 21).

bench/scheduler.py's workflow of short jobs that wait for one core each runs with and without the
file included; `--verbose` shows each scheduling pass that found jobs waiting ("Ready jobs: N").
With one pending wake-up, a run makes at most one pass per finished job plus one per second of
its wall time (the timer's timespan, 1 s by default). Without it Snakemake makes many more: if
that stops being true, Snakemake has fixed the chains itself and scheduler.smk can go.
"""

from __future__ import annotations

import importlib.util

import pytest
from tiny_study import REPO

pytestmark = pytest.mark.slow

JOBS = 12


def _bench():
    path = REPO / "bench" / "scheduler.py"
    spec = importlib.util.spec_from_file_location("bench_scheduler", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_pending_wakeup_bounds_the_scheduling_passes():
    wall, _, passes = _bench().run(include=True, jobs=JOBS, cores=1, seconds=0.8)
    assert passes <= JOBS + wall + 2, (passes, wall)


def test_without_it_snakemake_still_chains_its_wakeups():
    wall, _, passes = _bench().run(include=False, jobs=JOBS, cores=1, seconds=0.8)
    assert passes > JOBS + wall + 2, (
        f"{passes} passes in {wall:.1f} s: Snakemake no longer starts a wake-up chain per "
        "finished job; workflow/rules/scheduler.smk is not needed any more")
