"""atomic_path: the file appears whole under its name, or not at all; it survives a power cut,
others can read it as the umask allows, and a killed writer's leftovers are swept on rerun."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys

import pytest

from ecg_transfer.fileio import atomic_path, sweep_stale_temps


def test_success_renames_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "out.csv"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("a,b\n")
        assert not target.exists()
    assert target.read_text() == "a,b\n"
    assert [p.name for p in target.parent.iterdir()] == ["out.csv"]


def test_error_keeps_old_file_and_removes_temp(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_error_on_a_new_target_leaves_neither_target_nor_temp(tmp_path):
    target = tmp_path / "model.pt"
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)],
                         ids=["umask022", "umask002", "umask077"])
def test_output_mode_follows_the_umask_like_a_plain_open(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        with atomic_path(tmp_path / "claims.md") as tmp:
            tmp.write_text("# claims\n")
        with open(tmp_path / "plain.md", "w") as f:
            f.write("# claims\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "claims.md").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "plain.md").stat().st_mode) == mode


def test_data_are_fsynced_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        st = os.fstat(fd)
        events.append(("fsync dir" if stat.S_ISDIR(st.st_mode) else "fsync file", st.st_ino))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.stat(src).st_ino))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "shard.h5"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"\0" * 1000)
    file_ino, dir_ino = target.stat().st_ino, tmp_path.stat().st_ino
    assert events == [("fsync file", file_ino), ("replace", file_ino), ("fsync dir", dir_ino)]


def _killed_writer(*targets):
    """Temp files left by a writer of ``targets`` killed with SIGKILL mid-write."""
    code = (
        "import sys, time\n"
        "from contextlib import ExitStack\n"
        "from ecg_transfer.fileio import atomic_path\n"
        "with ExitStack() as stack:\n"
        "    for t in sys.argv[1:]:\n"
        "        tmp = stack.enter_context(atomic_path(t))\n"
        "        tmp.write_bytes(b'half')\n"
        "        print(tmp, flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, *map(str, targets)],
                            stdout=subprocess.PIPE, text=True)
    try:
        temps = [proc.stdout.readline().strip() for _ in targets]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL and all(temps)
    return temps


def test_rerun_sweeps_a_killed_writers_temp_but_not_other_targets(tmp_path):
    target = tmp_path / "model.pt"
    # Names chosen so a careless glob (".model.pt.*.tmp", ".model.*") would take them too.
    others = [tmp_path / "model.pt.1", tmp_path / "model.pt.abcdefgh", tmp_path / "model"]
    stale, *other_temps = map(tmp_path.joinpath, _killed_writer(target, *others))
    assert stale.exists() and all(p.exists() for p in other_temps)

    with atomic_path(target) as tmp:
        assert not stale.exists()
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
    assert all(p.exists() for p in other_temps)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["model.pt", *(p.name for p in other_temps)])


def test_a_temp_this_process_is_still_writing_is_never_swept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "lock.yaml"
    with atomic_path(target) as first:
        first.write_text("first")
        assert sweep_stale_temps("lock.yaml") == []
        with atomic_path("lock.yaml") as second:
            assert first.exists()
            second.write_text("second")
        assert first.exists()
    assert target.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["lock.yaml"]


def test_sweep_returns_what_it_removed(tmp_path):
    target = tmp_path / "preds.npz"
    dead = tmp_path / ".preds.npz.k3j_x9q2.tmp"  # the shape mkstemp gave them too
    dead.write_bytes(b"")
    assert sweep_stale_temps(target) == [dead]
    assert sweep_stale_temps(tmp_path / "missing" / "x.npz") == []
