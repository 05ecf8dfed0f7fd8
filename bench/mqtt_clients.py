"""Python MQTT clients receiving QoS 1 on this machine: messages per CPU-second (issue 12).

    .venv/bin/python bench/mqtt_clients.py [--messages 50000] [--size 300]

What the server's ingestion pays per message before the database: a plain Mosquitto on
loopback (no TLS: the server's own client uses the loopback listener), a persistent session
subscribed to bench/#, N status-sized messages queued for it while it is away, then each client
connects and drains them. The CPU time is the process's (every thread: paho's loop included),
from connect to the last message; the publisher is idle by then. Variants: paho (auto and
manual acknowledgement, as master/link.py), gmqtt, aiomqtt (paho underneath, an asyncio queue
on top), and the simulator's own client (sim/fleet/mqtt.py) as a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from sim.fleet.mqtt import MqttConnection

TOPIC = "bench/{}/status"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mosquitto(directory: Path, port: int, queued: int) -> subprocess.Popen:
    conf = directory / "mosquitto.conf"
    conf.write_text("\n".join([
        "per_listener_settings false", "allow_anonymous true", "persistence false",
        f"max_queued_messages {queued}", "max_inflight_messages 100", "set_tcp_nodelay true",
        "log_dest none", f"listener {port} 127.0.0.1", ""]))
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return proc
        time.sleep(0.02)
    proc.kill()
    raise SystemExit("mosquitto did not start (is the Debian package 'mosquitto' installed?)")


async def queue_messages(port: int, client_id: str, count: int, size: int) -> None:
    """Make the persistent session, leave, and queue `count` messages for it."""
    receiver = MqttConnection()
    await receiver.connect("127.0.0.1", port, None, client_id, "bench", "bench", clean=False)
    await receiver.subscribe(["bench/#"])
    await receiver.close()
    acked = asyncio.Event()
    left = [count]

    def on_puback(_mid: int) -> None:
        left[0] -= 1
        if left[0] == 0:
            acked.set()

    publisher = MqttConnection(on_puback=on_puback)
    await publisher.connect("127.0.0.1", port, None, "bench-pub", "bench", "bench", clean=True)
    payload = b"x" * size
    for i in range(count):
        publisher.publish(TOPIC.format(i % 1000), payload)
        if i % 500 == 499:
            await publisher.drain()
            while count - left[0] < i - 2000:  # stay within the broker's inflight window
                await asyncio.sleep(0.001)
    await asyncio.wait_for(acked.wait(), 120)
    await publisher.close()


def drain_paho(port: int, client_id: str, count: int, manual: bool) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    done = threading.Event()
    seen = [0]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                         manual_ack=manual)
    client.max_inflight_messages_set(100)

    def on_message(c, _u, message) -> None:
        if manual:
            c.ack(message.mid, message.qos)
        seen[0] += 1
        if seen[0] >= count:
            done.set()

    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    done.wait(300)
    client.disconnect()
    client.loop_stop()


def drain_gmqtt(port: int, client_id: str, count: int) -> None:
    from gmqtt import Client
    from gmqtt.mqtt.constants import MQTTv311

    async def run() -> None:
        done = asyncio.Event()
        seen = [0]
        client = Client(client_id, clean_session=False)

        def on_message(_client, _topic, _payload, _qos, _properties) -> int:
            seen[0] += 1
            if seen[0] >= count:
                done.set()
            return 0

        client.on_message = on_message
        await client.connect("127.0.0.1", port, version=MQTTv311)
        await asyncio.wait_for(done.wait(), 300)
        await client.disconnect()

    asyncio.run(run())


def drain_aiomqtt(port: int, client_id: str, count: int) -> None:
    import aiomqtt

    async def run() -> None:
        seen = 0
        async with aiomqtt.Client("127.0.0.1", port, identifier=client_id,
                                  clean_session=False) as client:
            async for _message in client.messages:
                seen += 1
                if seen >= count:
                    return

    asyncio.run(run())


def drain_minimal(port: int, client_id: str, count: int) -> None:
    async def run() -> None:
        done = asyncio.Event()
        seen = [0]

        def on_message(_topic: str, _payload: bytes) -> None:
            seen[0] += 1
            if seen[0] >= count:
                done.set()

        client = MqttConnection(on_message=on_message)
        await client.connect("127.0.0.1", port, None, client_id, "bench", "bench", clean=False)
        await asyncio.wait_for(done.wait(), 300)
        await client.close()

    asyncio.run(run())


VARIANTS = {
    "paho": lambda port, cid, n: drain_paho(port, cid, n, manual=False),
    "paho-manual-ack": lambda port, cid, n: drain_paho(port, cid, n, manual=True),
    "gmqtt": drain_gmqtt,
    "aiomqtt": drain_aiomqtt,
    "sim-minimal": drain_minimal,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/mqtt_clients.py")
    parser.add_argument("--messages", type=int, default=50000)
    parser.add_argument("--size", type=int, default=300, help="payload bytes (a status ≈ 300)")
    parser.add_argument("--only", choices=sorted(VARIANTS), action="append")
    args = parser.parse_args(argv)
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="batm-bench-mqtt-") as tmp:
        broker = start_mosquitto(Path(tmp), port, args.messages + 1000)
        try:
            print(f"{args.messages} QoS 1 messages of {args.size} bytes, drained from a "
                  "persistent session (loopback, no TLS)")
            for name in args.only or list(VARIANTS):
                client_id = f"bench-{name}"
                asyncio.run(queue_messages(port, client_id, args.messages, args.size))
                cpu, wall = time.process_time(), time.monotonic()
                VARIANTS[name](port, client_id, args.messages)
                cpu, wall = time.process_time() - cpu, time.monotonic() - wall
                print(f"  {name:16} {args.messages / cpu:9,.0f} msg per CPU-second "
                      f"({cpu / args.messages * 1e6:6.1f} CPU-µs/msg), "
                      f"{args.messages / wall:9,.0f} msg/s wall")
        finally:
            broker.terminate()
            broker.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
