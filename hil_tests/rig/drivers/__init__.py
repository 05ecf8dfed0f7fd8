"""Drivers: *how* to talk to each part of the rig. Each public call is a traced step."""

from hil_tests.rig.drivers.agent import AgentDriver
from hil_tests.rig.drivers.booted_machine import BootedMachineDriver
from hil_tests.rig.drivers.console import ConsoleDriver
from hil_tests.rig.drivers.errors import CommandFailed, ScreenTimeout
from hil_tests.rig.drivers.serial_console import SerialConsoleDriver
from hil_tests.rig.drivers.server import ServerDriver
from hil_tests.rig.drivers.sim_power import SimPowerDriver
from hil_tests.rig.drivers.tls_proxy import TlsProxyDriver

__all__ = [
    "AgentDriver",
    "BootedMachineDriver",
    "CommandFailed",
    "ConsoleDriver",
    "ScreenTimeout",
    "SerialConsoleDriver",
    "ServerDriver",
    "SimPowerDriver",
    "TlsProxyDriver",
]
