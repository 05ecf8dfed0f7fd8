"""What `batm-server` needs to start: each command loads only what it uses, and on a terminal-only
install (no server extra) every command says in one line which extra to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# The server extra's packages and what they bring; a terminal-only install has none of them.
SERVER_ONLY = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "jinja2", "argon2", "pyotp")

TERMINAL_ONLY = textwrap.dedent(f"""
    import sys

    class TerminalOnlyInstall:
        '''Makes the server extra's packages impossible to import, as if never installed.'''

        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in {SERVER_ONLY!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, TerminalOnlyInstall())
    from server.cli.main import main
    sys.exit(main(sys.argv[1:]))
""")


def run(program: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", program, *args], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("args", [
    ["--help"],
    ["run", "--listen", "127.0.0.1:0"],
    ["terminal", "list"],
    ["terminal", "create", "T-1", "--scenario", "A"],
    ["pairing", "approve", "T-1", "--code", "ABCD-1234"],
    ["firmware", "list"],
    ["broker", "status"],
    [],
])
def test_every_command_on_a_terminal_only_install_names_the_extra(args, tmp_path):
    result = run(TERMINAL_ONLY, *args, "--data-dir", str(tmp_path))
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "pip install 'batm-terminal[server]'" in line
    assert result.stdout == ""


LOADED = textwrap.dedent(f"""
    import sys
    from server.cli.main import main
    try:
        main(sys.argv[1:])
    except SystemExit:
        pass
    heavy = [m for m in {(*SERVER_ONLY, "httpx", "wireguard_tools", "paho")!r} if m in sys.modules]
    print("loaded: " + " ".join(heavy), file=sys.stderr)
""")


def heavy_packages_loaded(result: subprocess.CompletedProcess) -> set[str]:
    [line] = [x for x in result.stderr.splitlines() if x.startswith("loaded:")]
    return set(line.removeprefix("loaded:").split())


@pytest.mark.parametrize("args", [["--help"], ["terminal", "create", "--help"],
                                  ["run", "--help"], ["firmware", "add", "--help"]])
def test_help_loads_none_of_the_heavy_packages(args):
    result = run(LOADED, *args)
    assert "usage: batm-server" in result.stdout
    assert heavy_packages_loaded(result) == set()


def test_an_offline_command_loads_the_database_but_not_the_web_server(tmp_path):
    result = run(LOADED, "terminal", "create", "T-1", "--scenario", "B",
                 "--data-dir", str(tmp_path))
    assert "created terminal T-1" in result.stdout
    loaded = heavy_packages_loaded(result)
    assert "sqlalchemy" in loaded
    assert not {"fastapi", "starlette", "uvicorn"} & loaded
