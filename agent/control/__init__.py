"""The control socket (docs/protocol.md §4): how the display, the console and the CLI see the agent.

  server      ControlServer: JSON lines over a Unix socket, answering the control commands
  screen_bus  the current screen model, fanned out to every subscriber
"""
