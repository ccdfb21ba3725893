"""How long Snakemake takes to plan the study as the grid grows (issue 5: scale of the DAG).

    .venv/bin/python bench/dag.py [--factors 1 10 50] [--repeat 1]

Dry-runs (`snakemake -n --quiet rules`) the paper's config.yaml in an empty temporary folder,
then the same config with the seed list made FACTOR times longer (50 seeds: 6000 training
jobs), and prints the wall time of each, the number of jobs, and the ratios to the paper config.
Nothing is downloaded: a dry run only plans. Goal: the x50 grid in at most 10 s (issue 21,
item 4; it was 30 s in issue 5), and time per job not growing with the grid (no worse than
linear).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
GOAL = (50, 10.0)  # (grid factor, seconds): issue 21, item 4


def dry_run(config: dict, repeat: int) -> tuple[float, int]:
    """Best wall time of ``repeat`` dry runs, and the number of jobs planned."""
    best = float("inf")
    with tempfile.TemporaryDirectory(prefix="dag-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
        for _ in range(repeat):
            start = time.perf_counter()
            out = subprocess.run(
                [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
                 "--configfile", str(workdir / "config.yaml"), "--cores", "1", "-n",
                 "--quiet", "rules"],
                capture_output=True, text=True, cwd=workdir, check=False,
            )
            best = min(best, time.perf_counter() - start)
            if out.returncode != 0:
                raise SystemExit(f"dry run failed:\n{out.stdout}\n{out.stderr}")
    total = re.search(r"^total\s+(\d+)$", out.stdout, re.M)
    if total is None:
        raise SystemExit(f"no job total in the dry run's output:\n{out.stdout}")
    return best, int(total[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 10, 50],
                        help="grid sizes as multiples of the paper's (via the seed list)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size; the best counts")
    args = parser.parse_args()
    paper = yaml.safe_load((REPO / "config.yaml").read_text())
    rows = []
    for factor in args.factors:
        config = {**paper, "seeds": list(range(factor * len(paper["seeds"])))}
        seconds, jobs = dry_run(config, args.repeat)
        rows.append((factor, jobs, seconds))
        print(f"x{factor:<3} {jobs:6d} jobs  {seconds:7.2f} s  {1000 * seconds / jobs:6.2f} ms/job",
              flush=True)
    base_factor, base_jobs, base_seconds = rows[0]
    for factor, jobs, seconds in rows[1:]:
        growth = "no worse than linear" if seconds / base_seconds <= jobs / base_jobs \
            else "SUPERLINEAR"
        print(f"x{factor} vs x{base_factor}: {jobs / base_jobs:.1f}x the jobs, "
              f"{seconds / base_seconds:.2f}x the time ({growth})")
    for factor, _, seconds in rows:
        if factor == GOAL[0]:
            verdict = "met" if seconds <= GOAL[1] else "NOT met"
            print(f"x{factor}: {seconds:.2f} s against the goal of {GOAL[1]:.0f} s: {verdict}")


if __name__ == "__main__":
    main()
