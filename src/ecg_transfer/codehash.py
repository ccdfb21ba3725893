"""Hashes of the package source a workflow stage runs, to carry in a rule's ``params``.

Snakemake re-runs a job when its params change, but it does not look at the package code a
script imports. A single package version in params is either never bumped (stale results after
a fix) or bumped for every change (a week of training re-run for a typo in the plotting code).
So each stage carries a hash of exactly the modules it executes: the entry modules its script
imports, plus every ``ecg_transfer`` module those import, found by reading their ``import``
statements (lazy imports inside functions included). A new module a stage starts to import is
picked up without anyone editing a list.

The hash covers the source of the package that is actually imported (``ecg_transfer.__file__``):
point ``PYTHONPATH`` at another copy of ``src/`` and the hash, like the jobs, follow that copy.
Paths enter the hash relative to the package root, so two checkouts of the same code agree.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from pathlib import Path

PACKAGE = "ecg_transfer"


def package_root() -> Path:
    """The directory of the imported ``ecg_transfer`` package (the one the jobs will run)."""
    import ecg_transfer

    return Path(ecg_transfer.__file__).resolve().parent


def _module_file(root: Path, module: str) -> Path | None:
    """The source file of ``module`` (dotted, inside the package), or None if it is no module."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts[1:])
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _imported_modules(path: Path, module: str) -> set[str]:
    """Dotted names of the package modules that ``path`` (the source of ``module``) imports.

    ``from ecg_transfer import x`` may name a submodule or an attribute; both candidates are
    returned and the caller keeps those that exist as files.
    """
    is_package = path.name == "__init__.py"
    here = module.split(".") if is_package else module.split(".")[:-1]
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as err:
        raise ValueError(f"{path}: cannot hash a stage's code that does not parse: {err}") from err
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = here[: len(here) - node.level + 1]
                base = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name == PACKAGE or name.startswith(PACKAGE + ".")}


def module_closure(entries: Iterable[str], root: Path | None = None,
                   exclude: Iterable[str] = ()) -> list[Path]:
    """Source files of ``entries`` and of every package module they import, transitively.

    Parent packages' ``__init__.py`` are included, since importing ``ecg_transfer.x`` runs them.
    ``exclude`` names modules that are imported but never run by this job (the readers of the
    other datasets, say): they and what only they import are left out. Raises ValueError for an
    entry or exclusion that is not a module of the package, so a typo in a rule's stage list
    fails loudly instead of hashing nothing (or everything).
    """
    root = package_root() if root is None else Path(root)
    todo: list[str] = []
    excluded = set(exclude)
    for entry in [*entries, *sorted(excluded)]:
        if _module_file(root, entry) is None:
            raise ValueError(
                f"code hash entry {entry!r}: expected a module of package {PACKAGE!r} "
                f"(a file under {root}), found none"
            )
        if entry not in excluded:
            todo.append(entry)
    seen: dict[str, Path] = {}
    while todo:
        module = todo.pop()
        if module in seen or module in excluded:
            continue
        path = _module_file(root, module)
        if path is None:  # `from ecg_transfer.x import name`: name is an attribute
            continue
        seen[module] = path
        parts = module.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        todo.extend(_imported_modules(path, module))
    return sorted(set(seen.values()))


def package_modules(package: str, root: Path | None = None) -> list[str]:
    """Dotted names of every module of ``package`` (a subpackage of ``ecg_transfer``), itself
    included, to hash a whole package as one stage's code: a module added to it counts even
    before anything imports it. Raises ValueError if ``package`` is no package."""
    root = package_root() if root is None else Path(root)
    init = _module_file(root, package)
    if init is None or init.name != "__init__.py":
        raise ValueError(f"code hash package {package!r}: expected a package of {PACKAGE!r} "
                         f"(a folder with __init__.py under {root}), found none")
    base = init.parent
    return [package, *sorted(".".join([package, *p.relative_to(base).with_suffix("").parts])
                             for p in base.rglob("*.py") if p.name != "__init__.py")]


def code_hash(*entries: str, root: Path | None = None, exclude: Iterable[str] = ()) -> str:
    """A short sha256 of the source of ``entries`` and everything in the package they import.

    Only the bytes of the files and their paths relative to the package root enter the hash,
    so it is the same in every checkout of the same code and changes with any edit to a module
    the stage runs (comments included: deciding what is cosmetic is not worth a stale result).
    """
    root = package_root() if root is None else Path(root)
    digest = hashlib.sha256()
    for path in module_closure(entries, root, exclude):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
