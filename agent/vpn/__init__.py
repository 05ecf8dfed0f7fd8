"""WireGuard for scenario A (the terminal reaches the master service only through the VPN).

wg.py        interfaces (kernel WireGuard, else wireguard-go over its UAPI socket), addresses
             and routes (pyroute2), shared with the server's endpoint
keys.py      the terminal's X25519 key, made on the device (state_dir, 0600)
config.py    the gate's "vpn" answer, validated; the wg-quick file a technician can inspect
states.py    phases, events and effects the pairing machine uses (pure)
machine.py   the VPN step's transitions (pure)
adapter.py   the agent's imperative side: bring up, health, tear down
"""
