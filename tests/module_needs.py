"""What each test module needs, read from the code, and the pytest plugin that marks every test
with it and leaves out, unimported, the modules whose extra is not installed.

A test module needs what it reaches: its imports, the imports of every module of ours they lead to
(tests/ helpers and test modules imported by other tests included), the console scripts it names
("batm-server" → server.cli, from pyproject's [project.scripts]) and the modules it names for
`python -m` ("sim.tls_proxy"). Read this way, the marks cannot drift from what a module uses:

  server     it reaches a library of the server extra (pyproject's [project.optional-dependencies]:
             FastAPI, SQLAlchemy, uvicorn), i.e. the reference server or the rig that runs it
  terminal   it needs no more than a terminal installs: the base dependencies, the display extra
  processes  its own code or a tests/ helper it imports starts processes (subprocess or
             multiprocessing), or runs a product service in a thread (threading) that starts a
             child process (a module it reaches calls subprocess.Popen: the server's Mosquitto)

A module is marked as a whole (a test module that needs the server in one test is a server
module). When an extra is not installed (a terminal without the server extra), the modules that
need it are not imported at all, and one line at the end of the run says what was left out and
what to install. Registered once per session by tests/conftest.py and hil_tests/conftest.py.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import itertools
import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from layering import ASSEMBLERS, PRODUCT_PACKAGES, absolute_imports, find_modules, imports_of

ROOT = Path(__file__).resolve().parent.parent
TEST_DIRS = (ROOT / "tests", ROOT / "hil_tests")
PLUGIN_NAME = "batm-module-needs"
MARKS = ("terminal", "server", "processes")  # declared in pyproject.toml, like `hil`
STARTS_PROCESSES = {"subprocess", "multiprocessing"}
# Distributions whose import name is not their own name, for extras that are not installed (an
# installed one is looked up in its metadata). tests/test_module_needs.py keeps this complete.
IMPORT_NAME_OF = {"pygame-ce": "pygame"}
SELF = "batm-terminal"


# -- extras, from pyproject.toml --------------------------------------------------------------


@functools.cache
def _pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)


def _distribution(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0].lower()


@functools.cache
def _installed() -> dict[str, set[str]]:
    """Installed distribution (lower case) → the top-level modules it provides."""
    provided: dict[str, set[str]] = {}
    for name, distributions in packages_distributions().items():
        for distribution in distributions:
            provided.setdefault(distribution.lower(), set()).add(name)
    return provided


def import_names(distribution: str) -> set[str]:
    """Top-level modules a distribution provides: from its metadata when installed."""
    return _installed().get(distribution) or {
        IMPORT_NAME_OF.get(distribution, distribution.replace("-", "_"))}


@functools.cache
def extra_of_library() -> dict[str, str]:
    """Import name → the extra that brings it (extras made of other extras are left aside)."""
    found: dict[str, str] = {}
    for extra, requirements in _pyproject()["project"]["optional-dependencies"].items():
        for requirement in requirements:
            distribution = _distribution(requirement)
            if distribution != SELF:
                found.update(dict.fromkeys(import_names(distribution), extra))
    return found


# -- what every module of ours reaches --------------------------------------------------------


@dataclass(frozen=True)
class Module:
    path: Path
    reaches: frozenset[str]  # modules of ours it imports, runs or names for `python -m`
    libraries: frozenset[str]  # top-level names of everything it imports
    popen: bool  # it starts a child process with subprocess.Popen

    @property
    def test_side(self) -> bool:
        return any(self.path.is_relative_to(d) for d in TEST_DIRS)


@functools.cache
def modules() -> dict[str, Module]:
    paths = find_modules(ROOT, (*PRODUCT_PACKAGES, *(a for a in ASSEMBLERS if a != "tests")))
    # tests/ is not a package: its modules import one another by bare name (fake_agent, waiting).
    paths.update({path.stem: path for path in sorted((ROOT / "tests").glob("*.py"))})
    scripts = {name: target.split(":")[0]
               for name, target in _pyproject()["project"]["scripts"].items()}
    found = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        reached = {target for target, _ in imports_of(name, path, paths, tree)}
        strings, python_m, popen = _commands(tree)
        reached |= {scripts[text] for text in strings & scripts.keys()}
        reached |= python_m & paths.keys()
        found[name] = Module(path, frozenset(reached),
                             frozenset(n.split(".")[0] for n in absolute_imports(tree)), popen)
    return found


def _commands(tree: ast.AST) -> tuple[set[str], set[str], bool]:
    """What a file may run: its string constants (console scripts' names among them), the
    modules named right after "-m" in a list, tuple or call (a command line being built), and
    whether it calls subprocess.Popen."""
    strings: set[str] = set()
    python_m: set[str] = set()
    popen = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            strings.add(node.value)
        elif isinstance(node, ast.Call):
            popen = popen or getattr(node.func, "attr", getattr(node.func, "id", "")) == "Popen"
        items = getattr(node, "elts", None) or getattr(node, "args", None)
        if isinstance(items, list):
            for flag, value in itertools.pairwise(items):
                if (isinstance(flag, ast.Constant) and flag.value == "-m"
                        and isinstance(value, ast.Constant) and isinstance(value.value, str)):
                    python_m.add(value.value)
    return strings, python_m, popen


@functools.cache
def _module_at() -> dict[Path, str]:
    return {module.path: name for name, module in modules().items()}


# -- what a test module needs -----------------------------------------------------------------


def _importable(library: str) -> bool:
    return importlib.util.find_spec(library) is not None


@dataclass(frozen=True)
class Needs:
    libraries: frozenset[str]  # the libraries of extras it reaches
    processes: bool

    @property
    def extras(self) -> set[str]:
        return {extra_of_library()[lib] for lib in self.libraries}

    @property
    def marks(self) -> list[str]:
        side = "server" if "server" in self.extras else "terminal"
        return [side, "processes"] if self.processes else [side]

    def missing(self, importable: Callable[[str], bool] = _importable) -> list[str]:
        """The libraries it needs that are not installed."""
        return sorted(lib for lib in self.libraries if not importable(lib))


@functools.cache
def needs_of(path: Path) -> Needs | None:
    """What the test module at `path` needs; None for a file that is none of ours."""
    graph = modules()
    start = _module_at().get(path.resolve())
    if start is None:
        return None
    seen, todo = {start}, [start]
    while todo:
        for target in graph[todo.pop()].reaches - seen:
            seen.add(target)
            todo.append(target)
    reached = [graph[name] for name in seen]
    libraries = set().union(*(m.libraries for m in reached)) - {n.split(".")[0] for n in graph}
    test_side = set().union(*(m.libraries for m in reached if m.test_side))
    processes = bool(test_side & STARTS_PROCESSES) or (
        "threading" in test_side and any(m.popen for m in reached))
    return Needs(frozenset(libraries & extra_of_library().keys()), processes)


# -- the plugin -------------------------------------------------------------------------------


class ModuleNeedsPlugin:
    """Marks every test from its module's needs; leaves out modules whose extra is missing."""

    def __init__(self, importable: Callable[[str], bool] = _importable) -> None:
        self.importable = importable
        self.left_out: dict[str, set[str]] = {}  # extra → test files

    def pytest_ignore_collect(self, collection_path: Path) -> bool | None:
        if collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
            return None
        needs = needs_of(collection_path)
        missing = needs.missing(self.importable) if needs is not None else []
        for library in missing:
            self.left_out.setdefault(extra_of_library()[library], set()).add(
                str(collection_path.relative_to(ROOT)))
        return True if missing else None

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            needs = needs_of(Path(item.path))
            for mark in needs.marks if needs is not None else ():
                item.add_marker(mark)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:  # a pytest-xdist worker: its controller reports
            workeroutput[PLUGIN_NAME] = {k: sorted(v) for k, v in self.left_out.items()}

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node) -> None:
        left_out = (getattr(node, "workeroutput", None) or {}).get(PLUGIN_NAME, {})
        for extra, files in left_out.items():
            self.left_out.setdefault(extra, set()).update(files)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        for line in summary(self.left_out):
            terminalreporter.write_line(line, yellow=True)


def summary(left_out: dict[str, Iterable[str]]) -> list[str]:
    """One line per missing extra: what was left out and what to install."""
    lines = []
    for extra, files in sorted(left_out.items()):
        libraries = sorted(lib for lib, e in extra_of_library().items() if e == extra)
        lines.append(
            f"left out {len(set(files))} test module(s) that need the {extra} extra "
            f"({', '.join(libraries)}: not installed): {' '.join(sorted(set(files)))}; "
            f"to run them: pip install -e '.[{extra}]'")
    return lines


def register(config: pytest.Config) -> None:
    """Called by each conftest; the plugin is registered once per session."""
    if not config.pluginmanager.has_plugin(PLUGIN_NAME):
        config.pluginmanager.register(ModuleNeedsPlugin(), PLUGIN_NAME)
