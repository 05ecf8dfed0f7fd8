"""The shared layer: what the agent, the updater, the server and the rig all speak.

It depends on nothing of ours (tests/test_layering.py enforces it), so a terminal-only install, the
updater and the server can each use it without pulling in one another.

  atomic           atomic file writes (write, fsync, rename, fsync the directory), private dirs
  quarantine       damaged state files moved aside, remembered until reported to the server
  signing          Ed25519 request signatures, base64url, key fingerprints
  pairing_code     the short authentication string both sides derive independently
  hostaddr         validation of a server address HOST[:PORT]
  sd_notify        sd_notify(3) without libsystemd
  watchdog         the systemd watchdog pinged from the asyncio event loop, STATUS= lines
  journal_logging  stderr logging journald understands: "<N>" priority prefixes, no second stamp
  wireguard        one WireGuard interface: kernel module or wireguard-go, configured over UAPI
  jsonlines        JSON-lines framing over a Unix socket: encoding, parsing, long-path connect
  control_client   the one blocking client of the agent's control socket (CLI, console, rig, sim)
  control_commands the control socket's command names (agent, CLI, console, display, rig)
  digits           whole numbers from untrusted text: ASCII digits only, bounded length
  jsondoc          parse one JSON object from bytes, refusing anything else with a sentence
  clock            aware UTC time and its ISO 8601 form
  screen_ids       the catalogue of screen ids the agent shows and the display draws
  remote_commands  the catalogue of remote commands the master service sends to terminals
  mqtt_packets     MQTT 3.1.1 packet types and the packets our own clients build (server, fleet)
"""
