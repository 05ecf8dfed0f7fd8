"""A one-shot MQTT client for the HIL suite, run inside a rig namespace (`ip netns exec`):

    python -m sim.mqtt_probe --broker HOST:PORT [--ca FILE] --username U --password P
        [--subscribe TOPIC] [--publish TOPIC PAYLOAD]... [--publish-size TOPIC BYTES]
        [--expect N] [--timeout S]

Prints one JSON object: {"connack": code, "reason": str, "messages": [{"topic", "payload"}]}.
It connects with the given credentials (TLS when --ca is given), subscribes, publishes, and
collects up to N messages. Exit 0 whatever the broker said: the caller judges the answer.
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sim.mqtt_probe")
    parser.add_argument("--broker", required=True)
    parser.add_argument("--ca")
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--client-id", default=f"probe-{time.monotonic_ns()}")
    parser.add_argument("--subscribe")
    parser.add_argument("--publish", nargs=2, action="append", default=[],
                        metavar=("TOPIC", "PAYLOAD"))
    parser.add_argument("--publish-size", nargs=2, action="append", default=[],
                        metavar=("TOPIC", "BYTES"))
    parser.add_argument("--expect", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    host, port = args.broker.rsplit(":", 1)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=args.client_id,
                         reconnect_on_failure=False)
    client.username_pw_set(args.username, args.password)
    if args.ca:
        context = ssl.create_default_context(cafile=args.ca)
        context.check_hostname = False
        client.tls_set_context(context)
    connected = threading.Event()
    subscribed = threading.Event()
    done = threading.Event()
    answer: dict = {"connack": None, "reason": "no answer", "messages": []}

    def on_connect(c, _u, _f, reason_code, _p):
        answer["connack"], answer["reason"] = reason_code.value, str(reason_code)
        connected.set()
        if not reason_code.is_failure and args.subscribe:
            c.subscribe(args.subscribe, qos=1)
        elif not reason_code.is_failure:
            subscribed.set()

    def on_subscribe(_c, _u, _mid, codes, _p):
        answer["suback"] = [code.value for code in codes]
        subscribed.set()

    def on_message(_c, _u, message):
        try:
            payload = json.loads(message.payload)
        except ValueError:
            payload = message.payload.decode(errors="replace")
        answer["messages"].append({"topic": message.topic, "payload": payload})
        if len(answer["messages"]) >= args.expect:
            done.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.on_connect_fail = lambda *_: connected.set()
    client.connect_async(host, int(port), keepalive=10)
    client.loop_start()
    connected.wait(args.timeout)
    if answer["connack"] == 0 and subscribed.wait(args.timeout):
        for topic, payload in args.publish:
            client.publish(topic, payload.encode(), qos=1).wait_for_publish(args.timeout)
        for topic, size in args.publish_size:
            client.publish(topic, b"x" * int(size), qos=1).wait_for_publish(args.timeout)
        if args.expect:
            done.wait(args.timeout)
    client.disconnect()
    client.loop_stop()
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
