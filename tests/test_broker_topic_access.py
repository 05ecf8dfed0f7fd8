"""A terminal's credentials reach its own topics and nothing else, on a real Mosquitto.

The attacker is a thief with one terminal's credentials (T-ALICE's). The rules that confine it
are split between the dynamic-security plugin (the subscriptions it may make) and the broker's
ACL file (its own topics, by its username: master/dynsec.py says why). Each refusal below is
checked against a message that does arrive, sent after it on the same path, so a rule that let
everything through, or nothing, fails here.
"""

from __future__ import annotations

import json
import secrets
import socket
import ssl
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from test_broker_revocation import A, B, Rig, broker_rig  # noqa: F401 (the `rig` fixture)
from waiting import wait_for

from server.master.broker import DYNSEC_FILE
from server.master.dynsec import ADMIN_USER, TERMINAL_ROLE, password_hash


class Seen:
    """What one client received and the answers to its subscriptions."""

    def __init__(self, client: mqtt.Client) -> None:
        self.client = client
        self.messages: list[tuple[str, bytes, bool]] = []
        self.subacks: dict[int, mqtt.ReasonCode] = {}
        self._lock = threading.Lock()
        client.on_message = self._message
        client.on_subscribe = self._subscribed

    def _message(self, _client, _userdata, message) -> None:
        with self._lock:
            self.messages.append((message.topic, message.payload, message.retain))

    def _subscribed(self, _client, _userdata, mid, reason_codes, _properties) -> None:
        self.subacks[mid] = reason_codes[0]

    def subscribe(self, topic_filter: str) -> mqtt.ReasonCode:
        _, mid = self.client.subscribe(topic_filter, qos=1)
        return wait_for(lambda: self.subacks.get(mid), 5, f"SUBACK for {topic_filter}")

    def payloads(self) -> list[bytes]:
        with self._lock:
            return [payload for _topic, payload, _retain in self.messages]


def thief(rig: Rig) -> Seen:
    """T-ALICE's client, with T-ALICE's real credentials (B is granted too)."""
    password = secrets.token_urlsafe(32)
    rig.link.grant(A, password)
    rig.link.grant(B, secrets.token_urlsafe(32))
    rc, _lost = rig.connect(A, password)
    assert rc is not None and not rc.is_failure
    return Seen(rig.clients[-1])


def server_client(rig: Rig) -> Seen:
    """A client of the server's own user, on the broker's local listener."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2,
                         client_id=f"batm:test-observer-{secrets.token_hex(4)}")
    client.username_pw_set(ADMIN_USER, rig.broker.admin_password)
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    client.connect("127.0.0.1", rig.broker.admin_port, keepalive=10)
    client.loop_start()
    rig.clients.append(client)
    assert connected.wait(5), "the server's user did not connect"
    return Seen(client)


def test_a_terminal_may_subscribe_only_to_single_command_and_ack_topics(rig):
    alice = thief(rig)
    for refused in (f"terminals/{B}/status", f"terminals/{A}/status", "terminals/+/commands",
                    "terminals/+/acks", "terminals/+/+", "terminals/#", "#", "+/+/+",
                    "$CONTROL/dynamic-security/v1/response", "$CONTROL/#", "$SYS/#",
                    f"$share/x/terminals/{B}/commands", "$share/batm/terminals/+/status"):
        assert alice.subscribe(refused).is_failure, f"a terminal subscribed to {refused}"
    for own in (f"terminals/{A}/commands", f"terminals/{A}/acks"):
        assert not alice.subscribe(own).is_failure, f"a terminal was refused {own}"


def test_another_terminals_commands_and_acks_never_reach_a_terminal(rig):
    alice = thief(rig)
    server = server_client(rig)
    # Retained before the thief subscribes: delivered at SUBSCRIBE, if at all.
    server.client.publish(f"terminals/{B}/commands", b"retained for B", qos=1,
                          retain=True).wait_for_publish(5)
    # The plugin cannot tell a terminal's own serial: the subscription itself may succeed.
    for topic in (f"terminals/{B}/commands", f"terminals/{B}/acks", f"terminals/{A}/commands"):
        alice.subscribe(topic)
    server.client.publish(f"terminals/{B}/commands", b"live for B", qos=1).wait_for_publish(5)
    server.client.publish(f"terminals/{B}/acks", b"ack for B", qos=1).wait_for_publish(5)
    server.client.publish(f"terminals/{A}/commands", b"for A", qos=1).wait_for_publish(5)
    # The broker delivers to one subscriber in the order it took the messages in.
    wait_for(lambda: b"for A" in alice.payloads(), 5, "A's own command")
    assert alice.payloads() == [b"for A"], f"a terminal received {alice.messages}"


def test_a_terminal_publishes_only_its_own_status_events_and_results(rig):
    alice = thief(rig)
    server = server_client(rig)
    server.subscribe("terminals/#")
    attempts = [(f"terminals/{B}/status", False), (f"terminals/{B}/events", False),
                (f"terminals/{B}/results", False),
                # a retained command planted for itself, or for the next owner of the serial
                (f"terminals/{A}/commands", True), (f"terminals/{A}/acks", False),
                ("terminals/x", False)]
    for topic, retain in attempts:
        alice.client.publish(topic, b"forged " + topic.encode(), qos=1,
                             retain=retain).wait_for_publish(5)
    alice.client.publish("$CONTROL/dynamic-security/v1", json.dumps(
        {"commands": [{"command": "deleteClient", "username": B}]}), qos=1).wait_for_publish(5)
    own = [f"terminals/{A}/{kind}" for kind in ("status", "events", "results")]
    for topic in own:
        alice.client.publish(topic, b"own", qos=1).wait_for_publish(5)
    wait_for(lambda: len(server.messages) >= len(own), 5, "A's own messages")
    assert [topic for topic, _payload, _retain in server.messages] == own, \
        f"a terminal published {server.messages}"
    # Nothing was planted: a new subscriber to A's commands gets no retained message.
    late = server_client(rig)
    late.subscribe(f"terminals/{A}/commands")
    late.client.publish(f"terminals/{A}/commands", b"marker", qos=1).wait_for_publish(5)
    wait_for(lambda: b"marker" in late.payloads(), 5, "the marker")
    assert late.payloads() == [b"marker"]
    # And B's account is still there: the forged dynsec command did nothing.
    assert B in {c["username"] for c in rig.dynsec_file()["clients"]}


def test_a_terminals_will_goes_only_to_its_own_topics(rig):
    """The last will is published for the client when its connection drops: the same rule as
    its own publishing, checked when the broker sends it."""
    password = secrets.token_urlsafe(32)
    rig.link.grant(A, password)
    rig.link.grant(B, secrets.token_urlsafe(32))
    server = server_client(rig)
    server.subscribe("terminals/#")
    for will_topic in (f"terminals/{B}/status", f"terminals/{A}/status"):
        client = connect_with_will(rig, password, will_topic)
        # The connection ends without a DISCONNECT: the broker sends the will (if allowed).
        client.socket().shutdown(socket.SHUT_RDWR)
        client.loop_stop()
    wait_for(lambda: server.messages, 5, "A's own will")
    assert [topic for topic, _payload, _retain in server.messages] == [f"terminals/{A}/status"]


def connect_with_will(rig: Rig, password: str, will_topic: str) -> mqtt.Client:
    context = ssl.create_default_context(cafile=str(rig.certs.ca_cert_path))
    context.check_hostname = False
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=A, reconnect_on_failure=False)
    client.username_pw_set(A, password)
    client.tls_set_context(context)
    client.will_set(will_topic, b"offline", qos=1)
    answers: list = []
    client.on_connect = lambda _c, _u, _f, reason_code, _p: answers.append(reason_code)
    client.connect("127.0.0.1", rig.broker.mqtt_port, keepalive=10)
    client.loop_start()
    [answer] = wait_for(lambda: answers, 5, "CONNACK")
    assert not answer.is_failure, f"A's own credentials were refused: {answer}"
    return client


def test_a_terminal_granted_by_an_older_server_keeps_its_topics_after_the_upgrade(rig):
    """An older server gave each terminal a role of its own; the first start of this one moves
    the terminal to the shared role without new credentials, and its rules still hold."""
    password = secrets.token_urlsafe(32)
    rig.broker.stop()
    path = rig.broker.dir / DYNSEC_FILE
    data = json.loads(path.read_text())
    prefix = f"terminals/{A}/"
    data["roles"].append({"rolename": f"terminal-{A}", "acls": [
        {"acltype": acltype, "topic": prefix + kind, "priority": 0, "allow": True}
        for acltype, kind in (("publishClientSend", "status"), ("publishClientSend", "events"),
                              ("publishClientSend", "results"),
                              ("subscribePattern", "commands"), ("subscribePattern", "acks"))]})
    data["clients"].append({"username": A, "clientid": A, **password_hash(password),
                            "roles": [{"rolename": f"terminal-{A}"}]})
    data["defaultACLAccess"]["publishClientReceive"] = True
    path.write_text(json.dumps(data))
    rig.broker.start()

    converted = rig.dynsec_file()
    assert [c["roles"] for c in converted["clients"] if c["username"] == A] == [
        [{"rolename": TERMINAL_ROLE}]]
    assert f"terminal-{A}" not in {r["rolename"] for r in converted["roles"]}
    rc, _lost = rig.connect(A, password)
    assert rc is not None and not rc.is_failure, f"the older server's account was refused: {rc}"
    alice = Seen(rig.clients[-1])
    assert alice.subscribe(f"terminals/{B}/status").is_failure
    alice.subscribe(f"terminals/{B}/commands")
    alice.subscribe(f"terminals/{A}/commands")
    server = server_client(rig)
    server.subscribe("terminals/#")
    server.client.publish(f"terminals/{B}/commands", b"for B", qos=1).wait_for_publish(5)
    server.client.publish(f"terminals/{A}/commands", b"for A", qos=1).wait_for_publish(5)
    alice.client.publish(f"terminals/{B}/status", b"forged", qos=1).wait_for_publish(5)
    alice.client.publish(f"terminals/{A}/status", b"own", qos=1).wait_for_publish(5)
    wait_for(lambda: b"for A" in alice.payloads(), 5, "A's own command")
    wait_for(lambda: b"own" in server.payloads(), 5, "A's own status")
    assert alice.payloads() == [b"for A"]
    assert b"forged" not in server.payloads()
