"""MasterDriver: the master service of a rig — status, events, commands through the server's
admin socket; broker restarts and SIGKILLs; link cuts through the supervisor; and MQTT probes run
inside the rig's namespaces (sim.mqtt_probe), so the broker is reached the way a terminal reaches
it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from batm_common.control_client import call
from hil_tests.rig.resources import RigFile, TerminalResource
from hil_tests.rig.trace import StepTrace, step
from sim.layout import SUPERVISOR

TIMEOUT = 30.0


class MasterDriver:
    def __init__(self, rig: RigFile, terminal: TerminalResource, trace: StepTrace | None = None):
        self.rig = rig
        self.terminal = terminal
        self.trace = trace
        self.data_dir = Path(rig.server.data_dir)
        self._http = httpx.Client(
            transport=httpx.HTTPTransport(uds=os.fspath(self.data_dir / "admin.sock")),
            base_url="http://batm-admin", timeout=TIMEOUT + 10)

    def close(self) -> None:
        self._http.close()

    def _get(self, path: str) -> dict:
        response = self._http.get(path)
        response.raise_for_status()
        return response.json()

    # -- server side ---------------------------------------------------------------------------

    def status(self) -> dict:
        return self._get(f"/api/v1/terminals/{self.terminal.serial}/status")

    def wait_status(self, predicate, timeout: float = TIMEOUT) -> dict:
        """Long-polls the server until its view of the terminal satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        view = self.status()
        while not predicate(view):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"server status never matched; last: {view}")
            after = view.get("received_at") or ""
            view = self._get(f"/api/v1/terminals/{self.terminal.serial}/status/wait"
                             f"?after={after}&wait={min(left, 30):.2f}")
        return view

    def events(self, limit: int = 0) -> dict:
        return self._get(f"/api/v1/terminals/{self.terminal.serial}/events?limit={limit}")

    def wait_events(self, count: int, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            events = self.events()
            if events["count"] >= count or time.monotonic() > deadline:
                return events
            time.sleep(0.2)

    @step
    def restart_broker(self) -> dict:
        response = self._http.post("/api/v1/broker/restart", timeout=60)
        response.raise_for_status()
        return response.json()

    def broker_info(self) -> dict:
        return self._get("/api/v1/broker")

    @step
    def kill_broker(self, timeout: float = TIMEOUT) -> dict:
        """SIGKILL Mosquitto (no chance to save its persistence file) and wait until the
        server's supervision has started a new one."""
        before = self.broker_info()
        assert before["alive"] and before["pid"], f"no broker running: {before}"
        os.kill(before["pid"], signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while True:
            info = self.broker_info()
            if info["alive"] and info["pid"] != before["pid"]:
                return info
            if time.monotonic() > deadline:
                raise AssertionError(f"the broker was not restarted after SIGKILL: {info}")
            time.sleep(0.05)

    # -- faults --------------------------------------------------------------------------------

    @step
    def link(self, action: str) -> None:
        assert self.rig.supervisor, "this rig has no supervisor"
        call(self.rig.supervisor, {"cmd": "link", "serial": self.terminal.serial,
                                   "action": action}, timeout=30, peer=SUPERVISOR)

    # -- MQTT probes ---------------------------------------------------------------------------

    def broker(self) -> str:
        """HOST:PORT of the terminals' MQTT listener: rig.json's, else the server's own word."""
        if self.rig.server.broker:
            return self.rig.server.broker
        return json.loads((self.data_dir / "server.json").read_text())["mqtt"]

    def probe(self, netns: str | None, *args: str) -> dict:
        command = [sys.executable, "-m", "sim.mqtt_probe", *args]
        if netns:
            command = ["ip", "netns", "exec", netns, *command]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    @step
    def probe_as_terminal(self, password: str, *args: str) -> dict:
        """Connect to the TLS listener from the terminal's namespace with its credentials."""
        return self.probe(self.terminal.netns, "--broker", self.broker(),
                          "--ca", str(self.data_dir / "ca.pem"),
                          "--username", self.terminal.serial, f"--password={password}", *args)

    @step
    def probe_as_server(self, *args: str) -> dict:
        """The dynsec admin user, from the server's namespace (it may publish commands)."""
        password = (self.data_dir / "mosquitto" / "admin.secret").read_text().strip()
        return self.probe(self.rig.server.netns, "--broker", self.broker(),
                          "--ca", str(self.data_dir / "ca.pem"),
                          "--username", "batm:server", f"--password={password}", *args)
