"""VpnDriver: scenario A's server side and faults — the VPN view, an nft drop rule on the
WireGuard port, the broker's log of where connections came from, and a handshake probe."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from hil_tests.rig.drivers.errors import CommandFailed
from hil_tests.rig.resources import RigFile, TerminalResource
from hil_tests.rig.trace import StepTrace, step
from sim.prereqs import component_command

NFT_TABLE = "batm_vpn_fault"


class VpnDriver:
    def __init__(self, rig: RigFile, terminal: TerminalResource, trace: StepTrace | None = None):
        if not rig.server.vpn:
            raise ValueError("this rig provides no VPN (rig.json server.vpn is null)")
        self.rig = rig
        self.terminal = terminal
        self.trace = trace
        self.info = rig.server.vpn
        # Connections are counted from here on: a shared rig's log holds earlier tests' too.
        self._log_start = _size(rig.server.log)

    @property
    def endpoint(self) -> str:
        return self.info["endpoint"]

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])

    @step
    def generate(self) -> dict:
        """`batm-server terminal vpn SERIAL --json`: generates the configuration if absent
        (idempotent) and shows it with the peer's state."""
        proc = subprocess.run([component_command("batm-server"), "terminal", "vpn",
                               self.terminal.serial, "--json", "--data-dir",
                               self.rig.server.data_dir], capture_output=True, text=True,
                              timeout=30)
        if proc.returncode != 0:
            raise CommandFailed(proc)
        return json.loads(proc.stdout)

    def _nft(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = ["nft", *args]
        if self.rig.server.netns:
            command = ["ip", "netns", "exec", self.rig.server.netns, *command]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=30)
        if check and proc.returncode != 0:
            raise CommandFailed(proc)
        return proc

    @contextlib.contextmanager
    def udp_dropped(self) -> Iterator[None]:
        """Drop the WireGuard UDP port in the server's namespace; removed on exit, always."""
        self._nft("add", "table", "inet", NFT_TABLE)
        try:
            self._nft("add", "chain", "inet", NFT_TABLE, "input",
                      "{ type filter hook input priority 0 ; }")
            self._nft("add", "rule", "inet", NFT_TABLE, "input", "udp", "dport",
                      str(self.port), "drop")
            yield
        finally:
            self.restore()

    @step
    def restore(self) -> None:
        self._nft("delete", "table", "inet", NFT_TABLE, check=False)

    def rule_present(self) -> bool:
        return self._nft("list", "table", "inet", NFT_TABLE, check=False).returncode == 0

    def broker_connections(self) -> list[tuple[str, str]]:
        """(peer address, client id) of every MQTT connection of this terminal the broker
        logged since this driver was made (Mosquitto's connection_messages, in the server's
        log)."""
        with open(self.rig.server.log or "", "rb") as log:
            log.seek(self._log_start)
            text = log.read().decode(errors="replace")
        pattern = re.compile(r"New client connected from (\S+?):\d+ as (\S+) .*u'"
                             + re.escape(self.terminal.serial) + "'")
        return pattern.findall(text)

    @step
    def probe_handshake(self, key_file: Path, address: str, timeout: float = 6.0) -> dict:
        """Try a handshake with `key_file`'s key from the terminal's namespace."""
        server = self.generate()
        ifname = f"wg{self.rig.rig_id or 'x'}p"[:15]
        command = [sys.executable, "-m", "hil_tests.rig.wg_probe", "--ifname", ifname,
                   "--key-file", str(key_file), "--peer", server["server_public_key"],
                   "--endpoint", self.endpoint,
                   "--allowed", f"{server['server_tunnel_address']}/32",
                   "--address", address, "--timeout", str(timeout)]
        if self.terminal.netns:
            command = ["ip", "netns", "exec", self.terminal.netns, *command]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout + 30,
                              cwd=Path(__file__).resolve().parents[3])
        if proc.returncode != 0:
            raise CommandFailed(proc)
        return json.loads(proc.stdout)


def _size(path: str | None) -> int:
    try:
        return Path(path or "").stat().st_size
    except OSError:
        return 0
