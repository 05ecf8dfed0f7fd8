"""Alembic's environment: migrate the connection server/db/migrate.py passes in.

Never run by hand against a URL: `batm-server db upgrade` (and every server start) opens the
database, takes the migration lock and then runs Alembic here on that same connection.
"""

from __future__ import annotations

from alembic import context

from server.db.base import UTCDateTime
from server.db.engine import schema_metadata


def render_item(kind, obj, _autogen_context):
    """Migrations name plain SQLAlchemy types: they must not change when the models do."""
    if kind == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime()"
    return False


connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=schema_metadata(),
    compare_type=True,
    render_item=render_item,
)
with context.begin_transaction():
    context.run_migrations()
