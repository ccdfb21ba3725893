"""GPU placement with fake device counts: concurrent jobs get different slots, a full house waits,
and a killed job's slot comes free (the kernel drops its flock)."""

from __future__ import annotations

import logging
import os
import select
import signal
import stat
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from ecg_transfer import gpu

# A job that claims a device, prints it and holds it until the file argv[3] appears.
HOLDER = """
import sys, time, pathlib
from ecg_transfer.gpu import claim_device
with claim_device(visible=int(sys.argv[1]), lock_dir=sys.argv[2], poll_seconds=0.02) as dev:
    print(dev, flush=True)
    release = pathlib.Path(sys.argv[3])
    while not release.exists():
        time.sleep(0.02)
"""


@pytest.fixture(autouse=True)
def _not_under_slurm(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv(gpu.LOCK_DIR_ENV, raising=False)
    monkeypatch.delenv(gpu.JOBS_PER_GPU_ENV, raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)


@pytest.fixture
def temp_root(tmp_path, monkeypatch):
    """A private stand-in for the system temp folder, where the default lock directory lives."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


class Holder:
    """One job process holding a claim."""

    def __init__(self, visible: int, lock_dir: Path, release: Path) -> None:
        env = {k: v for k, v in os.environ.items()
               if k not in ("SLURM_JOB_ID", "CUDA_VISIBLE_DEVICES", gpu.JOBS_PER_GPU_ENV)}
        self.release = release
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(visible), str(lock_dir), str(release)],
            stdout=subprocess.PIPE, text=True, env=env)

    def device(self, timeout: float) -> str | None:
        """The claimed device, or None if the job has not claimed one within ``timeout``."""
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.readline().strip() if ready else None

    def stop(self) -> None:
        self.release.touch()
        try:
            self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()


def test_requested_device_is_used_as_given(tmp_path):
    with gpu.claim_device("cuda:1", lock_dir=tmp_path, visible=2) as dev:
        assert dev == "cuda:1"
    assert list(tmp_path.iterdir()) == []  # nothing locked


def test_no_gpu_means_cpu(tmp_path):
    with gpu.claim_device(lock_dir=tmp_path, visible=0) as dev:
        assert dev == "cpu"


def test_slurm_allotment_is_used_without_locking(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    with caplog.at_level(logging.INFO, logger="ecg_transfer.gpu"), \
            gpu.claim_device(lock_dir=tmp_path, visible=4) as dev:
        assert dev == "cuda:0"
    assert list(tmp_path.iterdir()) == []
    assert "SLURM job 4242" in caplog.text


def test_slurm_allotment_without_a_cuda_torch_falls_back_to_the_cpu(tmp_path, monkeypatch,
                                                                    caplog):
    # The SLURM test cluster's fake GPUs with the CPU build of torch: run, on the CPU, and say so.
    monkeypatch.setenv("SLURM_JOB_ID", "4243")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with caplog.at_level(logging.INFO, logger="ecg_transfer.gpu"), \
            gpu.claim_device(lock_dir=tmp_path, visible=0) as dev:
        assert dev == "cpu"
    assert "sees no CUDA device" in caplog.text


def test_slots_in_one_process_differ_and_are_released_on_exception(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="ecg_transfer.gpu"):
        with gpu.claim_device(lock_dir=tmp_path, visible=2) as a, \
                gpu.claim_device(lock_dir=tmp_path, visible=2) as b:
            assert {a, b} == {"cuda:0", "cuda:1"}
        with pytest.raises(RuntimeError), gpu.claim_device(lock_dir=tmp_path, visible=1) as c:
            assert c == "cuda:0"
            raise RuntimeError("the training job failed")
        # released despite the exception: a fresh claim gets slot 0 at once
        with gpu.claim_device(lock_dir=tmp_path, visible=1, poll_seconds=60) as d:
            assert d == "cuda:0"
    assert "claimed GPU 0 of 2 visible, job slot 1 of 1" in caplog.text


def test_jobs_per_gpu_fills_every_gpu_before_sharing_one(tmp_path, monkeypatch):
    monkeypatch.setenv(gpu.JOBS_PER_GPU_ENV, "2")
    with ExitStack() as stack:
        got = [stack.enter_context(gpu.claim_device(lock_dir=tmp_path, visible=2))
               for _ in range(4)]
        assert got == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "gpu0.1.lock", "gpu0.lock", "gpu1.1.lock", "gpu1.lock"]
    # an explicit argument wins over the environment
    with gpu.claim_device(lock_dir=tmp_path, visible=1, jobs_per_gpu=1) as a:
        assert a == "cuda:0"


@pytest.mark.parametrize("raw", ["0", "two", "-1"])
def test_bad_jobs_per_gpu_names_the_variable(tmp_path, monkeypatch, raw):
    monkeypatch.setenv(gpu.JOBS_PER_GPU_ENV, raw)
    with pytest.raises(ValueError, match=gpu.JOBS_PER_GPU_ENV), \
            gpu.claim_device(lock_dir=tmp_path, visible=1):
        pass


def test_lock_names_follow_the_physical_devices(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,GPU-ab/12")
    with gpu.claim_device(lock_dir=tmp_path, visible=2) as a:
        assert a == "cuda:0"
        assert (tmp_path / "gpu2.lock").read_text().split() == [str(os.getpid())]
    with gpu.claim_device(lock_dir=tmp_path, visible=1):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu2.lock"]
    assert gpu._visible_names(2) == ["2", "GPU-ab_12"]


def test_default_lock_dir_is_per_user_and_overridable(tmp_path, monkeypatch):
    assert str(os.getuid()) in gpu.default_lock_dir().name
    monkeypatch.setenv(gpu.LOCK_DIR_ENV, str(tmp_path / "locks"))
    with gpu.claim_device(visible=1) as dev:
        assert dev == "cuda:0"
        assert (tmp_path / "locks" / "gpu0.lock").is_file()


def test_concurrent_jobs_get_different_gpus_and_a_third_waits(tmp_path):
    locks = tmp_path / "locks"
    first = Holder(2, locks, tmp_path / "release1")
    second = Holder(2, locks, tmp_path / "release2")
    holders = [first, second]
    try:
        got = {first.device(30), second.device(30)}
        assert got == {"cuda:0", "cuda:1"}
        third = Holder(2, locks, tmp_path / "release3")  # started once both slots are taken
        holders.append(third)
        assert third.device(1.0) is None  # it waits
        first.stop()
        assert third.device(30) in got  # takes the slot the first released
    finally:
        for h in holders:
            h.stop()


def test_a_killed_job_frees_its_gpu(tmp_path):
    locks = tmp_path / "locks"
    victim = Holder(1, locks, tmp_path / "never")
    holders = [victim]
    try:
        assert victim.device(30) == "cuda:0"
        waiter = Holder(1, locks, tmp_path / "release")  # started once the slot is taken
        holders.append(waiter)
        assert waiter.device(1.0) is None
        victim.proc.send_signal(signal.SIGKILL)  # no cleanup code runs
        victim.proc.wait(timeout=20)
        started = time.monotonic()
        assert waiter.device(30) == "cuda:0"
        assert time.monotonic() - started < 10
    finally:
        for h in holders:
            h.stop()


def test_a_new_default_lock_dir_and_its_lock_files_are_private(temp_root):
    with gpu.claim_device(visible=1) as dev:
        assert dev == "cuda:0"
    directory = temp_root / f"ecg-transfer-gpu-locks-{os.getuid()}"
    assert gpu.default_lock_dir() == directory
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "gpu0.lock").stat().st_mode) == 0o600


def test_xdg_runtime_dir_holds_the_locks_when_set(tmp_path, temp_root, monkeypatch):
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    assert gpu.default_lock_dir() == run / "ecg-transfer-gpu-locks"
    with gpu.claim_device(visible=1) as dev:
        assert dev == "cuda:0"
        assert (run / "ecg-transfer-gpu-locks" / "gpu0.lock").is_file()
    assert list(temp_root.iterdir()) == []


def test_a_missing_xdg_runtime_dir_falls_back_to_the_temp_folder(tmp_path, temp_root,
                                                                 monkeypatch):
    # e.g. a job still running after the login session ended and systemd removed /run/user/<uid>
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "gone"))
    assert gpu.default_lock_dir() == temp_root / f"ecg-transfer-gpu-locks-{os.getuid()}"


def test_a_symlink_planted_as_a_lock_file_is_refused_and_its_target_untouched(tmp_path):
    locks = tmp_path / "locks"
    locks.mkdir()
    victim = tmp_path / "thesis.tex"
    victim.write_text("three years of work\n")
    (locks / "gpu0.lock").symlink_to(victim)
    with pytest.raises(RuntimeError, match=r"gpu0\.lock.*symbolic link"), \
            gpu.claim_device(lock_dir=locks, visible=1):
        pass
    assert victim.read_text() == "three years of work\n"


def _writable_by_others(path):
    path.mkdir()
    path.chmod(0o777)


def _a_symlink(path):
    elsewhere = path.parent / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    path.symlink_to(elsewhere)


def _a_file(path):
    path.write_text("")


@pytest.mark.parametrize(("plant", "problem"), [
    (_writable_by_others, "writable by others"),
    (_a_symlink, "symbolic link"),
    (_a_file, "not a directory"),
])
def test_a_default_lock_dir_someone_could_have_planted_is_refused(temp_root, plant, problem):
    directory = temp_root / f"ecg-transfer-gpu-locks-{os.getuid()}"
    plant(directory)
    with pytest.raises(RuntimeError, match=problem) as refused, \
            gpu.claim_device(visible=1):
        pass
    assert str(directory) in str(refused.value)
    assert "XDG_RUNTIME_DIR" in str(refused.value)


def test_a_default_lock_dir_owned_by_another_user_is_refused(temp_root, other_user):
    nobody = other_user
    directory = temp_root / f"ecg-transfer-gpu-locks-{os.getuid()}"
    directory.mkdir(mode=0o755)
    os.chown(directory, nobody.pw_uid, nobody.pw_gid)
    with pytest.raises(RuntimeError, match="owned by") as refused, \
            gpu.claim_device(visible=1):
        pass
    assert str(directory) in str(refused.value)
    assert list(directory.iterdir()) == []
