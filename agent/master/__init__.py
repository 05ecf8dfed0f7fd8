"""The master service, from the terminal's side (docs/protocol.md §7): MQTT over TLS.

  session          MasterSession: performs the machine's master effects, runs what lives on the link
  credentials      the terminal's MQTT credentials (made here, handed to the gate, stored 0600)
  mqtt_link        the MQTT link (paho in its own thread), its events into the daemon's loop
  outbox           the local database (state_dir/local.db) and its event outbox, acked end to end
  status_report    the terminal's retained status on terminals/<serial>/status, and its heartbeat
  remote_commands  parsing and running the server's remote commands, and their results
  log_archive      the agent's log file, and the archive retrieve_logs uploads
"""
