"""workflow/rules/scheduler.smk: Snakemake's job scheduler keeps one wake-up timer pending, not one
more for every finished job (bench/README.md, issue 21).

A workflow of short jobs that wait for one core each runs twice, with and without the file
included, and `--verbose` shows each scheduling pass that found jobs waiting ("Ready jobs: N").
With one pending wake-up, a run makes at most one pass per finished job plus one per second of
its wall time (the timer's timespan, 1 s by default). Without it Snakemake makes many more: if
that stops being true, Snakemake has fixed the chains itself and scheduler.smk can go.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from tiny_study import REPO, SNAKEMAKE

pytestmark = pytest.mark.slow

JOBS = 12
SNAKEFILE = """\
{include}
rule all:
    input:
        expand("out/{{i}}.txt", i=range({jobs})),


rule job:
    output:
        "out/{{i}}.txt",
    shell:
        "sleep 0.8 && touch {{output}}"
"""


def _passes(workdir: Path, include: bool) -> tuple[int, float]:
    """Scheduling passes with waiting jobs, and the run's wall time in seconds."""
    workdir.mkdir()
    line = f'include: "{REPO / "workflow" / "rules" / "scheduler.smk"}"\n' if include else ""
    (workdir / "Snakefile").write_text(SNAKEFILE.format(include=line, jobs=JOBS))
    start = time.perf_counter()
    out = subprocess.run([SNAKEMAKE, "--cores", "1", "--verbose", "--nolock"], cwd=workdir,
                         capture_output=True, text=True, timeout=300, check=False)
    wall = time.perf_counter() - start
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(list((workdir / "out").iterdir())) == JOBS
    return len(re.findall(r"^Ready jobs: \d+", out.stderr, re.M)), wall


def test_one_pending_wakeup_bounds_the_scheduling_passes(tmp_path):
    passes, wall = _passes(tmp_path / "one", include=True)
    assert passes <= JOBS + wall + 2, (passes, wall)


def test_without_it_snakemake_still_chains_its_wakeups(tmp_path):
    passes, wall = _passes(tmp_path / "chained", include=False)
    assert passes > JOBS + wall + 2, (
        f"{passes} passes in {wall:.1f} s: Snakemake no longer starts a wake-up chain per "
        "finished job; workflow/rules/scheduler.smk is not needed any more")
