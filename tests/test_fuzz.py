"""Fuzzing in the suite (issue 13, "Also build"): seeded, bounded to a few seconds per target.

Targets: the gate's routes, control-socket commands, serial-console lines, the MQTT payloads the
server ingests, bundle manifests. The property everywhere: no traceback, and every refusal in the
documented shape ({"error", "message"} from the gate, {"ok": false, "error"} from the agent's
sockets, a FirmwareError sentence from the updater). bench/fuzz.py runs the same targets for
10,000 cases each. A failure names the seed and the case number: rerun with FUZZ_SEED.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import random
import socket
import time

import fuzzing
import test_server_gate as gate_rig
from fake_agent import FakeAgent

from agent.admin.service import AdminService
from agent.console import Console
from agent.control.server import JSON_WHITESPACE, ControlServerThread
from firmware_updater.errors import FirmwareError
from firmware_updater.manifest import Manifest
from firmware_updater.testing import assemble, make_key
from server.db.engine import open_database
from server.db.terminals import Terminal
from server.master.ingest import Incoming, Ingest

SEED = int(os.environ.get("FUZZ_SEED", "13"))
BUDGET = float(os.environ.get("FUZZ_SECONDS", "2"))  # per target
CASES = int(os.environ.get("FUZZ_CASES", "0")) or None  # bench/fuzz.py: exactly this many
REPORT = os.environ.get("FUZZ_REPORT")  # bench/fuzz.py: one JSON line per target
short_dir, server, gate, admin = gate_rig.short_dir, gate_rig.server, gate_rig.gate, gate_rig.admin


def cases(target: str):
    """(index, rng) for each case until the time budget is spent (or FUZZ_CASES are run)."""
    rng = random.Random(SEED)
    started = time.monotonic()
    deadline = started + (BUDGET if CASES is None else float("inf"))
    index = 0
    while time.monotonic() < deadline and (CASES is None or index < CASES):
        yield index, rng
        index += 1
    if REPORT:
        with open(REPORT, "a") as out:
            out.write(json.dumps({"target": target, "cases": index, "seed": SEED,
                                  "seconds": round(time.monotonic() - started, 1)}) + "\n")


def check_gate_answer(response, case) -> None:
    assert response.status_code < 500, (case, response.status_code, response.text)
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error", "message"}, (case, body)


def test_gate_routes(gate, admin):
    gate_rig.create(admin, "T-1")
    count = 0
    for index, rng in cases("gate routes"):
        method, path, headers, body = fuzzing.gate_case(rng)
        raw_headers = {k: v.encode("latin-1") for k, v in headers.items()}  # "²" = b"\xb2"
        response = gate.request(method, path, headers=raw_headers,
                                content=body if method == "POST" else b"")
        check_gate_answer(response, (SEED, index, method, path, headers, body[:200]))
        count += 1
    assert count > 20


def line_answer(sock: socket.socket, line: bytes) -> dict:
    sock.sendall(line + b"\n")
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        assert chunk, "the agent closed the connection"
        data += chunk
    return json.loads(data)


def test_control_socket_commands(tmp_path):
    agent = FakeAgent(tmp_path)
    agent.backend.admin = AdminService(tmp_path, status=agent.backend.status,
                                       set_server=agent.backend.set_server,
                                       reboot=lambda: None,
                                       scrypt_params={"n": 2**4, "r": 8, "p": 1})
    with ControlServerThread(tmp_path / "control.sock", agent.backend), \
            socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(tmp_path / "control.sock"))
        sock.settimeout(10)
        for index, rng in cases("control socket"):
            line = fuzzing.control_line(rng)
            if not line.strip(JSON_WHITESPACE.encode()) or b'"subscribe"' in line:
                continue  # blank lines get no answer; subscribe streams
            answer = line_answer(sock, line)
            assert isinstance(answer.get("ok"), bool), (SEED, index, line, answer)
            if not answer["ok"]:
                assert isinstance(answer.get("error"), str), (SEED, index, line, answer)


class Port:
    def __init__(self):
        self.out = io.BytesIO()

    def write(self, data: bytes) -> None:
        self.out.write(data)


def test_serial_console_lines(tmp_path):
    agent = FakeAgent(tmp_path).start()
    try:
        console = Console("fuzz", str(tmp_path), json_mode=True)
        console.port = Port()
        for index, rng in cases("serial console"):
            line = fuzzing.console_line(rng)
            if line.split(b" ", 1)[0] in (b"wait",) or not line.strip():
                continue
            console.port.out = io.BytesIO()
            console.handle_line(line)
            out = console.port.out.getvalue()
            if not out:  # a line of (Unicode) whitespace: no answer, as for a blank line
                assert not line.decode(errors="replace").strip(), (SEED, index, line)
                continue
            reply = json.loads(out.splitlines()[-1])
            assert isinstance(reply.get("ok"), bool), (SEED, index, line, reply)
    finally:
        agent.stop()


def test_mqtt_payloads_the_server_ingests(tmp_path, database_url):
    sessions = open_database(tmp_path, database_url)
    with sessions() as session, session.begin():
        session.add(Terminal(serial="T-1", scenario="B", state="paired",
                             created_at=datetime.datetime.now(datetime.UTC)))
    ingest = Ingest(sessions)
    refused = total = 0
    for index, rng in cases("mqtt ingest"):
        kind, payload = fuzzing.mqtt_case(rng)
        try:
            result = ingest.ingest([Incoming("T-1", kind, payload)])
        except Exception as exc:  # pragma: no cover - the failure message is the point
            raise AssertionError((SEED, index, kind, payload[:300], exc)) from exc
        refused += result.refused
        total += 1
    assert total > 20 and refused > 0


def test_bundle_manifests(tmp_path):
    key = make_key(tmp_path, "fuzz")
    valid = assemble(tmp_path / "x.fw", b"x" * 100, [key]).canonical_bytes()
    for index, rng in cases("bundle manifest"):
        raw = fuzzing.manifest_case(rng, valid)
        try:
            Manifest.from_bytes(raw)
        except FirmwareError as exc:
            assert str(exc), (SEED, index, raw[:200])
        except Exception as exc:  # pragma: no cover
            raise AssertionError((SEED, index, raw[:300], repr(exc))) from exc
