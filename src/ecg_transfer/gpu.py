"""Which device a training job runs on, so that concurrent jobs never share a GPU by accident.

Snakemake's ``--resources gpu=2`` only *counts* GPUs: it starts at most two GPU jobs at once but
does not tell either of them *which* GPU to use, so both would pick ``cuda:0`` and the second GPU
would idle. Locally, each job therefore claims a slot: an exclusive, non-blocking ``flock`` on a
lock file per visible device. ``flock`` locks belong to the open file, so the kernel drops them
when the process dies in any way, ``kill -9`` and out-of-memory kills included: a crashed job
never leaves a stale claim behind, and no lock file ever needs cleaning up.

Under SLURM the scheduler has already chosen: it sets ``CUDA_VISIBLE_DEVICES`` to the job's own
GPUs, and the first of them is ``cuda:0`` inside the job.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

#: Environment variable naming the lock directory; all jobs that share GPUs must agree on it.
LOCK_DIR_ENV = "ECG_TRANSFER_GPU_LOCKS"
#: Environment variable: how many jobs may share one GPU (default 1). The study's models are
#: small; one job alone leaves a GPU partly idle between its kernel launches (bench/README.md).
JOBS_PER_GPU_ENV = "ECG_TRANSFER_JOBS_PER_GPU"


def jobs_per_gpu_from_env() -> int:
    """``ECG_TRANSFER_JOBS_PER_GPU`` as a positive int; 1 when unset."""
    raw = os.environ.get(JOBS_PER_GPU_ENV, "").strip()
    if not raw:
        return 1
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"environment variable {JOBS_PER_GPU_ENV}={raw!r}: expected a positive "
                         "integer (jobs that may share one GPU)")
    return value


def default_lock_dir() -> Path:
    """The lock directory shared by all of this user's jobs on this machine.

    Not relative to the working directory: concurrent Snakemake runs (or jobs with a
    ``shadow:`` directory) have different ones but share the same GPUs.
    """
    env = os.environ.get(LOCK_DIR_ENV)
    if env:
        return Path(env)
    return Path(tempfile.gettempdir()) / f"ecg-transfer-gpu-locks-{os.getuid()}"


def _visible_names(n: int) -> list[str]:
    """Names of the n visible devices that identify the *physical* GPU, for the lock files.

    Two runs with ``CUDA_VISIBLE_DEVICES=0,1`` and ``=2,3`` both see ``cuda:0`` and ``cuda:1``,
    but must not wait for each other; naming the lock after the physical device (index or UUID
    from ``CUDA_VISIBLE_DEVICES``) keeps them apart, and two runs that see the same GPU under
    different indices still collide, as they should.
    """
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    entries = [e.strip() for e in env.split(",")] if env else []
    if len(entries) >= n and all(entries[:n]):
        return [re.sub(r"[^A-Za-z0-9_.-]", "_", e) for e in entries[:n]]
    return [str(i) for i in range(n)]


def _try_lock(path: Path) -> IO[str] | None:
    """Open and exclusively lock ``path`` without blocking; None when another process holds it."""
    f = open(path, "a+")  # noqa: SIM115 -- the open file *is* the claim; closed on release
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    except BaseException:
        f.close()
        raise
    # Who holds it, for a person looking at the lock directory; never read by the code.
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


@contextmanager
def claim_device(
    requested: str | None = None,
    *,
    lock_dir: str | os.PathLike | None = None,
    visible: int | None = None,
    jobs_per_gpu: int | None = None,
    poll_seconds: float = 5.0,
) -> Iterator[str]:
    """Yield the torch device string this job should use, holding its GPU until the block ends.

    - ``requested`` (e.g. ``"cpu"``, ``"cuda:1"``): used as given, nothing is locked.
    - Under SLURM (``SLURM_JOB_ID`` and ``CUDA_VISIBLE_DEVICES`` set): ``"cuda:0"``, the first
      of the GPUs SLURM allotted; SLURM already keeps jobs apart, so nothing is locked. Where
      torch sees no CUDA device there (a CPU build), ``"cpu"`` with a warning.
    - ``n`` visible GPUs (``visible`` overrides ``torch.cuda.device_count()``, for tests):
      ``"cuda:i"`` for the first free slot, locked by ``<lock_dir>/gpu<name>.lock`` (``name``:
      the physical device, see :func:`_visible_names`). With ``jobs_per_gpu`` = k (default:
      ``$ECG_TRANSFER_JOBS_PER_GPU`` or 1) each GPU has k slots, ``gpu<name>.lock``,
      ``gpu<name>.1.lock`` ... ; jobs fill every GPU's first slot before any second one. While
      all slots are taken, wait, trying again every ``poll_seconds``.
    - no GPU: ``"cpu"``.

    The claim is released when the block ends, also by an exception, and by the kernel when the
    process dies.
    """
    if requested:
        log.info("device %s: requested", requested)
        yield requested
        return
    slurm_job = os.environ.get("SLURM_JOB_ID")
    slurm_gpus = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if visible is None:
        import torch  # here, not at the top: a job that was told its device never pays for it

        visible = torch.cuda.device_count()
    if slurm_job and slurm_gpus:
        if visible < 1:
            # A CPU build of torch, or a node without a working driver: say so, do not crash.
            log.warning("device cpu: SLURM job %s was given CUDA_VISIBLE_DEVICES=%s, but torch "
                        "sees no CUDA device", slurm_job, slurm_gpus)
            yield "cpu"
            return
        log.info("device cuda:0: SLURM job %s was given CUDA_VISIBLE_DEVICES=%s",
                 slurm_job, slurm_gpus)
        yield "cuda:0"
        return
    if visible < 1:
        log.info("device cpu: no GPU visible")
        yield "cpu"
        return
    directory = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(
            f"{directory}: cannot create the GPU lock directory ({e}); set {LOCK_DIR_ENV} to a "
            "writable directory shared by the jobs"
        ) from e
    per_gpu = jobs_per_gpu_from_env() if jobs_per_gpu is None else jobs_per_gpu
    if per_gpu < 1:
        raise ValueError(f"jobs_per_gpu={per_gpu}: expected a positive integer")
    names = _visible_names(visible)
    # Slot 0 keeps the plain name gpu<name>.lock: with one job per GPU, nothing changes.
    slots = [(i, k, directory / (f"gpu{name}.lock" if k == 0 else f"gpu{name}.{k}.lock"))
             for k in range(per_gpu) for i, name in enumerate(names)]
    waited_since: float | None = None
    while True:
        for i, k, path in slots:
            handle = _try_lock(path)
            if handle is None:
                continue
            device = f"cuda:{i}"
            waited = "" if waited_since is None else (
                f" after waiting {time.monotonic() - waited_since:.0f} s")
            log.info("device %s: claimed GPU %d of %d visible, job slot %d of %d (%s)%s",
                     device, i, visible, k + 1, per_gpu, path, waited)
            try:
                yield device
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
                handle.close()
                log.info("device %s: released (%s)", device, path)
            return
        if waited_since is None:
            waited_since = time.monotonic()
            log.info("all %d job slots on %d visible GPUs are claimed by other jobs (locks in "
                     "%s); waiting", len(slots), visible, directory)
        time.sleep(poll_seconds)
