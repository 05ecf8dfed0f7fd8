"""The simulated HIL rig (`batm-sim`): the server and each terminal in their own network namespace.

It assembles the product (agent, display, console, server) as a real rig would; it may import
every package. Protocols: docs/protocol.md §5; topology and rig.json: sim/README.md.

  cli               `batm-sim up|down|demo|server|terminal|fleet`
  lifecycle         `up` and `down` as functions (the CLI, the demo and the tests call them)
  supervisor        owns every process of a rig and serves D/sim.sock
  errors            the supervisor's one refusal (ActionError)
  children          the processes: the server, and per terminal agent, console, display
  procs             start, stop, kill a child, and find it again after a crash
  restarts          restart-on-request for agents (systemd's Restart=always, simulated)
  layout            where a rig keeps things inside D, and the config `up` hands over
  naming            names and addresses of one rig, derived from its directory
  netns             namespaces, bridge and veth pairs
  vpn               scenario A: the server's WireGuard endpoint and the terminals' tunnels
  faults            cut and restore a terminal's link
  clock_skew        a wrong wall clock for one terminal's agent (libfaketime)
  firmware_fixture  a signing key, tiny signed bundles, the server's catalog
  rigfile           rig.json, the rig description the HIL suite loads
  readiness         wait-for-condition helpers that fail with the log tail
  prereqs           what the machine must have, and how to say what is missing
  serial_json       the serial console's JSON mode from the rig side
  mqtt_probe        a one-shot MQTT client run inside a rig namespace
  tls_proxy         a TLS-intercepting proxy (the man in the middle the pairing code exposes)
  postgres          a throw-away PostgreSQL cluster (tests, benches, fleet rigs), socket only
  replicas          a rig's server on PostgreSQL (--database), its second replica (--replicas 2)
  demo              `batm-sim demo`: the pairing guide walked on the rig, with screenshots
  fleet/            `batm-sim fleet`: thousands of protocol-level terminals against one server
  console_walk      the demo's console walk: log in, approve in the browser, screenshots
  browser           Debian's Chromium under Playwright (in the server's namespace if need be)
  standins          stand-in processes for testing the rig machinery without the product
  testsupport       prerequisites for the rig's own unit tests (skip outside CI, fail in CI)
"""
