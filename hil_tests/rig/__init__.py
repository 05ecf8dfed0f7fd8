"""The HIL rig library, labgrid-style.

resources   where things are (loaded from rig.json, validated at load time)
drivers     how to talk to them (serial console, agent CLI, server CLI, sim supervisor, proxy)
protocols   what a test may ask of a driver, independent of which driver answers
strategies  multi-step moves between terminal states (never paired → pairing_code → in_service)
target      binds one terminal's resources to its drivers, and resets it to never paired
trace       every driver call with its timing; printed when a test fails
sim_rigs    the simulated rigs of one pytest worker: shared per scenario, or fresh for one test
seed_rig    the fixture for a terminal at a given version and scenario (the seed matrix)
prereqs     what a simulated rig needs on this machine (root, binaries, product commands)
screen_recorder  every screen a terminal shows, read from its control socket
wg_probe    a throw-away WireGuard handshake from a terminal's namespace
"""
