"""Seeded case generators for the fuzzing targets of issue 13 ("Also build").

Plain `random.Random(seed)`: a failing case is reproduced by its seed and index, and the suite
needs no extra dependency. tests/test_fuzz.py runs each target for a few seconds;
bench/fuzz.py runs 10,000 cases per target and prints the counts.

Each generator mutates a *valid* message (so the cases get past the first check and reach the
deeper ones) with one of: a field dropped, a field's value replaced by a hostile value, a key
added, or the bytes cut, flipped or replaced by noise.
"""

from __future__ import annotations

import json
import random

HOSTILE_VALUES: tuple = (
    None, True, -1, 0, 2**63, -(2**63) - 1, 1e308, 1.5, "", " ", "²", "１２", "٣", "\x00",
    "\ud7ff", "a" * 5000, "../../etc/passwd",
    "/abs", "%00", "${jndi}", [], [1, [2, [3]]], {}, {"a": {"b": {}}}, "9" * 400,
    "2024-13-45T99:99:99Z", "ABCD-1234", "T-1", "$SYS/#", "terminals/+/events",
)
NOISE = (b"", b"\x00", b"\xff\xfe", b"{", b"[]", b"null", b"1e999", b'"\\ud800"',
         b"{" * 2000 + b"}" * 2000, b"[" * 5000, b"\xc3\x28")


def mutate_object(rng: random.Random, base: dict) -> dict:
    data = dict(base)
    choice = rng.randrange(4)
    if choice == 0 and data:
        data.pop(rng.choice(list(data)))
    elif choice == 1 and data:
        data[rng.choice(list(data))] = rng.choice(HOSTILE_VALUES)
    elif choice == 2:
        data[rng.choice(["x", "__proto__", "cmd", "id", "type"])] = rng.choice(HOSTILE_VALUES)
    else:
        for key in list(data):
            if rng.random() < 0.5:
                data[key] = rng.choice(HOSTILE_VALUES)
    return data


def mutate_bytes(rng: random.Random, base: bytes) -> bytes:
    choice = rng.randrange(5)
    if choice == 0:
        return rng.choice(NOISE)
    if choice == 1 and base:
        return base[: rng.randrange(len(base))]
    if choice == 2 and base:
        raw = bytearray(base)
        for _ in range(rng.randrange(1, 8)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        return bytes(raw)
    if choice == 3:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
    return base


def json_case(rng: random.Random, base: dict) -> bytes:
    """A mutated object as JSON, or mutated bytes of the valid one."""
    if rng.random() < 0.7:
        return json.dumps(mutate_object(rng, base), allow_nan=False,
                          default=str).encode(errors="surrogatepass")
    return mutate_bytes(rng, json.dumps(base).encode())


# -------------------------------------------------------------------------- per target

HELLO = {"serial": "T-1", "version": 20240101, "hardware": "rpi4",
         "identity_key": "A" * 43, "commitment": "0" * 64}
GATE_PATHS = ("/api/v1/hello", "/api/v1/checkin", "/api/v1/session", "/api/v1/session?wait=²",
              "/api/v1/pairing/x/reveal", "/api/v1/pairing/%00?wait=5",
              "/api/v1/master/credentials", "/api/v1/logs/c-1", "/api/v1/firmware/²/bundle",
              "/api/v1/firmware/" + "9" * 60 + "/bundle", "/api/v1/nope")
HEADER_VALUES = ("T-1", "²", "9" * 30, "-1", "A" * 86, "0" * 64, "", "..", "1 1")


def gate_case(rng: random.Random) -> tuple[str, str, dict[str, str], bytes]:
    path = rng.choice(GATE_PATHS)
    method = "GET" if "session" in path or "bundle" in path or "?wait" in path else "POST"
    headers = {}
    for name in ("X-BATM-Serial", "X-BATM-Timestamp", "X-BATM-Signature", "X-BATM-Nonce",
                 "X-BATM-Content-SHA256", "Range"):
        if rng.random() < 0.5:
            headers[name] = rng.choice(HEADER_VALUES)
    return method, path, headers, json_case(rng, HELLO)


CONTROL = {"cmd": "set_server", "address": "192.0.2.1", "pin": "123456", "session": "x",
           "type": "event.x", "data": {}}
CONTROL_COMMANDS = ("ping", "status", "screen", "set_server", "record_event", "admin_state",
                    "admin_unlock", "admin_set_pin", "admin_info", "admin_set_server",
                    "admin_touch", "admin_lock", "admin_nope", "nope")


def control_line(rng: random.Random) -> bytes:
    base = dict(CONTROL, cmd=rng.choice(CONTROL_COMMANDS))
    return json_case(rng, base).replace(b"\n", b" ")


CONSOLE_WORDS = ("status", "screen", "set-server", "set_server", "help", "on", "off",
                 "192.0.2.1", "[::1]:99999", "²", "1" * 300, "\x1b[A", "\x00", "'", '"')


def console_line(rng: random.Random) -> bytes:
    words = [rng.choice(CONSOLE_WORDS) for _ in range(rng.randrange(0, 5))]
    line = " ".join(words).encode()
    return line if rng.random() < 0.8 else mutate_bytes(rng, line)


STATUS = {"online": True, "version": 20240101, "slot": "a", "state": "InService",
          "screen": "in_service", "last_update": "2024-01-01T00:00:00Z", "uptime": 5}
EVENT = {"id": "e-1", "type": "cash.dispensed", "at": "2024-01-01T00:00:00Z", "data": {}}
RESULT = {"command_id": "c-1", "ok": True, "result": {}, "error": None}


def mqtt_case(rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choice(("status", "events", "results"))
    base = {"status": STATUS, "events": EVENT, "results": RESULT}[kind]
    return kind, json_case(rng, base)


def manifest_case(rng: random.Random, valid: bytes) -> bytes:
    if rng.random() < 0.6:
        return json_case(rng, json.loads(valid))
    return mutate_bytes(rng, valid)
