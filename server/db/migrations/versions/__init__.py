"""The migrations, in order (each names the one before it as down_revision).

  0001_initial   every table of server/db/ as of the first migration, and the audit log's
                 append-only triggers (SQLite and PostgreSQL)
  0002_replicas  the replay memory and the hello rate buckets, shared by every server process
"""
