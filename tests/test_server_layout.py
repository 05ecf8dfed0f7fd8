"""The server's layout (server/__init__.py): one subpackage per domain whose dependencies run one
way, a top level for what concerns the server as a whole, and a map in every package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from layering import find_modules, import_graph

ROOT = Path(__file__).resolve().parent.parent
TOP_LEVEL = {"app", "settings", "paths", "errors", "notify", "ca", "local_addresses"}
# Which domains each may import (the top level is open to all but `app`, which assembles).
DOMAINS = {
    "db": set(),
    "pairing": {"db"},
    "firmware": {"db", "pairing"},
    "master": {"db", "pairing"},
    "vpn": {"db", "pairing"},
    "console": {"db", "pairing", "firmware", "master", "vpn"},
    "http": {"db", "pairing", "firmware", "master", "vpn", "console"},
}


@pytest.fixture(scope="module")
def graph():
    return import_graph(find_modules(ROOT, ["server"]))


def _area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "server"


def test_the_top_level_holds_only_the_server_as_a_whole(graph):
    areas = {_area(m) for m in graph} - {"server"}
    assert areas - TOP_LEVEL == {*DOMAINS, "cli"}


def test_domains_depend_one_way(graph):
    wrong = []
    for module, targets in graph.items():
        area = _area(module)
        if area not in DOMAINS or module.endswith(".cli"):
            continue  # a domain's CLI module belongs to the command line, on top of everything
        for target, line in targets:
            used = _area(target)
            if used in TOP_LEVEL - {"app"} or used in ("server", area):
                continue
            if used not in DOMAINS[area]:
                wrong.append(f"{module}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("package", sorted(
    p.parent for p in (ROOT / "server").rglob("__init__.py")))
def test_every_package_opens_with_a_map_of_its_modules(package):
    tree = ast.parse((package / "__init__.py").read_text())
    doc = ast.get_docstring(tree, clean=False) or ""
    mapped = {line.split()[0] for line in doc.splitlines() if line.startswith("  ")}
    modules = {p.stem for p in package.glob("*.py")} - {"__init__", "__main__"}
    modules |= {p.name + "/" for p in package.iterdir() if (p / "__init__.py").exists()}
    assert modules <= mapped, f"{package} does not map {sorted(modules - mapped)}"
