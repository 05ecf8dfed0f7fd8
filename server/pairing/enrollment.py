"""Bulk enrollment: the operator pre-approves terminals by their identity keys, many at once.

For fleets (issue 12). Pairing one terminal at a time needs a person to read each code; a fleet
of thousands comes from a factory that made each terminal's identity key on the device and
exported the public half with its serial. The operator vouches for that list exactly as an
approval vouches for a code: enrolling makes each terminal paired with the listed key. The
terminal then does what any paired terminal does — signs its requests with that key, and
obtains its own broker account through the signed `POST /api/v1/master/credentials` with a
password it made itself. Nothing else changes: unpair, revocation and re-pairing work as for a
terminal paired with a code.

For large fleets an entry may also carry the terminal's broker account as the hash the
dynamic-security plugin stores (`"mqtt": {"password", "salt", "iterations"}`: PBKDF2-SHA512 of
a password the terminal made; the server never sees the password). Creating accounts one by
one through the plugin costs O(N²) — Mosquitto 2.0 rewrites its whole JSON file after every
command (measured: 3,000 terminals took 5 minutes, 50,000 would take ≈ 15 hours) — so these
are written into the plugin's file together and the broker restarts once per request
(master/broker.py `add_accounts`); connected terminals reconnect, nothing is lost. The terminal
then needs no credentials request: its check-in answers where its broker is.

A serial that exists is enrolled only if it was never paired (the operator may create first);
a paired or unpaired one is refused, so enrollment can never replace a key silently — that is
what approving a new code is for. One request is one transaction: all or nothing.
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

from batm_common.signing import unb64url
from server.db.terminals import Terminal
from server.errors import ServiceError, bad_request
from server.pairing.registry import MAX_LOCATION, SCENARIOS, serial_problem
from server.pairing.states import TerminalState
from server.pairing.transactions import Transactions

log = logging.getLogger(__name__)

MAX_ENROLL = 10000  # terminals per request (the admin API allows this path MAX_ENROLL_BODY)
MAX_ENROLL_BODY = 8 * 1024 * 1024
IDENTITY_KEY_BYTES = 32  # Ed25519 public key, raw
SHA512_BYTES = 64
MAX_ITERATIONS = 10_000_000


def _account(value: object, where: str) -> dict | None:
    """The dynsec password fields of an entry's "mqtt", checked; None when absent."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_request(f"{where}.mqtt: must be an object with password, salt, iterations")
    try:
        digest = unb64std(value.get("password"))
        salt = unb64std(value.get("salt"))
    except ValueError:
        digest = salt = b""
    iterations = value.get("iterations")
    if len(digest) != SHA512_BYTES or not 8 <= len(salt) <= 64:
        raise bad_request(f"{where}.mqtt: password must be a PBKDF2-SHA512 digest (64 bytes) "
                          "and salt 8-64 bytes, both in base64")
    if not isinstance(iterations, int) or isinstance(iterations, bool) \
            or not 1 <= iterations <= MAX_ITERATIONS:
        raise bad_request(f"{where}.mqtt: iterations must be a whole number 1-{MAX_ITERATIONS}")
    return {"password": value["password"], "salt": value["salt"], "iterations": iterations}


def unb64std(text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not text")
    return base64.b64decode(text, validate=True)


def _entry(item: object, index: int) -> tuple[str, bytes, str | None, dict | None]:
    where = f"terminals[{index}]"
    if not isinstance(item, dict):
        raise bad_request(f"{where}: must be an object with serial and identity_key")
    serial = item.get("serial")
    problem = serial_problem(serial)
    if problem:
        raise bad_request(f"{where}: {problem}")
    key_text = item.get("identity_key")
    try:
        key = unb64url(key_text) if isinstance(key_text, str) else b""
    except ValueError:
        key = b""
    if len(key) != IDENTITY_KEY_BYTES:
        raise bad_request(f"{where}: identity_key must be a raw Ed25519 public key "
                          f"({IDENTITY_KEY_BYTES} bytes) in base64url")
    location = item.get("location")
    if location is not None and (not isinstance(location, str) or len(location) > MAX_LOCATION):
        raise bad_request(f"{where}: location must be text of at most {MAX_LOCATION} characters")
    return str(serial), key, location, _account(item.get("mqtt"), where)


def read_enrollment_file(path: Path) -> list[dict]:
    """The CLI's input: one JSON object a line ({"serial", "identity_key", "mqtt"?,
    "location"?}); blank lines are skipped. 400 naming the line that is not an object."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise bad_request(f"cannot read {path}: {exc}") from None
    items = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            item = None
        if not isinstance(item, dict):
            raise bad_request(f"{path} line {number}: not a JSON object "
                              '(expected {"serial": …, "identity_key": …})')
        items.append(item)
    if not items:
        raise bad_request(f"{path} lists no terminals")
    return items


class Enrollment:
    def __init__(self, transactions: Transactions):
        self._tx = transactions

    def enroll(self, scenario: object, items: object) -> tuple[dict, dict[str, dict]]:
        """Pair every listed terminal with its key, in one transaction: ({"enrolled": n},
        the broker accounts listed, by serial)."""
        if scenario not in SCENARIOS:
            raise bad_request(f"the scenario must be 'A' or 'B', not {scenario!r}")
        if not isinstance(items, list) or not items:
            raise bad_request("terminals: must be a non-empty list")
        if len(items) > MAX_ENROLL:
            raise bad_request(f"terminals: at most {MAX_ENROLL} per request, got {len(items)}; "
                              "send the rest in further requests")
        entries = [_entry(item, i) for i, item in enumerate(items)]
        serials = [entry[0] for entry in entries]
        if len(set(serials)) != len(serials):
            twice = sorted({s for s in serials if serials.count(s) > 1})
            raise bad_request(f"terminals: listed more than once: {', '.join(twice[:5])}")
        with self._tx.begin() as tx:
            existing = {t.serial: t for t in tx.session.query(Terminal)
                        .filter(Terminal.serial.in_(serials))}
            taken = [s for s, t in existing.items() if t.state != TerminalState.NEVER_PAIRED]
            if taken:
                raise ServiceError(
                    409, "exists",
                    f"{len(taken)} of these terminals were paired before "
                    f"({', '.join(sorted(taken)[:5])}); enrollment never replaces a key — "
                    "unpair and pair them with their code, or delete them first")
            for serial, key, location, _account in entries:
                terminal = existing.get(serial)
                if terminal is None:
                    terminal = Terminal(serial=serial, scenario=scenario, location=location,
                                        created_at=tx.now)
                    tx.session.add(terminal)
                terminal.state = TerminalState.PAIRED
                terminal.identity_key = key
                terminal.paired_at = tx.now
            log.info("%d terminal(s) enrolled (scenario %s)", len(entries), scenario)
        accounts = {entry[0]: entry[3] for entry in entries if entry[3] is not None}
        return {"enrolled": len(entries), "accounts": len(accounts)}, accounts
