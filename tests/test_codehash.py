"""Stage code hashes follow exactly the modules a stage imports (ecg_transfer.codehash)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ecg_transfer import codehash


def _tree(root: Path) -> Path:
    """A fake ``ecg_transfer`` package: train -> models (absolute), sub/ (relative imports)."""
    pkg = root / "ecg_transfer"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""pkg"""\n')
    (pkg / "train.py").write_text("from ecg_transfer import models\nimport numpy\n")
    (pkg / "models.py").write_text("from ecg_transfer.fileio import atomic_path\n")
    (pkg / "fileio.py").write_text("def atomic_path(): ...\n")
    (pkg / "plots.py").write_text("import ecg_transfer.sub\n")
    (pkg / "sub" / "__init__.py").write_text("from ._a import f\n")
    (pkg / "sub" / "_a.py").write_text("def f():\n    from .. import fileio\n")
    (pkg / "unused.py").write_text("x = 1\n")
    return pkg


def _names(pkg: Path, entries: list[str]) -> list[str]:
    return [p.relative_to(pkg).as_posix() for p in codehash.module_closure(entries, pkg)]


def test_closure_follows_absolute_relative_and_lazy_imports(tmp_path):
    pkg = _tree(tmp_path)
    assert _names(pkg, ["ecg_transfer.train"]) == [
        "__init__.py", "fileio.py", "models.py", "train.py"]
    assert _names(pkg, ["ecg_transfer.plots"]) == [
        "__init__.py", "fileio.py", "plots.py", "sub/__init__.py", "sub/_a.py"]


def test_hash_changes_only_with_the_modules_a_stage_runs(tmp_path):
    pkg = _tree(tmp_path)
    train, plots = codehash.code_hash("ecg_transfer.train", root=pkg), \
        codehash.code_hash("ecg_transfer.plots", root=pkg)
    (pkg / "unused.py").write_text("x = 2\n")
    assert codehash.code_hash("ecg_transfer.train", root=pkg) == train
    (pkg / "models.py").write_text("from ecg_transfer.fileio import atomic_path  # fix\n")
    assert codehash.code_hash("ecg_transfer.train", root=pkg) != train
    assert codehash.code_hash("ecg_transfer.plots", root=pkg) == plots
    (pkg / "sub" / "_a.py").write_text("def f():\n    return 1\n")
    assert codehash.code_hash("ecg_transfer.plots", root=pkg) != plots


def test_hash_does_not_depend_on_where_the_checkout_lives(tmp_path):
    pkg = _tree(tmp_path / "a")
    copy = tmp_path / "b" / "elsewhere" / "ecg_transfer"
    shutil.copytree(pkg, copy)
    assert codehash.code_hash("ecg_transfer.train", root=pkg) == \
        codehash.code_hash("ecg_transfer.train", root=copy)


def test_unknown_entry_is_an_error_naming_it(tmp_path):
    pkg = _tree(tmp_path)
    with pytest.raises(ValueError, match=r"'ecg_transfer\.trian'.*found none"):
        codehash.code_hash("ecg_transfer.trian", root=pkg)


def test_the_real_stages_hash_their_entry_modules():
    root = codehash.package_root()
    files = {p.relative_to(root).as_posix()
             for p in codehash.module_closure(["ecg_transfer.train"])}
    assert {"train.py", "models.py", "metrics.py"} <= files
    assert "aggregate.py" not in files and "download.py" not in files
    assert len(codehash.code_hash("ecg_transfer.aggregate")) == 16


def test_a_package_hashed_whole_counts_a_module_nothing_imports_yet(tmp_path):
    pkg = _tree(tmp_path)
    assert codehash.package_modules("ecg_transfer.sub", pkg) == [
        "ecg_transfer.sub", "ecg_transfer.sub._a"]
    before = codehash.code_hash(*codehash.package_modules("ecg_transfer.sub", pkg), root=pkg)
    (pkg / "sub" / "new.py").write_text("x = 1\n")
    assert codehash.code_hash(*codehash.package_modules("ecg_transfer.sub", pkg),
                              root=pkg) != before
    with pytest.raises(ValueError, match=r"'ecg_transfer\.train'.*expected a package"):
        codehash.package_modules("ecg_transfer.train", pkg)


def test_the_results_stage_hashes_every_file_of_the_answer_package():
    root = codehash.package_root()
    files = {p.relative_to(root).as_posix() for p in codehash.module_closure(
        ["ecg_transfer.runlog", *codehash.package_modules("ecg_transfer.answer")])}
    assert {p.relative_to(root).as_posix() for p in (root / "answer").glob("*.py")} <= files
    assert {"runlog.py", "aggregate.py", "metrics.py", "perturb.py"} <= files


def test_a_datasets_data_stage_hashes_its_own_reader_and_the_shared_parts_only():
    """A built-in dataset's data stage leaves out the generic reader of a folder of records, and
    a folder of records' stage the built-in readers; both hash the shared modules they run."""
    from ecg_transfer import datasets

    root = codehash.package_root()

    def files(name: str) -> set[str]:
        return {p.relative_to(root).as_posix() for p in codehash.module_closure(
            ["ecg_transfer.prepare"], exclude=datasets.other_readers(name))}

    shared = {f"datasets/{m}.py" for m in ("errors", "leads", "signals", "protocols", "settings",
                                           "hashing", "indexing", "preprocessing", "recordset",
                                           "names", "wfdb_io")}
    readers = {f"datasets/{m}.py" for m in ("ptbxl", "challenge", "ptb", "ribeiro", "records")}
    assert shared <= files("georgia") and shared <= files("my_clinic")
    assert files("georgia") & readers == {"datasets/challenge.py"}
    assert files("my_clinic") & readers == {"datasets/records.py"}
