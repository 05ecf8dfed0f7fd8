"""`batm-server`, the command line: the parser, how it reaches the server, what it prints.

  main          the entry point (console script `batm-server`, `python -m server.cli`): the
                server-extra check, the parser, the terminal/pairing/broker commands
  admin_client  how commands reach the admin operations: the running server's admin socket, or
                the database when no server runs
  tables        what it prints: tables and lines for people, the API's shapes for --json

The firmware and master-service commands live with their domains (firmware/cli.py,
master/cli.py); `run`'s options come from server/settings.py.
"""
