"""Where a training job's time outside its epochs goes, as Snakemake starts it (issue 21).

    .venv/bin/python bench/job_profile.py --run DIR --target FILE [--configfile F ...]
                                          [--repeat 3]

DIR is a finished run (e.g. the demo in a fresh clone), FILE an output of one of its training
jobs (e.g. ``results/pretrain/ptbxl/gru/seed0/metrics.csv``), the config files those of the
run. The job is run once more through Snakemake (``--forcerun``, ``--skip-script-cleanup``),
which leaves the script it generated (Snakemake's preamble, the pickled job, then
``workflow/scripts/train.py``); that very script is then run ``--repeat`` times as the job's
process, under ``python -X importtime``, timing:

* ``start -> device``: interpreter start, the preamble (unpickling the job imports Snakemake's
  ``iocontainers`` and ``logging``), the script's imports, up to ``gpu.claim_device``'s log line;
* ``device -> data``: reading the shard, the split, the constant baseline (the log line that
  names the job's records);
* ``data -> first epoch``: building the model and the optimiser (the first epoch's own
  seconds, from metrics.csv, are taken off);
* ``epochs``: the sum of metrics.csv ``seconds``;
* ``last epoch -> exit``: selection, writing model.pt, model.json, predictions.npz,
  metrics.csv, removing the resume folder, interpreter exit;

and, from ``-X importtime``, the cumulative import time of each outermost import of the
process: the script's own, and the lazy ones inside functions (``torch._dynamo``, which the
first ``torch.optim.Adam`` imported until the engine got its own Adam, ``ecg_transfer.optim``).
The job's numbers do not change (the script is the job's own); its outputs are rewritten.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ ([\w.]+): (.*)$")
_IMPORT = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$")
PHASES = ("start -> device", "device -> data", "data -> first epoch", "epochs",
          "last epoch -> exit", "total")


def _stamp(text: str) -> float:
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _force_run(run: Path, target: str, configfiles: list[str]) -> Path:
    """Run the job once through Snakemake; the script it generated for the job."""
    scripts = run / ".snakemake" / "scripts"
    before = set(scripts.glob("*.py")) if scripts.is_dir() else set()
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    out = subprocess.run(
        [snakemake, target, "--cores", "1", "--forcerun", target, "--skip-script-cleanup",
         *(["--configfile", *configfiles] if configfiles else [])],
        cwd=run, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"snakemake --forcerun {target} failed:\n{out.stdout}\n{out.stderr}")
    new = sorted(set(scripts.glob("*.py")) - before, key=lambda p: p.stat().st_mtime)
    if not new:
        sys.exit(f"{scripts}: no script left by the job (is {target} a training job's output?)")
    return new[-1]


def _log_path(script: Path) -> Path:
    """The job's log file, from the preamble's pickled job (it names snakemake.log[0])."""
    text = script.read_text(errors="replace")
    match = re.search(r"logs/[\w/.\-]+\.log", text)
    if match is None:
        sys.exit(f"{script}: no log path in the preamble")
    return Path(match[0])


def _imports(lines: list[str]) -> dict[str, float]:
    """Cumulative import seconds of each outermost import: a module the process imported
    itself, at the top of a script or lazily inside a function (``torch._dynamo`` by a
    ``torch.optim.Adam``), not one imported by another module."""
    out: dict[str, float] = {}
    for line in lines:
        m = _IMPORT.match(line)
        if m and len(m[3]) == 1:  # one space of indent: not imported by another module
            out[m[4]] = out.get(m[4], 0.0) + int(m[2]) / 1e6
    return out


def profile_once(run: Path, script: Path, log: Path, metrics: Path) -> tuple[dict, dict]:
    log_file = run / log
    keep = log_file.read_text() if log_file.exists() else ""
    log_file.write_text("")
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    start = time.time()
    out = subprocess.run([sys.executable, str(script)], cwd=run, env=env, capture_output=True,
                         text=True, check=False)
    end = time.time()
    text = log_file.read_text()
    log_file.write_text(keep + text)
    if out.returncode != 0:
        sys.exit(f"the job's script failed:\n{out.stderr[-3000:]}\n{text[-3000:]}")
    stamps = []
    for line in text.splitlines():
        m = _STAMP.match(line)
        if m:
            stamps.append((_stamp(m[1]), m[2], m[3]))
    device = next(t for t, name, msg in stamps if name.endswith(".gpu") and "device" in msg)
    data = next(t for t, name, msg in stamps if re.search(r"\d+ train / ", msg))
    epochs = [t for t, name, msg in stamps if re.match(r"epoch \d+/\d+ ", msg)]
    seconds = pd.read_csv(run / metrics)["seconds"].to_numpy()
    phases = {
        "start -> device": device - start,
        "device -> data": data - device,
        "data -> first epoch": epochs[0] - seconds[0] - data,
        "epochs": float(seconds.sum()),
        "last epoch -> exit": end - epochs[-1],
        "total": end - start,
    }
    # -X importtime writes to file descriptor 2, which the job's log does not take over:
    # every import of the process is in its stderr, the lazy ones (inside functions) too
    return phases, _imports(out.stderr.splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--configfile", nargs="*", default=[])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    run = args.run.resolve()
    metrics = Path(args.target).with_name("metrics.csv")
    script = _force_run(run, args.target, args.configfile)
    log = _log_path(script)
    print(f"job: {args.target}; script {script.relative_to(run)}; log {log}; "
          f"load average {os.getloadavg()[0]:.2f}")
    runs = [profile_once(run, script, log, metrics) for _ in range(args.repeat)]
    print(f"\nmedian of {args.repeat} runs (seconds):")
    for phase in PHASES:
        values = [p[phase] for p, _ in runs]
        print(f"  {phase:<22} {statistics.median(values):6.2f}   "
              f"({', '.join(f'{v:.2f}' for v in values)})")
    print("\nimports, cumulative seconds (median), outermost imports over 0.05 s:")
    names = {n for _, imp in runs for n in imp}
    rows = sorted(((statistics.median([imp.get(n, 0.0) for _, imp in runs]), n) for n in names),
                  reverse=True)
    for seconds, name in rows:
        if seconds >= 0.05:
            print(f"  {name:<22} {seconds:6.2f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
