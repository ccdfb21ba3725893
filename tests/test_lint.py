"""The code passes the project's linters: ruff (pyproject.toml) and `snakemake --lint`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def test_ruff_is_clean():
    ruff = Path(sys.executable).with_name("ruff")
    out = subprocess.run([str(ruff), "check", "src", "tests", "workflow/scripts", "bench"],
                         capture_output=True, text=True, cwd=REPO, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_snakemake_lint_finds_nothing_in_the_paper_study_or_the_demo(tmp_path):
    for extra in ([], ["--configfile", str(REPO / "config" / "demo.yaml")]):
        out = subprocess.run([SNAKEMAKE, "--lint", *extra], capture_output=True, text=True,
                             cwd=REPO, check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "Congratulations, your workflow is in a good condition!" in out.stdout + out.stderr


def test_a_plain_snakemake_in_the_repository_uses_the_default_profile(tmp_path):
    (tmp_path / "config.yaml").write_text((REPO / "config.yaml").read_text())
    out = subprocess.run([SNAKEMAKE, "-n", "--quiet", "rules", "--directory", str(tmp_path)],
                         capture_output=True, text=True, cwd=REPO, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Using workflow specific profile profiles/default" in out.stdout + out.stderr
