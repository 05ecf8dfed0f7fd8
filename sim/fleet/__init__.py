"""The fleet simulator (`batm-sim fleet`): thousands of protocol-level terminals in K processes.

  mqtt        a minimal asyncio MQTT 3.1.1 client (its own TLS, QoS 1): one per simulated terminal
  provision   the fleet's keys and passwords (D/fleet.json), enrolled and granted via the servers
  terminal    one simulated terminal's session: status every S s, events, what it counts
  worker      one process of terminals, stepped by the coordinator over JSON lines
  workers     the coordinator's side: start K workers, hand out shares, add up their counts
  servers     R `batm-server run` replicas, each with its own broker, on SQLite or PostgreSQL
  measure     CPU and RSS from /proc, percentiles, the ingest lag histograms' difference
  run         `batm-sim fleet`: the servers, the fleet, the load, the revocation sample, figures
"""
