"""The dynamic-security plugin's file: the server's admin user, each terminal's client and role.

Who may do what on the broker (master/broker.py runs it): the server's admin user `batm:server`
(every dynsec command, every terminal topic, the replicas' shared subscriptions), and per
terminal a password client bound to its own client id with a role that allows only its own
topics. `reconcile_dynsec` makes the file agree with the database before every broker start;
`with_accounts` adds a fleet's accounts from their password hashes at once (bulk enrollment:
pairing/enrollment.py says why not one command each).
"""

from __future__ import annotations

import base64
import hashlib
import secrets

# ':' is outside the serial alphabet: no terminal's username or client id can be these.
ADMIN_USER = "batm:server"
SERVER_CLIENT_ID = "batm:master"  # the server's own client (master/link.py)
SHARE_GROUP = "batm"  # replicas' shared subscriptions: $share/batm/terminals/+/<kind>
ADMIN_ROLE = "batm-server-admin"
TERMINAL_ROLE_PREFIX = "terminal-"
PBKDF2_ITERATIONS = 101  # what `mosquitto_ctrl dynsec init` writes; the secret is 32 random bytes


def topic_prefix(serial: str) -> str:
    return f"terminals/{serial}/"


def terminal_role(serial: str) -> str:
    return TERMINAL_ROLE_PREFIX + serial


def terminal_acls(serial: str) -> list[dict]:
    """A terminal may publish its status, events and command results, and subscribe to its
    commands and the server's event acknowledgements: nothing outside terminals/<serial>/,
    nothing of another terminal.

    What it receives is confined by what it may subscribe to: delivery itself is allowed by
    the default (`publishClientReceive`, reconcile_dynsec), so a receive rule here would allow
    nothing more. There is none: each rule is a ninth of a terminal's share of the plugin's
    file, which the plugin rewrites whole after every change (master/link.py, `revoke`)."""
    prefix = topic_prefix(serial)
    return [
        {"acltype": "publishClientSend", "topic": prefix + "status", "allow": True},
        {"acltype": "publishClientSend", "topic": prefix + "events", "allow": True},
        {"acltype": "publishClientSend", "topic": prefix + "results", "allow": True},
        {"acltype": "subscribePattern", "topic": prefix + "commands", "allow": True},
        {"acltype": "subscribePattern", "topic": prefix + "acks", "allow": True},
    ]


def password_hash(password: str, salt: bytes | None = None,
                  iterations: int = PBKDF2_ITERATIONS) -> dict:
    """The dynsec file's password fields (PBKDF2-HMAC-SHA512, as the plugin computes them)."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return {
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": iterations,
    }


def _admin_role() -> dict:
    acls = []
    for topic in ("$CONTROL/dynamic-security/#", "terminals/#"):
        for acltype in ("publishClientSend", "publishClientReceive", "subscribePattern",
                        "unsubscribePattern"):
            acls.append({"acltype": acltype, "topic": topic, "allow": True})
    # Replicas subscribe through a shared subscription, which the plugin checks as written.
    for acltype in ("subscribePattern", "unsubscribePattern"):
        acls.append({"acltype": acltype, "topic": f"$share/{SHARE_GROUP}/terminals/#",
                     "allow": True})
    return {"rolename": ADMIN_ROLE, "acls": acls}


def _admin_client(password: str) -> dict:
    return {"username": ADMIN_USER, "textName": "batm-server", **password_hash(password),
            "roles": [{"rolename": ADMIN_ROLE}]}


def terminal_client(serial: str, hashed: dict) -> dict:
    """A terminal's dynsec client from its password hash (bound to its serial, as `grant`)."""
    return {"username": serial, "clientid": serial, "password": hashed["password"],
            "salt": hashed["salt"], "iterations": hashed["iterations"],
            "roles": [{"rolename": terminal_role(serial)}]}


def with_accounts(data: dict, accounts: dict[str, dict]) -> dict:
    """The dynsec config with these terminals' clients (and roles) made or replaced."""
    clients = [c for c in data.get("clients", []) if c.get("username") not in accounts]
    names = {terminal_role(serial) for serial in accounts}
    roles = [r for r in data.get("roles", []) if r.get("rolename") not in names]
    roles += [{"rolename": terminal_role(serial),
               "acls": [{**acl, "priority": 0} for acl in terminal_acls(serial)]}
              for serial in accounts]
    clients += [terminal_client(serial, hashed) for serial, hashed in accounts.items()]
    return {**data, "clients": clients, "roles": roles}


def reconcile_dynsec(data: dict, admin_password: str, paired: set[str]) -> tuple[dict, list[str]]:
    """The dynsec config with the admin user reset and terminals not in `paired` removed."""
    clients = [c for c in data.get("clients", []) if isinstance(c, dict)]
    roles = [r for r in data.get("roles", []) if isinstance(r, dict)]
    removed = [c.get("username") for c in clients
               if c.get("username") != ADMIN_USER and c.get("username") not in paired]
    kept = [
        # Bound to its serial when an older server left it unbound; "<serial>@vpn" stays.
        c if c.get("clientid") else {**c, "clientid": c.get("username")}
        for c in clients if c.get("username") in paired
    ]
    role_serials = {terminal_role(s): s for s in paired}
    kept_roles = [
        # Today's ACLs, whatever an older server (or a hand edit) left in the role.
        {**r, "acls": [{**acl, "priority": 0} for acl in terminal_acls(role_serials[name])]}
        for r in roles if (name := r.get("rolename")) in role_serials
    ]
    result = dict(data)
    result["clients"] = [_admin_client(admin_password), *kept]
    result["roles"] = [_admin_role(), *kept_roles]
    result["groups"] = [g for g in data.get("groups", []) if isinstance(g, dict)]
    result["defaultACLAccess"] = {
        "publishClientSend": False, "publishClientReceive": True,
        "subscribe": False, "unsubscribe": True,
    }
    return result, [str(name) for name in removed]
