"""The database's one error: it cannot be opened, reached or migrated; str() says why and what
to do (the CLI prints it, `batm-server run` logs it and exits 1)."""

from __future__ import annotations


class DatabaseError(Exception):
    pass
