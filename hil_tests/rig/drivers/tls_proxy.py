"""TlsProxyDriver: runs sim.tls_proxy next to the gate (in the server's namespace on the
simulated rig) so a terminal can be pointed at an interceptor."""

from __future__ import annotations

import contextlib
import select
import subprocess
import sys
import time
from pathlib import Path

from hil_tests.rig.resources import ServerResource
from hil_tests.rig.trace import StepTrace, step


class TlsProxyDriver:
    def __init__(self, server: ServerResource, cert_dir: Path, port: int,
                 trace: StepTrace | None = None):
        self.server = server
        self.cert_dir = cert_dir
        self.port = port
        self.trace = trace
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"{self.server.address}:{self.port}"

    @step
    def start(self, mode: str = "rewrite-ca", timeout: float = 15.0) -> str:
        argv = [sys.executable, "-m", "sim.tls_proxy", "--listen", self.address,
                "--upstream", self.server.gate_address, "--cert-dir", str(self.cert_dir),
                "--mode", mode]
        if self.server.netns:
            argv = ["ip", "netns", "exec", self.server.netns, *argv]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline().decode(errors="replace")
                if line.startswith("tls_proxy:") and "->" in line:
                    return self.address
                if not line:
                    break
        self.stop()
        raise AssertionError(f"the TLS proxy did not start on {self.address}")

    @step
    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
