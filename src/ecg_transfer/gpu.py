"""Which device a training job runs on, so that concurrent jobs never share a GPU by accident.

Snakemake's ``--resources gpu=2`` only *counts* GPUs: it starts at most two GPU jobs at once but
does not tell either of them *which* GPU to use, so both would pick ``cuda:0`` and the second GPU
would idle. Locally, each job therefore claims a slot: an exclusive, non-blocking ``flock`` on a
lock file per visible device. ``flock`` locks belong to the open file, so the kernel drops them
when the process dies in any way, ``kill -9`` and out-of-memory kills included: a crashed job
never leaves a stale claim behind, and no lock file ever needs cleaning up.

Under SLURM the scheduler has already chosen: it sets ``CUDA_VISIBLE_DEVICES`` to the job's own
GPUs, and the first of them is ``cuda:0`` inside the job.

The default lock directory must be this user's alone: in a folder another user can write, a
planted symlink would make a job write through it to one of its owner's files, and a lock held
by someone else would make the jobs wait forever (issue 19). Hence ``$XDG_RUNTIME_DIR`` where
set, else a folder of mode 0700 in the system temp folder that is refused unless it is a real
directory owned by this user and writable by no one else; lock files are opened without
following symlinks.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

#: Environment variable naming the lock directory; all jobs that share GPUs must agree on it.
#: Used as given: keeping others from writing to it is then up to whoever set it.
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


def _xdg_runtime_dir() -> Path | None:
    """``$XDG_RUNTIME_DIR`` when it is usable: a directory of this user's, writable by no one else.

    Not usable, e.g., after ``su`` (another user's) or once the login session has ended and
    systemd has removed it; the temp folder serves then.
    """
    raw = os.environ.get("XDG_RUNTIME_DIR")
    if not raw or not os.path.isabs(raw):
        return None
    try:
        st = os.stat(raw)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        return None
    return Path(raw)


def default_lock_dir() -> Path:
    """The lock directory shared by all of this user's jobs on this machine.

    Not relative to the working directory: concurrent Snakemake runs (or jobs with a
    ``shadow:`` directory) have different ones but share the same GPUs. ``$XDG_RUNTIME_DIR``
    first: it is private to the user by design; else a per-user folder in the temp folder,
    which :func:`_private_lock_dir` checks, since anyone may have created it there first.
    """
    env = os.environ.get(LOCK_DIR_ENV)
    if env:
        return Path(env)
    runtime = _xdg_runtime_dir()
    if runtime is not None:
        return runtime / "ecg-transfer-gpu-locks"
    return Path(tempfile.gettempdir()) / f"ecg-transfer-gpu-locks-{os.getuid()}"


def _refuse_lock_dir(directory: Path, problem: str) -> RuntimeError:
    return RuntimeError(
        f"{directory}: refusing to use it as the GPU lock directory: {problem}. Another user may "
        "have created it to interfere with your jobs. Remove it if it is yours, or set "
        f"XDG_RUNTIME_DIR (or {LOCK_DIR_ENV}) to a directory only you can write"
    )


def _private_lock_dir(directory: Path) -> None:
    """Create ``directory`` with mode 0700, or accept an existing one only if it is private.

    ``lstat``, not ``stat``: a symlink is refused whatever it points to, since whoever made it
    can point it elsewhere later.
    """
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        raise OSError(
            f"{directory}: cannot create the GPU lock directory ({e}); set XDG_RUNTIME_DIR or "
            f"{LOCK_DIR_ENV} to a directory only you can write"
        ) from e
    else:
        os.chmod(directory, 0o700)  # the umask may have narrowed it further; nothing widens it
    st = os.lstat(directory)
    if stat.S_ISLNK(st.st_mode):
        raise _refuse_lock_dir(directory, "it is a symbolic link")
    if not stat.S_ISDIR(st.st_mode):
        raise _refuse_lock_dir(directory, "it is not a directory")
    if st.st_uid != os.getuid():
        raise _refuse_lock_dir(
            directory, f"it is owned by uid {st.st_uid}, not by you (uid {os.getuid()})")
    if st.st_mode & 0o022:
        raise _refuse_lock_dir(
            directory, f"it is writable by others (mode {stat.S_IMODE(st.st_mode):04o})")


def _shared_lock_dir(directory: Path) -> None:
    """Create a lock directory the user named; whom it is shared with is the user's choice."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(
            f"{directory}: cannot create the GPU lock directory ({e}); set {LOCK_DIR_ENV} to a "
            "writable directory shared by the jobs"
        ) from e


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


#: Width of the holder's pid in a lock file: every holder overwrites all of the previous one's
#: bytes, so the file never needs truncating.
_PID_WIDTH = 10


def _try_lock(path: Path) -> int | None:
    """Open and exclusively lock ``path`` without blocking; its descriptor, or None when another
    process holds it.

    ``O_NOFOLLOW``: a symlink planted in place of the lock file is refused, not written through.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as e:
        if os.path.islink(path):
            raise RuntimeError(
                f"{path}: the GPU lock file is a symbolic link; refusing to follow it (another "
                "user may have planted it). Remove it, and check what it points to"
            ) from e
        raise OSError(f"{path}: cannot open the GPU lock file ({e})") from e
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RuntimeError(f"{path}: the GPU lock file is not a regular file; remove it")
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    # Who holds it, for a person looking at the lock directory; never read by the code.
    os.pwrite(fd, f"{os.getpid():<{_PID_WIDTH}}\n".encode(), 0)
    return fd


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

    ``lock_dir`` (or ``$ECG_TRANSFER_GPU_LOCKS``) is used as given, so that jobs may share it
    as the user chooses; without either, :func:`default_lock_dir`, which must be private to this
    user (a :class:`RuntimeError` names it otherwise).

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
    if lock_dir is not None or os.environ.get(LOCK_DIR_ENV):
        directory = Path(lock_dir) if lock_dir is not None else default_lock_dir()
        _shared_lock_dir(directory)
    else:
        directory = default_lock_dir()
        _private_lock_dir(directory)
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
            fd = _try_lock(path)
            if fd is None:
                continue
            device = f"cuda:{i}"
            waited = "" if waited_since is None else (
                f" after waiting {time.monotonic() - waited_since:.0f} s")
            log.info("device %s: claimed GPU %d of %d visible, job slot %d of %d (%s)%s",
                     device, i, visible, k + 1, per_gpu, path, waited)
            try:
                yield device
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
                log.info("device %s: released (%s)", device, path)
            return
        if waited_since is None:
            waited_since = time.monotonic()
            log.info("all %d job slots on %d visible GPUs are claimed by other jobs (locks in "
                     "%s); waiting", len(slots), visible, directory)
        time.sleep(poll_seconds)
