"""Plain-text tables for the CLI's human output (the --json output is the API's own shapes)."""

from __future__ import annotations

from collections.abc import Sequence


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
         "IDENTITY"],
        [
            [t["serial"], t["scenario"], t["state"], t["version"], t["location"],
             t["last_seen"], t["paired_at"], t["identity_fingerprint"]]
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
