"""Where things live in the server's data dir (one place, so the CLI and the server agree)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DATA_DIR = "/var/lib/batm-server"
DB_FILE = "batm.db"  # SQLite, WAL: the database unless --database / $BATM_DATABASE_URL says
DATABASE_ENV = "BATM_DATABASE_URL"  # another database (PostgreSQL): how every command finds it
ADMIN_SOCKET = "admin.sock"  # the admin API; how every command finds a running server
# Written when ready, removed on exit: {"pid", "gate", "console", "admin_socket", "mqtt"}.
SERVER_INFO = "server.json"
LOCK_FILE = "server.lock"  # held while a server runs: one server per data dir
ARCHIVES_DIR = "archives"  # log archives terminals uploaded (master/archives.py)


def default_data_dir() -> Path:
    return Path(os.environ.get("BATM_DATA_DIR") or DEFAULT_DATA_DIR)
