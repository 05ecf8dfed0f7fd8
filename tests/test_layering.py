"""The house's layering rule and the absence of import cycles, checked on the real tree; and the
checker itself, on small made-up trees, so a broken checker cannot pass the real tree silently."""

from __future__ import annotations

from pathlib import Path

import pytest
from layering import (
    ASSEMBLERS,
    PRODUCT_PACKAGES,
    find_modules,
    import_cycles,
    import_graph,
    layer_violations,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def graph():
    return import_graph(find_modules(ROOT, PRODUCT_PACKAGES + ASSEMBLERS))


def test_no_package_depends_on_one_it_must_not(graph):
    violations = layer_violations(graph)
    assert not violations, "\n".join(map(str, violations))


def test_no_import_cycle_between_modules(graph):
    cycles = import_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" ↔ ".join(c) for c in cycles)


# -- the checker on made-up trees --------------------------------------------------------------


def make_tree(root: Path, files: dict[str, str]) -> dict:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    packages = sorted({name.split("/")[0] for name in files})
    return import_graph(find_modules(root, packages))


CLEAN = {
    "batm_common/__init__.py": "",
    "batm_common/atomic.py": "import os\n",
    "firmware_updater/__init__.py": "",
    "firmware_updater/journal.py": "from batm_common.atomic import atomic_write\n",
    "agent/__init__.py": "",
    "agent/daemon.py": "from firmware_updater import journal\nfrom . import cli\n",
    "agent/cli.py": "import batm_common.atomic\n",
    "server/__init__.py": "",
    "server/app.py": "from batm_common import atomic\n",
}


def test_a_tree_that_keeps_the_rule_passes(tmp_path):
    graph = make_tree(tmp_path, CLEAN)
    assert layer_violations(graph) == []
    assert import_cycles(graph) == []
    assert ("agent.cli", 2) in graph["agent.daemon"]  # relative imports resolve


@pytest.mark.parametrize(("module", "line", "forbidden"), [
    ("server/app.py", "from agent.daemon import main\n", "agent.daemon"),
    ("agent/cli.py", "if True:\n    import server.app\n", "server.app"),
    ("firmware_updater/journal.py", "from agent import daemon\n", "agent.daemon"),
    ("batm_common/atomic.py", "from firmware_updater.journal import x\n",
     "firmware_updater.journal"),
    ("agent/cli.py", "def lazy():\n    from display import app\n", "display.app"),
])
def test_a_forbidden_import_is_reported(tmp_path, module, line, forbidden):
    files = {**CLEAN, "display/__init__.py": "", "display/app.py": ""}
    files[module] = files[module] + line
    violations = layer_violations(make_tree(tmp_path, files))
    assert [v.imported for v in violations] == [forbidden]
    assert module.replace("/", ".").removesuffix(".py") == violations[0].module


def test_type_checking_imports_do_not_count(tmp_path):
    files = {**CLEAN, "server/app.py": (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from agent import daemon\n")}
    assert layer_violations(make_tree(tmp_path, files)) == []


def test_a_cycle_is_reported_even_when_hidden_in_a_function(tmp_path):
    files = {**CLEAN,
             "agent/machine.py": "from agent import upgrade\n",
             "agent/upgrade.py": "def later():\n    from agent.vpn import states\n",
             "agent/vpn/__init__.py": "",
             "agent/vpn/states.py": "import agent.machine\n"}
    assert import_cycles(make_tree(tmp_path, files)) == [
        ["agent.machine", "agent.upgrade", "agent.vpn.states"]]


def test_assemblers_may_use_everything(tmp_path):
    files = {**CLEAN, "sim/__init__.py": "",
             "sim/cli.py": "import agent.daemon\nimport server.app\n"}
    assert layer_violations(make_tree(tmp_path, files)) == []
