"""The status monitor's exports at fleet size: GET /api/v1/terminals.xlsx and .csv of 50,000
terminals through the console app (in-process, a bearer token, the monitor's query), each in
a child process of its own so that its peak RSS is its own; and, for the record of the choice,
the same rows written by openpyxl's write_only mode instead of XlsxWriter's constant_memory.

    .venv/bin/python bench/console_export.py [--terminals 50000] [--dir D]

It prints, per export: seconds, peak RSS (MB) during the export and its growth over the RSS
just before the request (what the export itself cost), and the size. Bounded memory shows as
the same growth at 5,000 and 50,000 rows (run it with --terminals 5000 to compare).
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # console_list's population
PASSWORD = "bench password 1"


def peak_mb() -> float:
    """VmHWM: the process's peak RSS since the last reset_peak()."""
    with open("/proc/self/status") as status:
        line = next(x for x in status if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def reset_peak() -> None:
    """Forget the peak so far (the login's argon2 hash takes 64 MB by design): Linux's
    clear_refs "5" resets VmHWM to the current RSS."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def current_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def child(kind: str, data_dir: Path) -> dict:
    """One export in this process: the figures as a dict."""
    from fastapi.testclient import TestClient

    from server.console.service import console_service
    from server.db.engine import open_database
    from server.http.console.app import create_console_app
    from server.pairing.registry import Registry
    from server.pairing.requests import PairingRequests
    from server.pairing.transactions import Transactions

    sessions = open_database(data_dir)
    transactions = Transactions(sessions)
    console = console_service(sessions, Registry(transactions), PairingRequests(transactions))
    token = json.loads((data_dir / "bench-user.json").read_text())["token"]
    client = TestClient(create_console_app(console), base_url="https://bench",
                        headers={"Authorization": f"Bearer {token}"})
    if kind == "openpyxl":
        from server.console.monitor import ListQuery
        from server.console.permissions import Principal, Role
        rows = console.fleet.export(Principal("boss", Role.ADMIN, None), ListQuery())
        reset_peak()
        before, started = current_mb(), time.perf_counter()
        size = write_openpyxl(rows)
    else:
        reset_peak()
        before, started = current_mb(), time.perf_counter()
        with client.stream("GET", f"/api/v1/terminals.{kind}") as answer:
            assert answer.status_code == 200, answer.read()[:300]
            size = sum(len(chunk) for chunk in answer.iter_bytes())
    seconds = time.perf_counter() - started
    return {"kind": kind, "seconds": seconds, "peak_mb": peak_mb(), "before_mb": before,
            "size": size}


def write_openpyxl(rows) -> int:
    """The same workbook by openpyxl's write_only mode (fills and date cells alike)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import PatternFill

    from server.console.export import COLUMNS, DATE_FORMAT, DATES, FILLS, KEYS, as_datetime

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Terminals")
    sheet.append([label for _key, label in COLUMNS])
    fills = {name: PatternFill("solid", fgColor=colour.lstrip("#"))
             for name, colour in FILLS.items()}
    for row in rows:
        cells = []
        for key in KEYS:
            value = row[key]
            moment = as_datetime(value) if key in DATES else None
            cell = WriteOnlyCell(sheet, value=moment if moment is not None else value)
            if moment is not None:
                cell.number_format = DATE_FORMAT
            if row["highlight"] in fills:
                cell.fill = fills[row["highlight"]]
            cells.append(cell)
        sheet.append(cells)
    out = io.BytesIO()
    workbook.save(out)
    return len(out.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/console_export.py")
    parser.add_argument("--terminals", type=int, default=50_000)
    parser.add_argument("--dir", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.dir)))
        return 0

    from console_list import populate

    from server.console.service import console_service
    from server.db.engine import close_database, open_database
    from server.pairing.registry import Registry
    from server.pairing.requests import PairingRequests
    from server.pairing.transactions import Transactions

    data_dir = args.dir or Path(tempfile.mkdtemp(prefix="batm-bench-export-"))
    sessions = open_database(data_dir)
    populate(sessions, args.terminals)
    transactions = Transactions(sessions)
    console = console_service(sessions, Registry(transactions), PairingRequests(transactions))
    console.users.add("boss", "admin", None, PASSWORD)
    (data_dir / "bench-user.json").write_text(json.dumps(
        {"token": console.tokens.create("boss")}))
    close_database(sessions)
    print(f"{args.terminals} terminals (a third with a status, 5 % of those red)")
    print(f"{'export':10} {'seconds':>8} {'peak RSS MB':>12} {'growth MB':>10} {'size KB':>9}")
    for kind in ("xlsx", "csv", "openpyxl"):
        proc = subprocess.run([sys.executable, __file__, "--child", kind, "--dir", str(data_dir)],
                              capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            print(f"{kind}: failed\n{proc.stderr[-2000:]}")
            return 1
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{kind:10} {got['seconds']:8.2f} {got['peak_mb']:12.1f} "
              f"{got['peak_mb'] - got['before_mb']:10.1f} {got['size'] / 1024:9.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
