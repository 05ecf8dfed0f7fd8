"""The terminal's MQTT credentials: a password it made itself, stored 0600 in the state dir.

The password (32 random bytes, base64url) is made here and sent once over the pinned, signed
gate channel; the server hands it to the broker's dynamic-security plugin, which keeps only a
salted hash. Unpair deletes this file together with the pairing.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from batm_common.atomic import atomic_write
from batm_common.hostaddr import AddressError, ServerAddress, parse_server_address
from batm_common.quarantine import Replacement, quarantine

log = logging.getLogger(__name__)

FILENAME = "mqtt-credentials.json"
PASSWORD = re.compile(r"^[A-Za-z0-9_-]{43}$")


class CredentialsError(ValueError):
    """The gate's answer or the stored file is unusable; str() says why."""


def new_password() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class MasterCredentials:
    broker: ServerAddress
    username: str
    password: str
    topic_prefix: str
    # The one id the broker lets these credentials use: the serial, or "<serial>@vpn" in
    # scenario A (bound to the tunnel listener); None from an older server (then the serial).
    client_id: str | None = None

    def to_json(self) -> dict:
        data = {"broker": str(self.broker), "username": self.username,
                "password": self.password, "topic_prefix": self.topic_prefix}
        return data | ({"client_id": self.client_id} if self.client_id else {})

    @classmethod
    def from_answer(cls, answer: object, password: str, serial: str) -> MasterCredentials:
        """From the gate's answer to POST /api/v1/master/credentials."""
        if not isinstance(answer, dict):
            raise CredentialsError("the answer is not a JSON object")
        try:
            broker = parse_server_address(str(answer.get("broker")))
        except AddressError as exc:
            raise CredentialsError(f"broker: {exc}") from exc
        username, prefix = answer.get("username"), answer.get("topic_prefix")
        if username != serial:
            raise CredentialsError(f"username {username!r} is not this terminal's serial")
        if prefix != f"terminals/{serial}/":
            raise CredentialsError(f"topic_prefix {prefix!r} is not terminals/{serial}/")
        if not PASSWORD.match(password):
            raise CredentialsError("the password is malformed")
        client_id = answer.get("client_id")
        if client_id is not None and client_id not in (serial, f"{serial}@vpn"):
            raise CredentialsError(f"client_id {client_id!r} is neither {serial} nor {serial}@vpn")
        return cls(broker, username, password, prefix, client_id)


class CredentialsStore:
    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / FILENAME

    def load(self, serial: str) -> MasterCredentials | None:
        """The stored credentials; None when absent or unusable (then obtained again)."""
        try:
            data = json.loads(self.path.read_text())
            return MasterCredentials.from_answer(data, str(data.get("password")), serial)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, AttributeError) as exc:
            # The identity key still proves who we are: new credentials cost one gate request.
            quarantine(self.path, f"unusable MQTT credentials ({exc})", Replacement.RECREATED)
            return None

    def save(self, credentials: MasterCredentials) -> None:
        atomic_write(self.path, (json.dumps(credentials.to_json()) + "\n").encode(), mode=0o600)

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)
