"""The HIL rig library, labgrid-style.

resources   where things are (loaded from rig.json, validated at load time)
drivers     how to talk to them (serial console, agent CLI, server CLI, sim supervisor, proxy)
protocols   what a test may ask of a driver, independent of which driver answers
strategies  multi-step moves between terminal states (never paired → pairing_code → in_service)
target      binds one terminal's resources to its drivers
trace       every driver call with its timing; printed when a test fails
"""
