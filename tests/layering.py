"""The layering rule of the house (architecture §7, docs/architecture.md), read from the imports.

  batm_common       depends on nothing of ours
  firmware_updater  only on batm_common
  agent, display, server  on batm_common and firmware_updater, never on one another
  sim, hil_tests, bench, tests  may use everything (they assemble and exercise the product)

and no two modules import each other, directly or through others (an import cycle). Imports inside
functions count too: they are a cycle hidden, not removed. `if TYPE_CHECKING:` imports do not,
since they never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

# Which of our top-level packages each package may import (its own always allowed).
ALLOWED: Mapping[str, frozenset[str]] = {
    "batm_common": frozenset(),
    "firmware_updater": frozenset({"batm_common"}),
    "agent": frozenset({"batm_common", "firmware_updater"}),
    "display": frozenset({"batm_common"}),
    "server": frozenset({"batm_common", "firmware_updater"}),
}
PRODUCT_PACKAGES = tuple(ALLOWED)
ASSEMBLERS = ("sim", "hil_tests", "bench", "tests")


@dataclass(frozen=True)
class Violation:
    module: str
    imported: str
    line: int

    def __str__(self) -> str:
        return (f"{self.module} (line {self.line}) imports {self.imported}: "
                f"{self.module.split('.')[0]} may not depend on {self.imported.split('.')[0]}")


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def find_modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            modules[module_name(root, path)] = path
    return modules


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _type_checking_only(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def absolute_imports(tree: ast.AST) -> set[str]:
    """Every module a parsed file imports by absolute name, ours and third-party alike (the test
    suite's marking reads which libraries a test needs from these)."""
    names: set[str] = set()
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif node.module and not node.level:
            names.add(node.module)
    return names


def imports_of(module: str, path: Path, modules: Mapping[str, Path],
               tree: ast.AST | None = None) -> list[tuple[str, int]]:
    """(our module it imports, line) for every import in `path` (parsed: `tree`) that resolves
    to one of ours."""
    tree = tree or ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[tuple[str, int]] = []
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                package = module.split(".")
                if not is_package:
                    package = package[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            # `from pkg import mod` imports pkg.mod when that is a module, else a name of pkg.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != module:
                found.append((target, node.lineno))
    return found


def import_graph(modules: Mapping[str, Path]) -> dict[str, list[tuple[str, int]]]:
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def layer_violations(graph: Mapping[str, list[tuple[str, int]]]) -> list[Violation]:
    violations = []
    for module, targets in graph.items():
        package = module.split(".")[0]
        if package not in ALLOWED:
            continue
        for target, line in targets:
            target_package = target.split(".")[0]
            if target_package != package and target_package not in ALLOWED[package]:
                violations.append(Violation(module, target, line))
    return violations


def import_cycles(graph: Mapping[str, list[tuple[str, int]]]) -> list[list[str]]:
    """Every strongly connected set of more than one module (Tarjan, iterative), sorted."""
    edges = {module: sorted({t for t, _ in targets}) for module, targets in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(edges.get(start, ())))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges.get(child, ()))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return sorted(cycles)
