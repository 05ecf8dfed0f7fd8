"""Scenario A on the server: the WireGuard endpoint and what terminals learn about it.

  settings  `batm-server run --vpn-*` options and their defaults (no WireGuard loaded)
  endpoint  the server's WireGuard interface: its key, one peer per paired terminal, supervision
  service   tunnel addresses the operator generates, terminals' keys, peers added and revoked
  gate      what a scenario-A terminal's check-in and MQTT credentials answers add
"""
