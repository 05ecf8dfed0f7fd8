"""The server's database: the engine apart from the tables, one table module per domain.

  engine     open_database/close_database: data_dir/batm.db (SQLite, WAL), the schema made whole
  base       the declarative base and the UTC timestamp type every table uses
  dialect    the one engine-specific statement (insert unless present), kept apart for PostgreSQL
  terminals  terminals and their pairing requests (the pairing domain's tables)
  firmware   the catalog's bundles, the pairing policy, upgrades in progress
  update_policy  who needs a firmware update (policy + catalog), in Python and in SQL
  master     what terminals report over MQTT, remote commands, log archives
  vpn        scenario A's tunnel addresses and terminal keys
  console    the operator console's users, API tokens, sessions, login failures, audit log

The tables live here rather than in their domains so that the dependencies run one way: every
domain imports db, db imports no domain, and the engine can import every table to make the
schema without a cycle (the old db.py ↔ firmware_db/master_db).
"""
