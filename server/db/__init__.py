"""The server's database: the engine apart from the tables, one table module per domain.

  engine     open_database/close_database: data_dir/batm.db (SQLite, WAL) or --database URL
             (PostgreSQL), migrated to this code's schema on opening
  migrate    the Alembic migrations' runner: upgrade under a lock, refuse a newer database
  migrations/  the schema's history (Alembic), the same on SQLite and PostgreSQL
  cli        `batm-server db upgrade|current`
  errors     DatabaseError: cannot open, reach or migrate, and what to do
  base       the declarative base and the UTC timestamp type every table uses
  dialect    all the SQL that differs between SQLite and PostgreSQL (insert unless present, the
             audit triggers, the migration lock, LISTEN/NOTIFY)
  terminals  terminals and their pairing requests (the pairing domain's tables)
  firmware   the catalog's bundles, the pairing policy, upgrades in progress
  update_policy  who needs a firmware update (policy + catalog), in Python and in SQL
  master     what terminals report over MQTT, remote commands, log archives
  vpn        scenario A's tunnel addresses and terminal keys
  console    the operator console's users, API tokens, sessions, login failures, audit log
  guards     the replay memory and the hello rate buckets, shared by every server process

The tables live here rather than in their domains so that the dependencies run one way: every
domain imports db, db imports no domain, and the engine can import every table to make the
schema without a cycle (the old db.py ↔ firmware_db/master_db).
"""
