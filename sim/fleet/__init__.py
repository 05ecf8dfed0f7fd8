"""The fleet simulator (`batm-sim fleet`): thousands of protocol-level terminals in one process.

  mqtt        a minimal asyncio MQTT 3.1.1 client (TLS, QoS 1): one per simulated terminal
  provision   the fleet's keys and passwords (D/fleet.json), enrolled and granted via the server
  terminal    one simulated terminal's session: status every S s, events, what it counts
  measure     CPU and RSS from /proc, percentiles, the ingest lag histogram's difference
  run         `batm-sim fleet`: the server, the fleet, the load, the revocation sample, figures
"""
