"""Training throughput per architecture: the study's engine against a bare loop, and what the
whole paper study costs at that speed.

For each architecture this runs, on the same synthetic shard (random signals, ``--records``
records of shape (12, ``--length``), 5 classes; 0.67/0.33 train/test like the paper's, and a
validation split of ``validation_fraction`` of train, the engine's default, stored in the shard):

- the engine, ``ecg_transfer.train.train``, for 1 + ``--epochs`` epochs, with a resume folder as
  the workflow runs it. The first epoch is warm-up (allocator, cuDNN plans, thread pools) and is
  dropped; of the others the fastest counts (here and in the bare loop: on a shared machine the
  minimum is the least disturbed measurement). Two clocks per measured epoch:
  *loop*: metrics.csv's ``seconds`` (training, then scoring validation and test);
  *epoch*: the interval between the engine's consecutive per-epoch log lines, i.e. everything
  it does per epoch, the resume state it writes and the copy of the selected epoch included.
  Neither includes the job's set-up (reading the shard, building the model) or its final
  writes, which are paid once per job, not per epoch.
- a bare loop on the same model, device, precision, threads and batch sizes, on tensors already
  in memory: forward, loss, backward, optimiser step, nothing else (no ``.item()``, no checks);
  one warm-up step first, then ``--epochs`` timed epochs. Then a bare evaluation: the no-grad
  batched forward pass over the validation and test splits that the engine does every epoch.

Columns: ``train/s``: training samples per second, the engine's from its loop time minus the
bare evaluation time (what the engine adds, its F1 and bookkeeping, counts against it);
``ratio`` = engine / bare (goal on CPU: >= 0.9); ``eval share`` = evaluation time / epoch time;
``save s`` = epoch time - loop time (resume state and selected-epoch copy, per epoch).

The whole-study estimate applies the measured per-sample training and evaluation times and the
per-epoch save time to the paper study: 120 jobs x 100 epochs (18 pretrain on
PTB-XL/CPSC2018/Georgia, 72 fine-tune, 30 from scratch), each epoch training on the train split
less its validation part and evaluating validation and test. Per-job start-up is left out
(seconds per job). Per-sample times depend on the batch size: estimate with the study's batch
(256) where the machine allows it.

Usage::

    python bench/train_step.py                      # CPU defaults, a few minutes on 2 cores
    python bench/train_step.py --device cuda --concurrent 3  # as bench/gpu.sh does
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import inspect
import json
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from ecg_transfer import models, optim, train
from ecg_transfer.metrics import EPOCH_COLUMNS
from ecg_transfer.shards import read_shard, write_shard
from ecg_transfer.splits import TEST, TRAIN, VAL, SplitSpec, split_records

log = logging.getLogger("bench.train_step")

ARCHS = ("resnet1d18", "resnet1d50", "resnet1d101", "lstm", "bilstm", "gru")
N_CLASSES = 5
LR = 0.01  # the paper's Adam learning rate

# The paper study's datasets (records after the paper protocol) and test sizes: PTB-XL tests on
# strat_fold 10, the others on train_test_split(test_size=0.33), whose test size is
# ceil(0.33 * n).
_RECORDS = {"ptbxl": 21_799, "cpsc2018": 6_871, "georgia": 10_292, "ptb": 522, "ribeiro": 827}
_TEST = {"ptbxl": 2_198} | {
    d: math.ceil(0.33 * n) for d, n in _RECORDS.items() if d != "ptbxl"}
STUDY_SPLITS: dict[str, tuple[int, int]] = {
    d: (n - _TEST[d], _TEST[d]) for d, n in _RECORDS.items()}  # (train, test)
UPSTREAM = ("ptbxl", "cpsc2018", "georgia")
DOWNSTREAM = ("ptbxl", "cpsc2018", "georgia", "ptb", "ribeiro")
STUDY_EPOCHS = 100


def study_jobs() -> list[tuple[str, str]]:
    """(regime, dataset trained on) for one architecture: 3 pretrain + 12 fine-tune + 5 scratch.

    Times 6 architectures: the paper's 18 + 72 + 30 = 120 jobs.
    """
    jobs = [("pretrain", u) for u in UPSTREAM]
    jobs += [("finetune", d) for d in DOWNSTREAM for u in UPSTREAM if u != d]
    jobs += [("scratch", d) for d in DOWNSTREAM]
    return jobs


def engine_validation_fraction() -> float:
    """The engine's default share of train held out for validation (0 for an engine without)."""
    fields = {f.name: f for f in dataclasses.fields(train.TrainSettings)}
    return float(fields["validation_fraction"].default) if "validation_fraction" in fields else 0.0


def study_seconds(train_s_per_sample: float, eval_s_per_sample: float, save_s_per_epoch: float,
                  validation_fraction: float) -> float:
    """The paper study's compute time for one architecture at the given costs."""
    total = 0.0
    for _, dataset in study_jobs():
        n_train, n_test = STUDY_SPLITS[dataset]
        n_val = round(validation_fraction * n_train)
        total += STUDY_EPOCHS * ((n_train - n_val) * train_s_per_sample
                                 + (n_val + n_test) * eval_s_per_sample + save_s_per_epoch)
    return total


@dataclasses.dataclass
class Result:
    """One architecture's measurements; times in seconds per epoch of the bench shard."""

    arch: str
    n_train: int
    n_eval: int  # validation + test records scored every epoch
    engine_epoch_s: float  # everything per epoch (log-line interval)
    engine_loop_s: float  # training + scoring (metrics.csv seconds)
    bare_train_s: float
    eval_s: float  # bare validation + test pass
    validation_fraction: float
    # --concurrent N: throughput of N jobs at once on the device over one job's, and how much
    # their measured epochs overlapped (the number means little below ~0.8)
    concurrent_speedup: float | None = None
    concurrent_overlap: float | None = None
    # peak CUDA memory of one engine job (bytes), for gpu.jobs_per_gpu; None on a CPU
    peak_bytes: int | None = None

    @property
    def engine_train_s(self) -> float:
        # Noise can make the difference tiny or negative on a loaded machine; never divide by 0.
        return max(self.engine_loop_s - self.eval_s, 1e-9)

    @property
    def save_s(self) -> float:
        return max(self.engine_epoch_s - self.engine_loop_s, 0.0)

    @property
    def engine_sps(self) -> float:
        return self.n_train / self.engine_train_s

    @property
    def bare_sps(self) -> float:
        return self.n_train / self.bare_train_s

    @property
    def ratio(self) -> float:
        return self.engine_sps / self.bare_sps

    @property
    def eval_share(self) -> float:
        return self.eval_s / max(self.engine_epoch_s, self.engine_loop_s)

    @property
    def study_s(self) -> float:
        return study_seconds(self.engine_train_s / self.n_train, self.eval_s / self.n_eval,
                             self.save_s, self.validation_fraction)


def make_shard(path: Path, records: int, length: int, seed: int,
               validation_fraction: float) -> Path:
    """A shard of random records: timing does not depend on what the signals hold."""
    from ecg_transfer.datasets import STANDARD_LEADS, RecordSet

    rng = np.random.default_rng(seed)
    rs = RecordSet(
        signals=rng.standard_normal((records, 12, length), dtype=np.float32),
        labels=(rng.random((records, N_CLASSES)) < 0.3).astype(np.uint8),
        classes=[f"c{k}" for k in range(N_CLASSES)],
        record_ids=[f"r{i:06d}" for i in range(records)],
        fs=100.0, leads=list(STANDARD_LEADS), patient_ids=None, folds=None, dropped=[],
        protocol="paper",
    )
    split, method = split_records(rs, SplitSpec(test_size=0.33, random_state=1))
    # The validation split the engine would carve from train, stored in the shard so that the
    # bare loop knows exactly which records the engine trains on.
    train_idx = np.flatnonzero(split == TRAIN)
    n_val = round(validation_fraction * len(train_idx))
    split[rng.choice(train_idx, size=n_val, replace=False)] = VAL
    return write_shard(path, "bench", rs, split, f"{method}, {n_val} of train as validation")


def settings_for(arch: str, args: argparse.Namespace, epochs: int) -> train.TrainSettings:
    kw: dict = dict(arch=arch, epochs=epochs, batch_size=args.batch_size, lr=LR, seed=args.seed,
                    init_from="scratch", threads=args.threads, device=args.device,
                    save_optimizer=False)
    if "precision" in {f.name for f in dataclasses.fields(train.TrainSettings)}:
        kw["precision"] = args.precision
    elif args.precision != "fp32":
        raise SystemExit(f"--precision {args.precision}: this engine's TrainSettings has no "
                         "'precision' field, it trains in fp32 only")
    fields = {f.name for f in dataclasses.fields(train.TrainSettings)}
    for name in ("compile", "eval_batch_size"):  # the levers (training.speed)
        value = getattr(args, name)
        if name in fields:
            kw[name] = value
        elif value not in (None, "none"):
            raise SystemExit(f"--{name.replace('_', '-')}: this engine has no such setting")
    return train.TrainSettings(**kw)


class _EpochClock(logging.Handler):
    """Notes the time of each of the engine's per-epoch log lines ("epoch 3/10 ...").

    The engine writes that line once an epoch is completely done (resume state saved), so the
    interval between two lines is the whole cost of an epoch.
    """

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.times: list[float] = []
        self.walls: list[float] = []  # time.time(): comparable across processes

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, str) and record.msg.startswith("epoch "):
            self.times.append(time.perf_counter())
            self.walls.append(time.time())


@dataclasses.dataclass
class EngineTiming:
    """The engine's seconds per epoch after the warm-up, by both clocks (the fastest epoch)."""

    epoch_s: float
    loop_s: float
    window: tuple[float, float]  # wall-clock start and end of the measured epochs
    # the mean, for --concurrent: there the fastest epoch may be one the others did not overlap
    mean_epoch_s: float
    # peak CUDA memory the job allocated (torch.cuda.max_memory_allocated); None on a CPU
    peak_bytes: int | None = None


def time_engine(shard: Path, arch: str, args: argparse.Namespace, workdir: Path
                ) -> EngineTiming:
    """Run the engine for 1 + ``args.epochs`` epochs and time the ones after the first."""
    out = workdir / arch
    engine_log = logging.getLogger(train.__name__)
    clock = _EpochClock()
    engine_log.addHandler(clock)
    level, propagate = engine_log.level, engine_log.propagate
    engine_log.setLevel(logging.INFO)
    engine_log.propagate = args.verbose
    kw = {}
    if "resume_dir" in inspect.signature(train.train).parameters:
        kw["resume_dir"] = out / "resume"  # the workflow always gives one
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        train.train(shard, settings_for(arch, args, 1 + args.epochs),
                    metrics_path=out / "metrics.csv", checkpoint_path=out / "model.pt", **kw)
    finally:
        engine_log.removeHandler(clock)
        engine_log.setLevel(level)
        engine_log.propagate = propagate
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    with open(out / "metrics.csv", newline="") as f:
        seconds = [float(row["seconds"]) for row in csv.DictReader(f)]
    if len(seconds) != 1 + args.epochs:
        raise RuntimeError(f"{out / 'metrics.csv'}: {len(seconds)} epochs, "
                           f"expected {1 + args.epochs}")
    loop = min(seconds[1:])
    if len(clock.times) != 1 + args.epochs:
        log.warning("%s: the engine logged %d epoch lines for %d epochs; epoch time = loop time",
                    arch, len(clock.times), 1 + args.epochs)
        return EngineTiming(loop, loop, (math.nan, math.nan), sum(seconds[1:]) / args.epochs,
                            peak)
    intervals = [b - a for a, b in zip(clock.times, clock.times[1:], strict=False)]
    return EngineTiming(min(intervals), loop, (clock.walls[0], clock.walls[-1]),
                        sum(intervals) / len(intervals), peak)


def run_worker(args: argparse.Namespace) -> int:
    """One of ``--concurrent`` jobs: wait until all have started, then time the engine.

    Each job is its own process, as the workflow's jobs are; the barrier lines their measured
    epochs up, so that they really compete for the device.
    """
    job = json.loads(args.worker)
    shard, folder, index, count = job["shard"], job["folder"], job["index"], job["count"]
    folder_path = Path(folder)
    configure(args, torch.device(args.device))
    if torch.device(args.device).type == "cuda":
        torch.zeros(1, device=args.device)  # CUDA context before the barrier
    (folder_path / f"ready{index}").touch()
    deadline = time.monotonic() + 120
    while len(list(folder_path.glob("ready*"))) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{folder}: not all {count} concurrent jobs started in 120 s")
        time.sleep(0.01)
    timing = time_engine(Path(shard), args.archs[0], args, folder_path / f"job{index}")
    (folder_path / f"result{index}.json").write_text(json.dumps(dataclasses.asdict(timing)))
    return 0


def time_concurrent(shard: Path, arch: str, args: argparse.Namespace, workdir: Path
                    ) -> tuple[list[EngineTiming], float]:
    """``--concurrent`` engine jobs at once on the device: their timings and how much their
    measured epochs overlapped (1 = entirely)."""
    folder = workdir / f"concurrent-{arch}"
    folder.mkdir()
    argv = [sys.executable, __file__, "--device", args.device, "--archs", arch,
            "--batch-size", str(args.batch_size), "--threads", str(args.threads),
            "--precision", args.precision, "--epochs", str(args.epochs + 2),
            "--records", str(args.records), "--length", str(args.length),
            "--seed", str(args.seed)]
    procs = [subprocess.Popen([*argv, "--worker", json.dumps(
        {"shard": str(shard), "folder": str(folder), "index": i, "count": args.concurrent})])
        for i in range(args.concurrent)]
    failed = [p.args[-1] for p in procs if p.wait() != 0]
    if failed:
        raise RuntimeError(f"concurrent job(s) failed: {failed}")
    timings = [EngineTiming(**json.loads((folder / f"result{i}.json").read_text()))
               for i in range(args.concurrent)]
    start = max(t.window[0] for t in timings)
    end = min(t.window[1] for t in timings)
    mean_span = sum(t.window[1] - t.window[0] for t in timings) / len(timings)
    return timings, max(end - start, 0.0) / mean_span


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_bare(arch: str, data: dict[str, torch.Tensor], args: argparse.Namespace,
              device: torch.device) -> tuple[float, float]:
    """(seconds per training epoch, seconds per evaluation pass) of the bare loop."""
    x, y = data["x"], data["y"]
    torch.manual_seed(args.seed)
    model = models.build(arch, n_classes=y.shape[1], n_leads=x.shape[1],
                         n_samples=x.shape[2]).to(device)
    optimizer = optim.Adam(model.parameters(), lr=LR)  # as the engine: fused Adam
    if args.compile != "none":  # as the engine: the optimiser holds the plain parameters
        model = torch.compile(model, mode=args.compile)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    # As the engine: bf16 autocast on CUDA only, CPU trains in float32 whatever is asked.
    autocast = torch.autocast(device.type, dtype=torch.bfloat16,
                              enabled=args.precision == "bf16" and device.type == "cuda")
    n, bs = len(x), args.batch_size
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(args.seed)).to(device)
    # The engine skips a lone last sample (BatchNorm cannot train on one); so does this.
    batches = [perm[s : s + bs] for s in range(0, n, bs) if len(perm[s : s + bs]) > 1]

    def step(idx: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = loss_fn(model(x[idx]).float(), y[idx])
        loss.backward()
        optimizer.step()

    model.train()
    # warm-up: one step; compiled, a whole epoch (the last, smaller batch compiles again)
    for idx in batches if args.compile != "none" else batches[:1]:
        step(idx)
    _sync(device)
    epochs = []
    for _ in range(args.epochs):  # as many epochs as the engine's measured ones
        t0 = time.perf_counter()
        for idx in batches:
            step(idx)
        _sync(device)
        epochs.append(time.perf_counter() - t0)
    train_s = min(epochs)

    model.eval()

    ebs = args.eval_batch_size or bs

    @torch.no_grad()
    def evaluate() -> None:
        for xe in data["eval"]:
            with autocast:
                logits = torch.cat([model(xe[i : i + ebs]) for i in range(0, len(xe), ebs)])
            torch.sigmoid(logits.float()).cpu()

    evaluate()  # warm-up
    _sync(device)
    runs = []
    for _ in range(2):
        t0 = time.perf_counter()
        evaluate()
        _sync(device)
        runs.append(time.perf_counter() - t0)
    return train_s, min(runs)


def configure(args: argparse.Namespace, device: torch.device) -> None:
    """The numeric settings the engine uses, so that the bare loop runs under the same ones."""
    torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 with TF32 allowed, as the engine
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True  # fixed batch shapes: autotune, as the engine
    else:
        torch.use_deterministic_algorithms(True)  # the engine's CPU setting


def format_table(results: list[Result], errors: dict[str, str]) -> str:
    concurrent = any(r.concurrent_speedup is not None for r in results)
    head = (f"{'arch':<12} {'train/s engine':>14} {'bare':>9} {'ratio':>6} {'eval share':>10} "
            f"{'save s':>7} {'ms/sample train':>15} {'eval':>7} {'study h':>8} {'peak GB':>7}")
    if concurrent:
        head += f" {'concurrent':>10} {'overlap':>7}"
    lines = [head, "-" * len(head)]
    for r in results:
        line = (f"{r.arch:<12} {r.engine_sps:>14.1f} {r.bare_sps:>9.1f} {r.ratio:>6.2f} "
                f"{r.eval_share:>10.1%} {r.save_s:>7.2f} "
                f"{1e3 * r.engine_train_s / r.n_train:>15.3f} {1e3 * r.eval_s / r.n_eval:>7.3f} "
                f"{r.study_s / 3600:>8.2f} "
                f"{'—' if r.peak_bytes is None else f'{r.peak_bytes / 1e9:.2f}':>7}")
        if r.concurrent_speedup is not None and r.concurrent_overlap is not None:
            line += f" {r.concurrent_speedup:>9.2f}x {r.concurrent_overlap:>7.2f}"
        lines.append(line)
    for arch, err in errors.items():
        lines.append(f"{arch:<12} FAILED: {err}")
    return "\n".join(lines)


def write_json(path: Path, args: argparse.Namespace, device: torch.device, name: str,
               results: list[Result], errors: dict[str, str]) -> None:
    """The results so far, rewritten after each architecture: a run stopped by a time limit
    still leaves what it measured."""
    path.write_text(json.dumps({
        "device": str(device), "device_name": name, "torch": torch.__version__,
        "threads": args.threads, "precision": args.precision, "records": args.records,
        "batch_size": args.batch_size, "length": args.length,
        "results": [dataclasses.asdict(r) | {"engine_sps": r.engine_sps, "bare_sps": r.bare_sps,
                                             "ratio": r.ratio, "eval_share": r.eval_share,
                                             "save_s": r.save_s, "study_hours": r.study_s / 3600}
                    for r in results],
        "errors": errors, "study_hours": sum(r.study_s for r in results) / 3600,
        "concurrent": args.concurrent,
        "study_hours_concurrent": sum(r.study_s / r.concurrent_speedup for r in results) / 3600
        if results and all(r.concurrent_speedup for r in results) else None,
    }, indent=2))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if cuda else "cpu",
                   help="torch device (default: cuda when visible, else cpu)")
    p.add_argument("--archs", default=",".join(ARCHS),
                   help=f"comma-separated architectures (default: all of {','.join(ARCHS)})")
    p.add_argument("--records", type=int, default=None,
                   help="records in the synthetic shard, split 0.67/0.33 "
                        "(default: 8192 on cuda, 96 on cpu)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="default: 256 (the study's) on cuda, 32 on cpu")
    p.add_argument("--length", type=int, default=1000, help="samples per record (study: 1000)")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                   help="torch threads, as a job gets (default: the CPUs this process may use)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: autocast in both loops; needs an engine with that setting")
    p.add_argument("--compile", default="none",
                   choices=getattr(train, "COMPILE_MODES", ("none",)),  # an engine without it
                   help="torch.compile mode in both loops (training.speed.compile); the "
                        "warm-up epoch takes the compile time")
    p.add_argument("--eval-batch-size", type=int, default=None,
                   help="no-grad scoring batch in both loops (training.speed.eval_batch_size; "
                        "default: --batch-size)")
    p.add_argument("--epochs", type=int, default=None,
                   help="engine epochs measured after the warm-up epoch (default: 3 on cuda, "
                        "1 on cpu)")
    p.add_argument("--concurrent", type=int, default=1, metavar="N",
                   help="also run N engine jobs at once on the device (separate processes, as "
                        "the workflow's) and report their total throughput over one job's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # one --concurrent job
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("-v", "--verbose", action="store_true", help="show the engine's log")
    args = p.parse_args(argv)
    on_gpu = torch.device(args.device).type == "cuda"
    if args.records is None:
        args.records = 8192 if on_gpu else 96
    if args.batch_size is None:
        args.batch_size = 256 if on_gpu else 32
    if args.epochs is None:
        args.epochs = 3 if on_gpu else 1
    args.archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    unknown = sorted(set(args.archs) - set(models.registered()))
    if unknown:
        p.error(f"--archs: unknown {unknown}; known: {list(models.registered())}")
    if (args.records < 8 or args.batch_size < 2 or args.epochs < 1 or args.threads < 1
            or args.concurrent < 1):
        p.error("need --records >= 8, --batch-size >= 2, --epochs >= 1, --threads >= 1, "
                "--concurrent >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return run_worker(args)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"--device {args.device}: CUDA is not available to this torch "
              f"({torch.__version__})", file=sys.stderr)
        return 2
    configure(args, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"# bench/train_step.py  {datetime.date.today()}  {platform.node()}")
    print(f"# device {device} ({name or platform.machine()}), torch {torch.__version__}, "
          f"python {platform.python_version()}, threads {args.threads}, "
          f"precision {args.precision}")
    results: list[Result] = []
    errors: dict[str, str] = {}
    fraction = engine_validation_fraction()
    with tempfile.TemporaryDirectory(prefix="ecg-bench-") as tmp:
        workdir = Path(tmp)
        shard_path = make_shard(workdir / "bench.h5", args.records, args.length, args.seed,
                                fraction)
        shard = read_shard(shard_path)
        x, y = shard.part(TRAIN)
        evals = [shard.part(VAL)[0], shard.part(TEST)[0]] if "val_f1" in EPOCH_COLUMNS \
            else [shard.part(TEST)[0]]  # an engine without validation scores test only
        n_eval = sum(len(e) for e in evals)
        print(f"# shard: {len(x)} train / {n_eval} scored per epoch (validation {fraction:g} of "
              f"train, test 0.33) records of (12, {args.length}), batch {args.batch_size}; "
              f"engine epochs timed: {args.epochs} after 1 warm-up")
        data = {"x": torch.from_numpy(x).to(device),
                "y": torch.from_numpy(y.astype(np.float32)).to(device),
                "eval": [torch.from_numpy(e).to(device) for e in evals if len(e)]}
        del shard
        for arch in args.archs:
            started = time.perf_counter()
            try:
                engine = time_engine(shard_path, arch, args, workdir)
                configure(args, device)  # whatever the engine set globally, the bare loop too
                bare_s, eval_s = time_bare(arch, data, args, device)
                speedup = overlap = None
                if args.concurrent > 1:
                    if device.type == "cuda":
                        torch.cuda.empty_cache()  # leave the device to the concurrent jobs
                    jobs, overlap = time_concurrent(shard_path, arch, args, workdir)
                    speedup = sum(engine.mean_epoch_s / j.mean_epoch_s for j in jobs)
            except Exception as e:  # one architecture failing must not hide the others' numbers
                traceback.print_exc()
                errors[arch] = f"{type(e).__name__}: {e}".splitlines()[0][:200]
                if args.json:
                    write_json(args.json, args, device, name, results, errors)
                continue
            finally:
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            results.append(Result(arch, len(x), n_eval, engine.epoch_s, engine.loop_s, bare_s,
                                  eval_s, fraction, speedup, overlap, engine.peak_bytes))
            print(f"# {arch}: measured in {time.perf_counter() - started:.0f} s: "
                  f"{format_table(results[-1:], {}).splitlines()[-1]}", flush=True)
            if args.json:
                write_json(args.json, args, device, name, results, errors)
    print(format_table(results, errors))
    total_h = sum(r.study_s for r in results) / 3600
    if results:
        covered = "" if not errors and len(results) == len(ARCHS) else (
            f" (only {', '.join(r.arch for r in results)})")
        print(f"whole paper study (120 jobs x 100 epochs: training, per-epoch validation and "
              f"test scoring, resume state) at these speeds: {total_h:.2f} h on "
              f"{device}{covered}")
        if all(r.concurrent_speedup for r in results):
            shared = sum(r.study_s / r.concurrent_speedup for r in results) / 3600
            print(f"with {args.concurrent} jobs at once on the device: {shared:.2f} h")
        peaks = [r.peak_bytes for r in results if r.peak_bytes]
        if peaks and device.type == "cuda":
            total = torch.cuda.get_device_properties(device).total_memory
            print(f"memory: the largest job peaked at {max(peaks) / 1e9:.2f} GB of the device's "
                  f"{total / 1e9:.1f} GB: gpu.jobs_per_gpu up to {int(total // max(peaks))} "
                  "by memory alone")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
