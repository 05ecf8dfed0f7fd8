"""The agent's pure state machine: (state, event) → (state, effects), no I/O (architecture §7).

  state     AgentState, the phases, events and effects of pairing and the master link, the
            unions over every feature's, and `failed` (the shared retry step)
  pairing   transitions of pairing, the gate session and the master service link
  upgrade   transitions of the staged upgrade (the slot on trial, install, restart)
  vpn       transitions of the VPN step (scenario A) and the tunnel's tear-down
  dispatch  `transition(state, event)`: routes each event to its feature; the daemon calls it

The features' own phases, events and effects are data in their packages (agent/upgrade/states.py,
agent/vpn/states.py). Imports go one way: dispatch → features → state.
"""
