"""WireGuard for scenario A (the terminal reaches the master service only through the VPN).

  states   the VPN step's phase, events and effects (pure data; agent/machine/vpn.py moves them)
  adapter  the imperative side: bring up, health, tear down (over batm_common.wireguard)
  screens  the vpn_error screen
  config   the gate's "vpn" answer, validated; the wg-quick file a technician can inspect
  keys     the terminal's X25519 key, made on the device (state_dir, 0600)
  options  the tunables' defaults and limits, and `batm-agent run`'s --vpn-* options
"""
