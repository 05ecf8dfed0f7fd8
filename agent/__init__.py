"""The terminal agent: the daemon that pairs the kiosk with its server, keeps it connected and
upgrades it (architecture §1). By feature; the top level is the daemon as a whole.

  cli          `batm-agent`: run the daemon, or talk to the running one (status, screen, wait…)
  console      `batm-console`: the serial console, a line editor over the control socket
  daemon       the imperative shell: one asyncio loop around the pure state machine
  gate_client  the HTTPS client of the server's gate, turning transport failures into domain errors
  settings     the stored settings: server address, pinned server key (atomic, with a backup)
  identity     the terminal's Ed25519 identity key, made on the device
  hardware     facts from the hardware and the active firmware slot (serial, model, version)
  screens      the screen model: what the kiosk shows, derived from the machine's state
  backoff      capped, jittered exponential backoff
  restart      the exit code that asks the supervisor for a restart, and the terminal's reboot

  machine/     the pure state machine: shared state, one transition module per feature, dispatch
  upgrade/     staged firmware upgrades: states, the gate's offer, the updater adapter, screens
  vpn/         WireGuard for scenario A: states, adapter, screens, config, keys, options
  master/      the master service: session, MQTT link, credentials, outbox, status, commands, logs
  control/     the control socket's server and the screen bus
  admin/       the advanced administration: PIN, sessions and commands, network info
"""
