"""The suite's marks come from what each test module needs, read from the code
(tests/module_needs.py); a terminal without the server extra runs the terminal tests and is told,
in one line, what was left out."""

from __future__ import annotations

from pathlib import Path

import pytest
from module_needs import (
    ROOT,
    ModuleNeedsPlugin,
    _distribution,
    _pyproject,
    extra_of_library,
    import_names,
    needs_of,
    summary,
)

TESTS = ROOT / "tests"


def needs(name: str):
    found = needs_of(TESTS / name)
    assert found is not None, name
    return found


def test_every_library_of_an_extra_is_known_by_its_import_name():
    """IMPORT_NAME_OF must name each distribution whose module has another name (pygame-ce →
    pygame): the dev install, which has every extra, proves each name is importable."""
    extras = _pyproject()["project"]["optional-dependencies"]
    for extra, requirements in extras.items():
        for requirement in requirements:
            distribution = _distribution(requirement)
            if distribution == "batm-terminal":
                continue
            names = import_names(distribution)
            assert names and all(extra_of_library()[n] == extra for n in names), distribution
    assert extra_of_library()["pygame"] == "display"
    assert {"fastapi", "sqlalchemy", "uvicorn"} <= {
        lib for lib, extra in extra_of_library().items() if extra == "server"}


@pytest.mark.parametrize(("module", "marks"), [
    ("test_pairing_machine.py", ["terminal"]),  # the agent's pure core
    ("test_display_render.py", ["terminal"]),  # pygame is the display extra: still a terminal
    ("test_server_service.py", ["server"]),  # imports the server
    ("test_agent_daemon.py", ["server", "processes"]),  # runs `batm-server` by its name
    ("test_mqtt_master.py", ["server", "processes"]),  # through test_agent_daemon's Loopback
    ("test_server_gate.py", ["server", "processes"]),  # the server in a thread starts Mosquitto
    ("test_control.py", ["terminal"]),  # a control socket served by a thread: no process
    ("test_cli.py", ["terminal", "processes"]),  # runs batm-agent against a fake agent
    ("test_layering.py", ["terminal"]),  # "import server.app" in a string is no import
])
def test_marks_follow_what_a_module_reaches(module, marks):
    assert needs(module).marks == marks


def test_hil_tests_need_the_server_through_the_simulated_rig():
    found = needs_of(ROOT / "hil_tests" / "test_pairing.py")
    assert found is not None and found.marks[0] == "server"


def test_a_missing_extra_leaves_its_modules_out_unimported_with_one_line_saying_so():
    plugin = ModuleNeedsPlugin(importable=lambda library: library not in {"fastapi", "uvicorn"})
    assert plugin.pytest_ignore_collect(TESTS / "test_server_gate.py") is True
    assert plugin.pytest_ignore_collect(TESTS / "test_pairing_machine.py") is None
    assert plugin.pytest_ignore_collect(TESTS / "waiting.py") is None  # not a test module
    assert plugin.pytest_ignore_collect(Path("/elsewhere/test_x.py")) is None  # none of ours
    [line] = summary(plugin.left_out)
    assert line.startswith("left out 1 test module(s) that need the server extra (")
    assert "tests/test_server_gate.py" in line
    assert line.endswith("to run them: pip install -e '.[server]'")
