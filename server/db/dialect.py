"""The SQL that differs between database engines, in one place (today SQLite only).

Everything else is portable SQLAlchemy. When PostgreSQL arrives (issue 12) this module is where
the engine's dialect picks the statement; `sqlalchemy.dialects.postgresql.insert` has the same
`on_conflict_do_nothing`.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.dml import Insert


def insert_unless_present(table: type[DeclarativeBase], key: Sequence[str], **values) -> Insert:
    """INSERT that does nothing when a row with the same `key` columns exists (rowcount 0)."""
    return insert(table).values(**values).on_conflict_do_nothing(index_elements=list(key))
