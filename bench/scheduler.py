"""What Snakemake's scheduler loop costs with and without workflow/rules/scheduler.smk (issue 21).

    .venv/bin/python bench/scheduler.py [--jobs 80] [--cores 2] [--seconds 1.0] [--repeat 2]

Runs a workflow of JOBS jobs that each sleep SECONDS and wait for one of CORES cores, with the
file included and without, alternating, and prints for each run the wall time, the CPU seconds
of the Snakemake process tree (`sleep` itself costs nothing, so this is Snakemake's own work:
its scheduler passes plus starting each job's shell) and the scheduling passes that found jobs
waiting (`--verbose`'s "Ready jobs" lines), then the ratios without/with. Measured side by side
in one run, so the machine's load affects both alike.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
SNAKEFILE = """\
{include}
rule all:
    input:
        expand("out/{{i}}.txt", i=range({jobs})),


rule job:
    output:
        "out/{{i}}.txt",
    shell:
        "sleep {seconds} && touch {{output}}"
"""


def run(include: bool, jobs: int, cores: int, seconds: float) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds of the Snakemake process and its children, scheduling passes."""
    line = f'include: "{REPO / "workflow" / "rules" / "scheduler.smk"}"\n' if include else ""
    with tempfile.TemporaryDirectory(prefix="sched-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "Snakefile").write_text(
            SNAKEFILE.format(include=line, jobs=jobs, seconds=seconds))
        before = os.times()
        start = time.perf_counter()
        out = subprocess.run([SNAKEMAKE, "--cores", str(cores), "--verbose", "--nolock"],
                             cwd=workdir, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        after = os.times()
        if out.returncode != 0:
            raise SystemExit(f"snakemake failed:\n{out.stderr}")
        if len(list((workdir / "out").iterdir())) != jobs:
            raise SystemExit(f"not every job wrote its output:\n{out.stderr}")
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system)
    return wall, cpu, len(re.findall(r"^Ready jobs: \d+", out.stderr, re.M))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=80)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=1.0, help="each job's sleep")
    parser.add_argument("--repeat", type=int, default=2, help="pairs of runs, alternated")
    args = parser.parse_args()
    print(f"{args.jobs} jobs of {args.seconds:g} s on {args.cores} cores; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    results: dict[bool, list[tuple[float, float, int]]] = {True: [], False: []}
    for i in range(args.repeat):
        for include in ((False, True) if i % 2 == 0 else (True, False)):
            wall, cpu, passes = run(include, args.jobs, args.cores, args.seconds)
            results[include].append((wall, cpu, passes))
            label = "one pending wake-up" if include else "Snakemake as it is"
            print(f"  {label:20s} wall {wall:6.1f} s  CPU {cpu:6.1f} s  passes {passes:6d}",
                  flush=True)
    median = {k: [statistics.median(col) for col in zip(*v, strict=True)]
              for k, v in results.items()}
    (w0, c0, p0), (w1, c1, p1) = median[False], median[True]
    print(f"median without / with: wall {w0:.1f} / {w1:.1f} s ({w0 / w1:.2f}x), "
          f"CPU {c0:.1f} / {c1:.1f} s ({c0 / c1:.2f}x), passes {p0:.0f} / {p1:.0f} "
          f"({p0 / p1:.1f}x); load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
