"""What a training job costs outside its epochs, before and after issue 11's changes.

    OMP_NUM_THREADS=1 .venv/bin/python bench/overhead.py [--repeat 3] [--archs resnet1d101 gru]

Each run is a fresh Python process that trains one demo-sized job (120 records of 12 x 150
samples, 4 epochs, batch 16) through ``train.train`` as the workflow's script does, with a
resume folder. The overhead is the process's wall time minus the epochs' own ``seconds`` in
metrics.csv: interpreter start, imports, reading the shard, building the model, resume-state
writes, and writing the outputs. Two settings side by side, in the same run:

* ``before``: a resume state after every epoch and Adam's state in model.pt (the engine's
  behaviour before issue 11, and still the pretrained models' before it);
* ``after``: the defaults now (a resume state only once 30 s have passed; no Adam state).

Prints the median overhead per setting and architecture and the ratio after / before.

    .venv/bin/python bench/overhead.py --from-run DIR

measures a finished run instead (e.g. the demo in a fresh clone, DIR its root): per training
rule, the jobs' wall times from ``benchmarks/<rule>/**.tsv`` minus their epochs' ``seconds``
from metrics.csv, per job (the mean, and over all training jobs the median and quartiles: issue
21's goal is the median); the wall time of the other rules' jobs; and the disk that
``results/`` and ``resources/`` take (each hard-linked file counted once, as ``du`` does).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ecg_transfer.datasets import STANDARD_LEADS, RecordSet
from ecg_transfer.shards import write_shard
from ecg_transfer.splits import SplitSpec, split_records

SETTINGS = {
    "before": {"resume_interval_s": 0.0, "save_optimizer": True},
    "after": {},
}

_CHILD = """
import json, sys
from ecg_transfer import train
shard, out, kw = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
settings = train.TrainSettings(epochs=4, batch_size=16, lr=0.001, seed=0, **kw)
train.train(shard, settings, metrics_path=out + "/metrics.csv", checkpoint_path=out + "/model.pt",
            predictions_path=out + "/predictions.npz", resume_dir=out + "/resume")
"""


def make_shard(path: Path) -> Path:
    rng = np.random.default_rng(0)
    n, t = 180, 150
    labels = (rng.random((n, 5)) < 0.3).astype(np.uint8)
    x = rng.normal(0, 0.3, (n, 12, t)).astype(np.float32)
    rs = RecordSet(signals=x, labels=labels, classes=[f"c{k}" for k in range(5)],
                   record_ids=[f"r{i:03d}" for i in range(n)], fs=50.0,
                   leads=list(STANDARD_LEADS), patient_ids=None, folds=None, dropped=[],
                   protocol="paper")
    split, method = split_records(rs, SplitSpec(test_size=0.33, random_state=1))
    return write_shard(path, "bench", rs, split, method)


def overhead(shard: Path, out: Path, kw: dict) -> float:
    out.mkdir(parents=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", _CHILD, str(shard), str(out), json.dumps(kw)],
                   check=True, capture_output=True)
    wall = time.perf_counter() - start
    return wall - float(pd.read_csv(out / "metrics.csv")["seconds"].sum())


TRAINING_RULES = {
    # rule -> the folder under results/ its outputs live in
    "pretrain": "pretrain", "finetune": "finetune", "train_scratch": "scratch",
    "finetune_size": "sizes/finetune", "train_scratch_size": "sizes/scratch",
}


def disk_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder``, each inode once (hard links are one file)."""
    seen, total = set(), 0
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            st = path.stat()
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def from_run(root: Path) -> None:
    jobs = wall = epochs = 0.0
    per_job: list[float] = []
    for rule, folder in TRAINING_RULES.items():
        tsvs = sorted((root / "benchmarks" / rule).rglob("*.tsv"))
        if not tsvs:
            continue
        walls = [float(pd.read_csv(t, sep="\t")["s"].iloc[-1]) for t in tsvs]
        metrics = [root / "results" / folder / t.relative_to(root / "benchmarks" / rule)
                   .with_suffix("") / "metrics.csv" for t in tsvs]
        job_epochs = [float(pd.read_csv(m)["seconds"].sum()) for m in metrics]
        per_job += [w - e for w, e in zip(walls, job_epochs, strict=True)]
        rule_wall, rule_epochs = sum(walls), sum(job_epochs)
        print(f"{rule:20s} {len(tsvs):4d} jobs  wall {rule_wall:7.1f} s  epochs "
              f"{rule_epochs:7.1f} s  overhead {(rule_wall - rule_epochs) / len(tsvs):5.2f} s/job")
        jobs, wall, epochs = jobs + len(tsvs), wall + rule_wall, epochs + rule_epochs
    print(f"{'training, all':20s} {int(jobs):4d} jobs  wall {wall:7.1f} s  epochs {epochs:7.1f} s"
          f"  overhead {(wall - epochs) / max(jobs, 1):5.2f} s/job")
    if per_job:
        q1, median, q3 = np.quantile(per_job, [0.25, 0.5, 0.75])
        print(f"{'training, per job':20s} overhead median {median:5.2f} s  quartiles "
              f"{q1:5.2f} / {q3:5.2f} s")
    for rule_dir in sorted((root / "benchmarks").iterdir()):
        if rule_dir.name not in TRAINING_RULES:
            tsvs = list(rule_dir.rglob("*.tsv"))
            total = sum(float(pd.read_csv(t, sep="\t")["s"].iloc[-1]) for t in tsvs)
            print(f"{rule_dir.name:20s} {len(tsvs):4d} jobs  wall {total:7.1f} s")
    for folder in ("results", "resources"):
        if (root / folder).is_dir():
            print(f"disk {folder + '/':11s} {disk_bytes(root / folder) / 1e9:6.2f} GB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--archs", nargs="+", default=["resnet1d101", "resnet1d18", "gru"])
    parser.add_argument("--from-run", type=Path, metavar="DIR",
                        help="measure a finished run in DIR instead (see above)")
    args = parser.parse_args()
    if args.from_run is not None:
        from_run(args.from_run)
        return
    with tempfile.TemporaryDirectory(prefix="overhead-bench-") as tmp:
        shard = make_shard(Path(tmp) / "bench.h5")
        for arch in args.archs:
            medians = {}
            for name, extra in SETTINGS.items():
                runs = [overhead(shard, Path(tmp) / f"{arch}-{name}-{i}", {"arch": arch, **extra})
                        for i in range(args.repeat)]
                medians[name] = statistics.median(runs)
                print(f"{arch:12s} {name:7s} overhead {medians[name]:5.2f} s  "
                      f"(runs: {', '.join(f'{r:.2f}' for r in runs)})", flush=True)
            print(f"{arch:12s} after / before: {medians['after'] / medians['before']:.2f}")


if __name__ == "__main__":
    main()
