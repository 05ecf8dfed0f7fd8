"""The rig supervisor: owns every process of a simulated rig and serves D/sim.sock.

`batm-sim up` starts it (`python -m sim.supervisor --dir D --ready-fd N`); it daemonizes (second
fork, own session), builds the network and the per-terminal files, starts the children, waits
until each is ready, writes rig.json and tells `up` through the ready pipe. It then answers
docs/protocol.md §5 requests until `down` (or SIGTERM). It restarts nothing by itself: a child
that dies stays dead and its exit is logged, so a test sees the failure instead of a mask.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socketserver
import sys
import threading
import time
import traceback

from sim import faults, netns, readiness, replicas
from sim import vpn as sim_vpn
from sim.children import TerminalChildren, server_child
from sim.errors import ActionError
from sim.firmware_fixture import prepare_firmware
from sim.layout import Layout, RigConfig
from sim.naming import (
    BROKER_PORT,
    CONSOLE_PORT,
    GATE_PORT,
    SERVER_ADDRESS,
    RigNames,
    terminal_address,
)
from sim.procs import Child
from sim.rigfile import RigFile, ServerResource, TerminalResource, write_rig_file


class Supervisor:
    def __init__(self, config: RigConfig):
        self.config = config
        self.layout = Layout(config.dir)
        self.names = RigNames(config.rig_id)
        self.lock = threading.RLock()
        self.network = netns.RigNetwork(self.names, len(config.terminals))
        self.gate = (
            f"{SERVER_ADDRESS}:{GATE_PORT}" if config.use_netns
            else f"127.0.0.1:{readiness.free_port()}"
        )
        # Fixed for the rig's life (rig.json says it), also across server restarts.
        self.broker = (
            f"{SERVER_ADDRESS}:{BROKER_PORT}" if config.use_netns
            else f"127.0.0.1:{readiness.free_port()}"
        )
        self.console = (
            f"{SERVER_ADDRESS}:{CONSOLE_PORT}" if config.use_netns
            else f"127.0.0.1:{readiness.free_port()}"
        )
        self.database = replicas.RigDatabase(self)
        self.server = server_child(self)
        self.replicas = replicas.replicas(self)
        self.terminals = {
            spec.serial: TerminalChildren(self, i, spec)
            for i, spec in enumerate(config.terminals)
        }
        self.stopping = threading.Event()
        self.server_socket: socketserver.UnixStreamServer | None = None

    # -- helpers used by the children module ------------------------------------------------

    def server_netns(self) -> str | None:
        return self.network.server_netns if self.config.use_netns else None

    def terminal_netns(self, index: int) -> str | None:
        return self.network.terminal_netns(index) if self.config.use_netns else None

    def all_children(self) -> list[Child]:
        children = [self.server, *(r.child for r in self.replicas)]
        for t in self.terminals.values():
            children += t.children()
        return children

    def log(self, message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)

    # -- bring-up ---------------------------------------------------------------------------

    def build(self) -> None:
        self.layout.logs.mkdir(parents=True, exist_ok=True)
        self.layout.server_data.mkdir(parents=True, exist_ok=True)
        self.save_state()
        if self.config.use_netns:
            self.log(f"network: creating {', '.join(self.network.namespaces())}")
            self.network.up()
        for t in self.terminals.values():
            self.layout.make_terminal_files(t.spec)
        self.database.start()
        if not self.config.standins:  # signed test bundles in the server's catalog
            prepare_firmware(self.layout, [t.spec for t in self.terminals.values()],
                             database=self.database.url)
        deadline = time.monotonic() + self.config.timeout
        self.start_server(wait=False)
        for t in self.terminals.values():
            t.start_all()
        self.save_state()
        readiness.wait_server(self, deadline)
        replicas.start_replicas(self)
        for t in self.terminals.values():
            t.wait_ready(deadline)
        self.save_state()
        write_rig_file(self.layout.rig_file, self.rig_file())
        self.log("rig ready")

    def rig_file(self) -> RigFile:
        left_out = []
        if not self.config.use_netns:
            left_out.append("namespaces")
        if not self.config.use_xvfb:
            left_out += ["xvfb", "display"]
        left_out += sim_vpn.left_out(self)
        server = ServerResource(
            data_dir=str(self.layout.server_data),
            netns=self.server_netns(),
            address=self.gate.rsplit(":", 1)[0],
            gate=self.gate,
            broker=self.broker,
            console_url=f"https://{self.console}/",
            log=str(self.layout.log("server")),
            vpn=sim_vpn.rig_entry(self),  # scenario A: the WireGuard endpoint (sim/vpn.py)
            database=self.database.url,
            replicas=tuple(ServerResource.from_dict(r.rig_entry(), "server.replicas")
                           for r in self.replicas),
        )
        terminals = []
        for i, t in enumerate(self.terminals.values()):
            s = t.spec.serial
            terminals.append(TerminalResource(
                serial=s,
                version=t.spec.version,
                state_dir=str(self.layout.state_dir(s)),
                netns=self.terminal_netns(i),
                console=str(self.layout.console(s)),
                address=terminal_address(i) if self.config.use_netns else "127.0.0.1",
                display=t.display,
                screenshot_dir=str(self.layout.screenshot_dir(s)),
                hardware_dir=str(self.layout.hardware_dir(s)),
                slots_dir=str(self.layout.slots_dir(s)),
                agent_log=str(t.agent.log_path),
                console_log=str(t.console.log_path),
                display_log=str(t.display_proc.log_path) if t.display_proc else None,
            ))
        return RigFile(
            server=server,
            terminals=tuple(terminals),
            kind="sim",
            rig_id=self.names.id,
            scenario=self.config.scenario,
            supervisor=str(self.layout.sim_sock),
            isolation="netns" if self.config.use_netns else "loopback",
            left_out=tuple(left_out),
            logs_dir=str(self.layout.logs),
        )

    def save_state(self) -> None:
        state = {
            "rig_id": self.names.id,
            "supervisor_pid": os.getpid(),
            "namespaces": self.network.namespaces() if self.config.use_netns else [],
            "children": {c.name: c.pid for c in self.all_children() if c.pid},
        }
        tmp = self.layout.state.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(tmp, self.layout.state)

    # -- actions (docs/protocol.md §5) ------------------------------------------------------

    def start_server(self, wait: bool = True) -> None:
        if self.server.alive():
            return
        (self.layout.server_data / "server.json").unlink(missing_ok=True)
        self.server.start()
        if wait:
            readiness.wait_server(self, time.monotonic() + 30)

    def handle(self, request: dict) -> dict:
        cmd = request.get("cmd")
        if cmd == "ping":
            return {"ok": True}
        if cmd == "status":
            return {"ok": True, "children": {
                c.name: {"pid": c.pid, "alive": c.alive(), "returncode": c.returncode()}
                for c in self.all_children()
            }}
        if cmd == "down":
            return {"ok": True, "removed": self.down()}
        if cmd == "server":
            action = request.get("action")
            with self.lock:
                if action == "stop":
                    self.server.stop()
                elif action == "start":
                    self.start_server()
                elif action == "restart":
                    self.server.stop()
                    self.start_server()
                else:
                    raise ActionError(
                        f"server action must be stop, start or restart, not {action!r}"
                    )
            self.save_state()
            return {"ok": True}
        if cmd == "terminal":
            serial, action = request.get("serial"), request.get("action")
            terminal = self.terminals.get(serial) if isinstance(serial, str) else None
            if terminal is None:
                raise ActionError(
                    f"no terminal {serial!r} in this rig (have: {list(self.terminals)})"
                )
            with self.lock:
                terminal.act(action, request.get("clock_offset"))
            self.save_state()
            return {"ok": True}
        if cmd in faults.FAULT_COMMANDS:
            try:
                return faults.handle(self, request)
            except faults.FaultError as exc:
                raise ActionError(str(exc)) from None
        raise ActionError(f"unknown cmd {cmd!r} (ping, status, server, terminal, link, down)")

    def down(self) -> list[str]:
        """Stop every child, remove the network; leave logs and screenshots."""
        with self.lock:
            if self.stopping.is_set():
                return []
            self.stopping.set()
            self.log("down: stopping children")
            for t in self.terminals.values():
                t.stop_all()
            for replica in self.replicas:
                replica.child.stop()
            self.server.stop()
            self.database.stop()
            removed = netns.teardown(self.names) if self.config.use_netns else []
            for path in (self.layout.sim_sock, self.layout.rig_file, self.layout.state):
                path.unlink(missing_ok=True)
            self.log(f"down: removed {removed or 'no network'}")
            return removed

    # -- serving ----------------------------------------------------------------------------

    def bind(self) -> None:
        supervisor = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                for line in self.rfile:
                    try:
                        request = json.loads(line)
                        if not isinstance(request, dict):
                            raise ActionError("a request must be a JSON object")
                        answer = supervisor.handle(request)
                    except json.JSONDecodeError as exc:
                        answer = {"ok": False, "error": f"not JSON: {exc}"}
                    except (ActionError, readiness.NotReady) as exc:
                        answer = {"ok": False, "error": str(exc)}
                    except Exception as exc:  # the supervisor must outlive a bad request
                        supervisor.log(traceback.format_exc())
                        answer = {"ok": False, "error": f"internal error: {exc}"}
                    with contextlib.suppress(OSError):
                        self.wfile.write(json.dumps(answer).encode() + b"\n")
                        self.wfile.flush()
                    if supervisor.stopping.is_set():
                        threading.Thread(target=supervisor.shutdown_server, daemon=True).start()
                        return

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self.layout.sim_sock.unlink(missing_ok=True)
        self.server_socket = Server(str(self.layout.sim_sock), Handler)
        os.chmod(self.layout.sim_sock, 0o600)

    def serve_forever(self) -> None:
        threading.Thread(target=self.watch_children, daemon=True).start()
        assert self.server_socket is not None, "bind() first"
        self.server_socket.serve_forever(poll_interval=0.2)

    def shutdown_server(self) -> None:
        if self.server_socket is not None:
            self.server_socket.shutdown()

    def watch_children(self) -> None:
        """Log each child's exit once; restart nothing. If the rig directory is deleted under a
        running rig (a test's tmp dir cleaned up while its rig leaked), nobody can reach this
        supervisor any more: take the rig down rather than leave it running forever."""
        while not self.stopping.is_set():
            if not self.layout.sim_sock.exists():
                self.log(f"{self.layout.sim_sock} is gone: taking the rig down")
                self.down()
                self.shutdown_server()
                return
            for child in self.all_children():
                if child.proc is not None and not child.alive() and not child.exit_logged:
                    child.log_exit()
                    self.log(f"{child.name} exited ({child.returncode()})")
            time.sleep(0.5)


def daemonize() -> None:
    """Second fork: the supervisor is not a session leader and its starter can reap at once."""
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    os.umask(0o022)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sim.supervisor")
    parser.add_argument("--dir", required=True)
    parser.add_argument("--ready-fd", type=int, required=True)
    parser.add_argument("--no-daemon", action="store_true")
    args = parser.parse_args(argv)
    if not args.no_daemon:
        daemonize()
    ready = os.fdopen(args.ready_fd, "w")
    try:
        supervisor = Supervisor(RigConfig.load(Layout(args.dir).config))
    except Exception as exc:
        print(traceback.format_exc(), flush=True)
        with contextlib.suppress(OSError):
            ready.write(json.dumps({"ok": False, "error": f"bad rig config: {exc}"}) + "\n")
            ready.close()
        return 1

    def on_signal(signum: int, _frame: object) -> None:
        supervisor.log(f"signal {signum}: going down")
        threading.Thread(target=lambda: (supervisor.down(), supervisor.shutdown_server()),
                         daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        supervisor.build()
    except BaseException as exc:
        message = str(exc) if isinstance(exc, readiness.NotReady | netns.NetworkError) else (
            f"{type(exc).__name__}: {exc}")
        supervisor.log("bring-up failed:\n" + traceback.format_exc())
        supervisor.down()
        with contextlib.suppress(OSError):
            ready.write(json.dumps({"ok": False, "error": message}) + "\n")
            ready.close()
        return 1
    supervisor.bind()
    with contextlib.suppress(OSError):
        ready.write(json.dumps({"ok": True}) + "\n")
        ready.close()
    supervisor.serve_forever()
    supervisor.down()
    return 0


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    sys.exit(main())
