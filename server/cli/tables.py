"""What the CLI prints: plain-text tables and lines for people, the API's own shapes for --json."""

from __future__ import annotations

import json
from collections.abc import Sequence


def print_json(value: object) -> None:
    print(json.dumps(value, indent=2))


def render(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[("-" if value is None else str(value)) for value in row] for row in rows]
    widths = [
        max(len(header), *(len(row[i]) for row in cells)) if cells else len(header)
        for i, header in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in cells:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def terminal_table(terminals: Sequence[dict]) -> str:
    if not terminals:
        return "no terminals"
    return render(
        ["SERIAL", "SCENARIO", "STATE", "VERSION", "LOCATION", "LAST SEEN", "PAIRED AT",
         "IDENTITY", "LAST UPDATE", "LAST SYNC", "HIGHLIGHT", "LAST SYNC ERROR"],
        [
            [t["serial"], t["scenario"], t["state"], t["version"], t["location"],
             t["last_seen"], t["paired_at"], t["identity_fingerprint"], t.get("last_update"),
             t.get("last_sync"), t.get("highlight"), t.get("last_sync_error")]
            for t in terminals
        ],
    )


def pairing_table(requests: Sequence[dict]) -> str:
    if not requests:
        return "no open pairing requests"
    return render(
        ["SERIAL", "CODE", "STATE", "VERSION", "PEER", "CREATED", "REQUEST ID"],
        [
            [r["serial"], r["code"] or "(not yet shown)", r["state"], r.get("version"),
             r["peer"], r["created_at"], r["request_id"]]
            for r in requests
        ],
    )


def vpn_summary(view: dict) -> str:
    """`batm-server terminal vpn SERIAL`'s line for people."""
    return (f"VPN configuration of {view['serial']}: tunnel address {view['tunnel_address']} "
            f"(server {view['server_tunnel_address']}); peer: {view['peer']}")
