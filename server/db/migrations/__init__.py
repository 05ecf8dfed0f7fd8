"""The database's schema history, as Alembic migrations (run by server/db/migrate.py).

  env        Alembic's environment: migrates the connection server/db/migrate.py hands it
  versions/  one module per schema change, oldest first; 0001 is the schema as it was before
             migrations existed

A new migration (after changing a table in server/db/): `python -m server.db.migrate revision
-m "what changed"` writes versions/NNNN_….py from the difference between the tables and a fresh
database; read it, keep it portable (dialect-specific DDL comes from server/db/dialect.py), and
commit it with the table change.
"""
