"""Sharding speed and memory: the study's data stage against reading the same records raw.

Builds a PTB-XL-format folder of ``--records`` records (the demo generator's mirror, extracted
with the production ``download.extract``) and a second one of 4x the records, then measures, each
in a fresh Python process so that imports, caches and allocator state never carry over:

- ``rdrecord``: ``wfdb.rdrecord`` over the folder's ``records100`` records (the files the
  ``paper`` protocol reads at 100 Hz), nothing else: the raw read alone.
- ``shard``: the project's sharding of the folder with config.yaml's PTB-XL settings, i.e.
  ``prepare.make_shard`` = ``write_index`` (record list, labels, split) + ``make_part`` (read,
  preprocess and write every record streaming into one HDF5 part), timed end to end.

It prints records/second of both and their ratio (goal >= 0.7: the sharding may add little to
the read), and the peak RSS (``ru_maxrss``) of sharding 1x against 4x the records in one part
(goal: within 10 %, i.e. memory does not grow with the number of records). Timings exclude
Python start-up and imports; the peak RSS includes them, as a job's does.

Usage::

    python bench/preprocess.py                 # 400 and 1600 records, about 1.5 min on 2 cores
    python bench/preprocess.py --records 1000 --workdir /scratch/bench
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child_rdrecord(root: Path) -> dict:
    """Read every 100 Hz record with wfdb, as a baseline no reader can beat by much."""
    import wfdb

    warnings.simplefilter("ignore")  # wfdb's pandas deprecation warnings
    headers = sorted(root.rglob("records100/**/*.hea"))
    start = time.perf_counter()
    for header in headers:
        wfdb.rdrecord(str(header.with_suffix("")))
    return {"records": len(headers), "seconds": time.perf_counter() - start,
            "peak_rss_mb": _peak_rss_mb()}


def child_shard(root: Path, out: Path) -> dict:
    """Shard the folder as the workflow would, with config.yaml's PTB-XL settings."""
    import h5py

    from ecg_transfer import prepare

    warnings.simplefilter("ignore")
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())["datasets"]["ptbxl"]
    start = time.perf_counter()
    prepare.make_shard("ptbxl", root, out, preprocess=cfg.get("preprocess", {}),
                      split=cfg.get("split", {}))
    seconds = time.perf_counter() - start
    with h5py.File(out) as f:
        written = len(f["record_ids"])
    return {"records": written, "seconds": seconds, "peak_rss_mb": _peak_rss_mb()}


def run_child(*args: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True,
                         text=True, env=env, check=False)
    if out.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def build_folder(workdir: Path, n_records: int) -> Path:
    """A PTB-XL-format folder of n_records records, through the production extract code."""
    from ecg_transfer import demo, download

    archive = workdir / f"ptbxl-{n_records}.zip"
    demo.write_archive("ptbxl", archive, n_records, seed=0)
    root = download.extract(archive, workdir / f"ptbxl-{n_records}")
    archive.unlink()
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=400, help="records of the 1x folder")
    parser.add_argument("--workdir", type=Path, help="where to build the folders (default: tmp)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *paths = args.child
        result = (child_rdrecord(Path(paths[0])) if kind == "rdrecord"
                  else child_shard(Path(paths[0]), Path(paths[1])))
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        small = build_folder(work, args.records)
        large = build_folder(work, 4 * args.records)
        print(f"built {args.records} + {4 * args.records} records in "
              f"{time.perf_counter() - t0:.0f} s")
        raw = run_child("rdrecord", str(small))
        shard1 = run_child("shard", str(small), str(work / "1x.h5"))
        shard4 = run_child("shard", str(large), str(work / "4x.h5"))

    def rate(r: dict) -> float:
        return r["records"] / r["seconds"]

    print(f"{'':28s}{'records':>8s}{'seconds':>9s}{'records/s':>11s}{'peak RSS MB':>13s}")
    for name, r in (("wfdb.rdrecord (raw read)", raw), ("sharding 1x", shard1),
                    ("sharding 4x", shard4)):
        print(f"{name:28s}{r['records']:8d}{r['seconds']:9.2f}{rate(r):11.1f}"
              f"{r['peak_rss_mb']:13.0f}")
    ratio = rate(shard1) / rate(raw)
    growth = shard4["peak_rss_mb"] / shard1["peak_rss_mb"] - 1
    print(f"speed ratio sharding / raw read: {ratio:.2f} (goal >= 0.7: "
          f"{'met' if ratio >= 0.7 else 'NOT met'})")
    print(f"peak RSS 4x vs 1x: {growth:+.1%} (goal within 10%: "
          f"{'met' if abs(growth) <= 0.10 else 'NOT met'})")


if __name__ == "__main__":
    main()
