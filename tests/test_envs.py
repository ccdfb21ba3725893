"""The conda environments for --sdm conda pin exactly what pyproject.toml pins.

conda cannot be installed on our machines, so this is the check that keeps them honest.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for req in requirements:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+]+)", req.strip())
        assert m, f"unpinned requirement {req!r}: every dependency is pinned with =="
        pins[m[1].lower()] = m[2]
    return pins


def _workflow_pins() -> dict[str, str]:
    """The library's pins plus the `workflow` extra's: what running the workflow needs."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {**_pins(project["dependencies"]),
            **_pins(project["optional-dependencies"]["workflow"])}


def test_pyproject_pins_everything():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = _pins(project["dependencies"])
    assert pins["torch"] == "2.13.0"
    for extra in project["optional-dependencies"].values():
        _pins(extra)
    assert _workflow_pins()["snakemake"].startswith("9.")


def test_the_library_installs_without_the_workflow_engine():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not {"snakemake", "snakemake-executor-plugin-slurm"} & set(
        _pins(project["dependencies"]))


def test_the_package_never_imports_snakemake():
    for path in (REPO / "src" / "ecg_transfer").rglob("*.py"):
        text = path.read_text()
        assert "import snakemake" not in text and "from snakemake" not in text, path


def test_conda_envs_agree_with_pyproject():
    wanted = _workflow_pins()
    envs = sorted((REPO / "envs").glob("*.yaml"))
    assert envs
    for env in envs:
        spec = yaml.safe_load(env.read_text())
        pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict) and "pip" in d)
        got = _pins([p for p in pip if not p.startswith("-e")])
        assert got == wanted, f"{env.name} pins differ from pyproject.toml"
        assert "python>=3.11.4,<3.12" in spec["dependencies"]


def test_lock_file_agrees_with_pyproject():
    wanted = _workflow_pins()
    lock = _pins([line for line in (REPO / "requirements.lock").read_text().splitlines()
                  if line and not line.startswith("#")])
    for name, version in wanted.items():
        assert lock.get(name) == version, f"requirements.lock has {name}=={lock.get(name)}"


def test_every_rule_names_the_conda_env():
    # A rule with run: executes inside Snakemake's own process, where a conda env cannot apply
    # (Snakemake refuses one); every rule that runs a script or command names the study's env.
    checked = 0
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        blocks = re.split(r"\n(?=(?:rule|checkpoint|use rule) )", smk.read_text())
        for block in blocks[1:]:
            name = block.split(":")[0].split()[-1]
            if block.startswith("use rule"):
                continue  # inherits the conda env of the rule it uses
            if "\n    run:" in block:
                assert "conda:" not in block, f"{smk.name}: rule {name}"
            else:
                assert "conda:" in block, f"{smk.name}: rule {name} lacks conda:"
            checked += 1
    assert checked >= 12


def test_python_versions_without_tarfile_filters_are_refused():
    """tarfile's filter= (safe extraction, download.extract) came in 3.11.4: the package, the
    conda env and run.sh all require it."""
    from packaging.specifiers import SpecifierSet

    spec = SpecifierSet(
        tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"])
    assert "3.11.4" in spec and "3.11.7" in spec
    assert "3.11.3" not in spec and "3.12.0" not in spec
    assert "(3, 11, 4) <= sys.version_info < (3, 12)" in (REPO / "run.sh").read_text()
