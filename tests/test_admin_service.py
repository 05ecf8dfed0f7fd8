"""AdminService (the admin_* control commands) and its routing through the control socket."""

from __future__ import annotations

import os

import pytest

from agent.admin.network import read_network
from agent.admin.service import AdminService
from agent.control.screen_bus import ScreenBus
from agent.control.server import ControlServerThread
from agent.hardware import active_slot
from batm_common.control_client import ControlClient
from batm_common.control_commands import AdminCommand
from batm_common.hostaddr import parse_server_address

FAST = {"n": 2**4, "r": 8, "p": 1}
NEW_PIN = "482913"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal:
    """What the daemon gives the service: status, set_server, reboot."""

    def __init__(self) -> None:
        self.server: str | None = None
        self.reboots = 0

    def status(self) -> dict:
        return {"serial": "BT1", "version": 20230801, "state": "no_server", "paired": False,
                "server": self.server, "server_key_fingerprint": None}

    def set_server(self, address: str) -> str:
        self.server = str(parse_server_address(address))
        return self.server

    def reboot(self) -> None:
        self.reboots += 1


@pytest.fixture
def terminal() -> Terminal:
    return Terminal()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def admin(tmp_path, terminal, clock) -> AdminService:
    slots = tmp_path / "slots"
    (slots / "b").mkdir(parents=True)
    os.symlink("b", slots / "active")
    return AdminService(tmp_path, status=terminal.status, set_server=terminal.set_server,
                        reboot=terminal.reboot, slots_dir=slots, clock=clock, wall_clock=clock,
                        network=lambda: {"interfaces": [], "gateway": None, "dns": []},
                        scrypt_params=FAST)


def unlocked(admin: AdminService) -> str:
    """A full session: factory PIN, changed to NEW_PIN, unlocked again."""
    first = admin.handle("admin_unlock", {"pin": "000000"})
    assert first["ok"] and first["must_change"]
    assert admin.handle("admin_set_pin", {"session": first["session"], "new": NEW_PIN})["ok"]
    again = admin.handle("admin_unlock", {"pin": NEW_PIN})
    assert again["ok"] and not again["must_change"]
    return again["session"]


def test_factory_pin_session_may_only_change_the_pin(admin, terminal):
    session = admin.handle("admin_unlock", {"pin": "000000"})["session"]
    refused = admin.handle("admin_set_server", {"session": session, "address": "192.0.2.1"})
    assert refused["code"] == "must_change" and terminal.server is None
    bad = admin.handle("admin_set_pin", {"session": session, "new": "111111"})
    assert bad["code"] == "invalid_pin" and "repeat" in bad["error"]
    assert admin.handle("admin_set_pin", {"session": session, "new": NEW_PIN})["ok"]
    assert admin.handle("admin_set_server",
                        {"session": session, "address": "192.0.2.1"})["server"] == "192.0.2.1:8443"


def test_set_server_is_validated_with_the_reason(admin, terminal):
    session = unlocked(admin)
    answer = admin.handle("admin_set_server", {"session": session, "address": "192.0.2.1:99999"})
    assert answer == {"ok": False, "code": "invalid_address", "reason": "the port 99999 is "
                      "outside 1-65535", "error": "invalid server address '192.0.2.1:99999': "
                      "the port 99999 is outside 1-65535"}
    assert terminal.server is None
    answer = admin.handle("admin_set_server", {"session": session, "address": "gate.example:9"})
    assert answer == {"ok": True, "server": "gate.example:9"}


def test_five_wrong_pins_lock_and_the_state_says_so(admin):
    for left in (4, 3, 2, 1):
        answer = admin.handle("admin_unlock", {"pin": "123123"})
        assert answer["code"] == "wrong_pin" and answer["tries_left"] == left
    answer = admin.handle("admin_unlock", {"pin": "123123"})
    assert answer["code"] == "locked" and answer["locked_for"] == 30
    assert admin.handle("admin_unlock", {"pin": "000000"})["code"] == "locked"
    assert admin.handle("admin_state", {})["locked_for"] == 30


def test_sessions_expire_after_the_idle_period_and_on_lock(admin, clock):
    session = unlocked(admin)
    clock.now += 80
    assert admin.handle("admin_touch", {"session": session})["ok"]
    clock.now += 80  # 80 s since the touch: still within 90 s
    assert admin.handle("admin_info", {"session": session})["ok"]
    clock.now += 91
    assert admin.handle("admin_info", {"session": session})["code"] == "session"
    session = admin.handle("admin_unlock", {"pin": NEW_PIN})["session"]
    assert admin.handle("admin_lock", {"session": session})["ok"]
    assert admin.handle("admin_info", {"session": session})["code"] == "session"


@pytest.mark.parametrize("session", [None, "", "forged", 42])
def test_commands_need_the_session(admin, session, terminal):
    unlocked(admin)
    answer = admin.handle("admin_reboot", {"session": session})
    assert answer["code"] == "session" and terminal.reboots == 0


def test_info_reboot_and_pin_change(admin, terminal):
    session = unlocked(admin)
    info = admin.handle("admin_info", {"session": session})
    assert info["terminal"]["serial"] == "BT1" and info["terminal"]["active_slot"] == "b"
    assert info["vpn"] == {"state": "not configured"} and info["network"]["dns"] == []
    wrong_old = admin.handle("admin_set_pin", {"session": session, "old": "1", "new": "918273"})
    assert wrong_old["code"] == "invalid_pin" and "current PIN is wrong" in wrong_old["error"]
    assert admin.handle("admin_set_pin",
                        {"session": session, "old": NEW_PIN, "new": "918273"})["ok"]
    assert admin.handle("admin_reboot", {"session": session}) == {"ok": True}
    assert terminal.reboots == 1


def test_unknown_and_malformed_admin_commands(admin):
    assert "admin_unlock" in admin.handle("admin_format_disk", {})["error"]
    assert admin.handle("admin_unlock", {"pin": 0})["code"] == "bad_request"


@pytest.mark.parametrize("command", list(AdminCommand))
def test_every_catalogued_admin_command_is_answered(admin, command):
    session = unlocked(admin)
    answer = admin.handle(command, {"session": session})
    assert "unknown command" not in answer.get("error", "")


def test_a_broken_info_source_does_not_break_the_page(admin):
    session = unlocked(admin)
    admin.network = lambda: 1 / 0
    info = admin.handle("admin_info", {"session": session})
    assert info["ok"] and "division" in info["network"]["error"]


def test_read_network_from_fake_os_files(tmp_path):
    sys_net = tmp_path / "net"
    (sys_net / "eth9").mkdir(parents=True)
    (sys_net / "eth9" / "operstate").write_text("down\n")
    route = tmp_path / "route"
    route.write_text("Iface\tDestination\tGateway\tFlags\n"
                     "eth0\t00000000\t010200C0\t0003\n")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# comment\nnameserver 192.0.2.53\nnameserver 2001:db8::53\n")
    info = read_network(sys_net, route, resolv)
    assert info["gateway"] == "192.0.2.1" and info["gateway_interface"] == "eth0"
    assert info["dns"] == ["192.0.2.53", "2001:db8::53"]
    assert any(i["name"] == "eth9" and i["link"] == "down" for i in info["interfaces"])
    missing = read_network(tmp_path / "x", tmp_path / "y", tmp_path / "z")
    assert missing["gateway"] is None and missing["dns"] == []


def test_active_slot_without_a_slots_dir(tmp_path):
    assert active_slot(None) is None and active_slot(tmp_path) is None


# --- routing through the control socket ---------------------------------------------------------

class Backend(Terminal):
    def __init__(self, admin_factory=None) -> None:
        super().__init__()
        self.bus = ScreenBus({"screen": "set_server"})
        if admin_factory:
            self.admin = admin_factory(self)


def test_control_socket_routes_admin_commands(tmp_path):
    backend = Backend(lambda b: AdminService(tmp_path, status=b.status, set_server=b.set_server,
                                             reboot=b.reboot, scrypt_params=FAST))
    with ControlServerThread(tmp_path / "control.sock", backend), \
            ControlClient(tmp_path) as client:
        answer = client.request({"cmd": "admin_unlock", "pin": "000000"})
        assert answer["ok"] and answer["must_change"]
        assert client.request({"cmd": "ping"}) == {"ok": True}
        unknown = client.request({"cmd": "nope"})
        assert "admin_*" in unknown["error"]


def test_a_backend_without_admin_refuses_admin_commands(tmp_path):
    with ControlServerThread(tmp_path / "control.sock", Backend()), \
            ControlClient(tmp_path) as client:
        answer = client.request({"cmd": "admin_unlock", "pin": "000000"})
        assert answer == {"ok": False, "error": "this agent has no advanced administration"}


# --- issue 13, item 4: re-pointing a paired terminal needs the PIN ------------------------------

class PairedBackend(Backend):
    def __init__(self, tmp_path) -> None:
        super().__init__(lambda b: AdminService(tmp_path, status=b.status,
                                                set_server=b.set_server, reboot=b.reboot,
                                                scrypt_params=FAST))
        self.server = "192.0.2.10:8443"
        self.paired = True

    def status(self) -> dict:
        return super().status() | {"paired": self.paired}


def test_set_server_on_a_paired_terminal_needs_the_admin_pin(tmp_path):
    """The attack: anybody in the display's group (or at the serial console) re-points a paired
    terminal, dropping its pinned server key, with no PIN."""
    backend = PairedBackend(tmp_path)
    with ControlServerThread(tmp_path / "control.sock", backend), \
            ControlClient(tmp_path) as client:
        refused = client.request({"cmd": "set_server", "address": "203.0.113.66"})
        assert refused["ok"] is False and refused["code"] == "pin_required"
        wrong = client.request({"cmd": "set_server", "address": "203.0.113.66", "pin": "999999"})
        assert wrong["code"] == "wrong_pin"
        factory = client.request({"cmd": "set_server", "address": "203.0.113.66",
                                  "pin": "000000"})
        assert factory["code"] == "must_change"  # the factory PIN is public: not enough
        assert backend.server == "192.0.2.10:8443"
        unlocked(backend.admin)  # the PIN becomes NEW_PIN
        done = client.request({"cmd": "set_server", "address": "203.0.113.7", "pin": NEW_PIN})
        assert done == {"ok": True, "server": "203.0.113.7:8443"}
        backend.paired = False  # a fresh (or unpaired) terminal: the technician needs no PIN
        assert client.request({"cmd": "set_server", "address": "192.0.2.1"})["ok"]


def test_the_display_gets_only_the_commands_it_needs(tmp_path, monkeypatch):
    """A client that is neither root nor the agent's user is the display (group access)."""
    monkeypatch.setattr("agent.control.server.peer_uid", lambda _writer: 4242)
    backend = Backend(lambda b: AdminService(tmp_path, status=b.status, set_server=b.set_server,
                                             reboot=b.reboot, scrypt_params=FAST))
    with ControlServerThread(tmp_path / "control.sock", backend), \
            ControlClient(tmp_path) as client:
        for refused in ({"cmd": "set_server", "address": "203.0.113.66"},
                        {"cmd": "record_event", "type": "x", "data": None},
                        {"cmd": "status"}):
            answer = client.request(refused)
            assert answer["ok"] is False and "not available to the display" in answer["error"]
        assert backend.server is None
        assert client.request({"cmd": "ping"}) == {"ok": True}
        assert client.request({"cmd": "screen"})["screen"]["screen"] == "set_server"
        assert client.request({"cmd": "admin_state"})["ok"]
