"""The README and docs/ against the tree: every link and anchor resolves, every path they name
exists, every config key of the schema is documented, and the README's two commands are the
ones that run the demo and (through .ci/run) the tests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_CODE = re.compile(r"`([^`\n]+)`")
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
# Paths the docs name in backticks that are made by a run, not kept in the tree.
_MADE_BY_A_RUN = ("results/", "resources/", "logs/", "benchmarks/", ".venv", "out/",
                  "checksums.lock.yaml", ".snakemake")


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors of the headings of a Markdown file."""
    text = _FENCE.sub("", path.read_text())
    out = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_link_and_anchor_resolves(doc: Path):
    broken = []
    for target in _LINK.findall(_FENCE.sub("", doc.read_text())):
        if re.match(r"^[a-z]+:", target):  # http(s), mailto: not checked offline
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists():
            broken.append(f"{target}: no file {path}")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{target}: no heading with anchor #{anchor} in {path.name}")
    assert not broken, f"{doc.name}: " + "; ".join(broken)


def _named_paths(text: str) -> set[str]:
    """Repository paths written in backticks: a known top-level folder or file, then more."""
    tops = {p.name for p in REPO.iterdir()} | {"docs"}
    found = set()
    for code in _CODE.findall(text):
        for word in code.split():
            word = word.strip(".,;:()'\"")
            first = word.split("/")[0]
            if ("/" in word and first in tops and not any(c in word for c in "<>*{}|$[")
                    and not word.startswith(_MADE_BY_A_RUN)):
                found.add(word)
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_path_the_docs_name_exists(doc: Path):
    missing = sorted(p for p in _named_paths(doc.read_text()) if not (REPO / p).exists())
    assert not missing, f"{doc.name} names paths that are not in the tree: {missing}"


def _schema_keys(node: dict, prefix: str, defs: dict) -> list[str]:
    """Dotted config keys of a schema object (dataset and model entries as <name>)."""
    if "$ref" in node:
        node = defs[node["$ref"].split("/")[-1]]
    keys = []
    for name, sub in node.get("properties", {}).items():
        key = f"{prefix}{name}"
        inner = _schema_keys(sub, f"{key}.", defs)
        keys += inner or [key]  # a section is documented by its keys
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and ("properties" in extra or "$ref" in extra):
        keys += _schema_keys(extra, f"{prefix}<name>.", defs)
    return keys


def test_every_config_key_is_documented():
    schema = yaml.safe_load(SCHEMA.read_text())
    text = "\n".join(doc.read_text() for doc in DOCS)
    undocumented = []
    for key in _schema_keys(schema, "", schema.get("$defs", {})):
        leaf = key.split(".")[-1]
        # documented where the key, or its last part after its section, is written in backticks
        spelled = {key, f".{leaf}", leaf}
        if not any(f"`{s}`" in text or f"`{s} " in text or f" {s}`" in text for s in spelled):
            undocumented.append(key)
    assert not undocumented, f"config keys documented nowhere: {undocumented}"


def test_the_readme_s_two_commands_run_the_demo_and_what_ci_runs():
    readme = (REPO / "README.md").read_text()
    block = re.search(r"^```\n(.*?)^```", readme, re.S | re.M)
    assert block, "README.md has no command block"
    commands = [line for line in block[1].splitlines() if line.strip()]
    assert commands == ["bash run.sh demo", "bash run.sh test --with-slurm"], commands
    ci = (REPO / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines(), ".ci/run does not run the README's second command"
