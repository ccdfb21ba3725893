"""run.sh, the project's entry point: it checks for Python 3.11 before it deletes anything, and
installs the test cluster's Debian packages only when asked (``--with-slurm``).

Each test runs a copy of run.sh in a temporary folder with a PATH of stand-ins (a fake
``dpkg-query`` that reports nothing installed, a fake ``apt-get`` that records its call, a fake
``.venv/bin/python``), so nothing on this machine is installed or removed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOOLS = ("bash", "cat", "sha256sum", "cut", "sed", "grep", "rm", "id", "dirname", "env")


def _sandbox(tmp_path: Path, *, stamp_ok: bool) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "project"
    root.mkdir()
    for name in ("run.sh", "requirements.lock", "pyproject.toml"):
        shutil.copy(REPO / name, root / name)
    venv = root / ".venv" / "bin"
    venv.mkdir(parents=True)
    fake_python = venv / "python"
    fake_python.write_text("#!/bin/sh\necho \"pytest $*\" > \"$(dirname \"$0\")/../ran\"\n")
    fake_python.chmod(0o755)
    want = hashlib.sha256((root / "requirements.lock").read_bytes()
                          + (root / "pyproject.toml").read_bytes()).hexdigest()
    (root / ".venv" / ".installed").write_text(want if stamp_ok else "stale")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    (bin_dir / "dpkg-query").write_text("#!/bin/sh\nexit 1\n")  # nothing installed
    (bin_dir / "apt-get").write_text(f"#!/bin/sh\necho \"$*\" >> {tmp_path}/apt-get.calls\n")
    for name in ("dpkg-query", "apt-get"):
        (bin_dir / name).chmod(0o755)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "PYTHON": ""}
    return root, env


def test_without_python_3_11_the_environment_is_left_in_place(tmp_path: Path) -> None:
    root, env = _sandbox(tmp_path, stamp_ok=False)  # a stale stamp: it would reinstall
    out = subprocess.run(["bash", "run.sh", "snakemake", "--version"], cwd=root, env=env,
                         capture_output=True, text=True)
    assert out.returncode != 0
    assert "Python 3.11 is required" in out.stderr
    assert "command not found" not in out.stderr
    assert (root / ".venv" / "bin" / "python").is_file()  # not deleted


def test_the_test_command_installs_nothing_unless_asked(tmp_path: Path) -> None:
    root, env = _sandbox(tmp_path, stamp_ok=True)
    out = subprocess.run(["bash", "run.sh", "test", "-q", "tests/x.py"], cwd=root, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert not (tmp_path / "apt-get.calls").exists()
    assert "--with-slurm" in out.stderr and "munge" in out.stderr
    assert (root / ".venv" / "ran").read_text().split() == [
        "pytest", "-m", "pytest", "-q", "tests/x.py"]


def test_with_slurm_as_root_installs_the_missing_packages_and_says_so(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        # apt-get runs only as root; as another user run.sh prints the command instead
        root, env = _sandbox(tmp_path, stamp_ok=True)
        out = subprocess.run(["bash", "run.sh", "test", "--with-slurm"], cwd=root, env=env,
                             capture_output=True, text=True)
        assert not (tmp_path / "apt-get.calls").exists() and "as root" in out.stderr
        return
    root, env = _sandbox(tmp_path, stamp_ok=True)
    out = subprocess.run(["bash", "run.sh", "test", "--with-slurm", "-q"], cwd=root, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    calls = (tmp_path / "apt-get.calls").read_text().splitlines()
    assert calls[0] == "update -qq" and "munge" in calls[1] and "mariadb-server" in calls[1]
    assert "installing for tests/test_slurm.py" in out.stderr
    # --with-slurm is run.sh's own option: pytest gets the rest
    assert (root / ".venv" / "ran").read_text().split() == ["pytest", "-m", "pytest", "-q"]
