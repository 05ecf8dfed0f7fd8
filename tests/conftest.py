"""Suite-wide machinery for tests/ (and hil_tests/, which registers the same plugin):

every test is marked `terminal` or `server` from what its module really needs, and a module whose
extra is not installed is left out unimported, with one line saying what to install
(tests/module_needs.py reads the needs from the code). `pytest -m terminal` is what a terminal
without the server extra runs.

The server's database-level tests take `database_url` and run on SQLite and on PostgreSQL
(tests/databases.py: one throw-away cluster per worker, its tables emptied before each test).
"""

from __future__ import annotations

from collections.abc import Iterator

import module_needs
import pytest


def pytest_configure(config: pytest.Config) -> None:
    module_needs.register(config)


@pytest.fixture(scope="session")
def postgres_cluster(tmp_path_factory):
    """This worker's PostgreSQL (started at its first use, stopped at the end of the run)."""
    from databases import ClusterForTests

    cluster = ClusterForTests(tmp_path_factory.mktemp("postgres"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


# PostgreSQL starts a server process: `make test-fast` (-m "not processes") runs only SQLite.
DIALECTS = [pytest.param("sqlite", id="sqlite"),
            pytest.param("postgresql", id="postgresql", marks=pytest.mark.processes)]


@pytest.fixture(params=DIALECTS)
def database_url(request) -> Iterator[str | None]:
    """None for SQLite (the data dir's batm.db), else a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        yield None
        return
    yield request.getfixturevalue("postgres_cluster").fresh()
