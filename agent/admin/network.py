"""The terminal's network as the administration's info page shows it, read from the OS.

Interfaces (link state, MAC, addresses), the default gateway and the DNS servers, as far as the
system tells: `ip -j addr show`, else sysfs; /proc/net/route; /etc/resolv.conf. Missing pieces are
None or empty, never an error, since an info page must show what it can.
"""

from __future__ import annotations

import json
import shutil
import socket
import struct
import subprocess
from pathlib import Path


def _ip_json(*args: str) -> list | None:
    ip = shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin")
    if ip is None:
        return None
    try:
        out = subprocess.run([ip, "-j", *args], capture_output=True, text=True, timeout=3)
        data = json.loads(out.stdout) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return data if isinstance(data, list) else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _interfaces(sys_net: Path) -> list[dict]:
    links = {}
    for entry in _ip_json("addr", "show") or []:
        if not isinstance(entry, dict) or "LOOPBACK" in entry.get("flags", []):
            continue
        addresses = [f"{a.get('local')}/{a.get('prefixlen')}" for a in entry.get("addr_info", [])
                     if isinstance(a, dict) and a.get("local")]
        links[str(entry.get("ifname"))] = {"name": str(entry.get("ifname")),
                                            "link": str(entry.get("operstate", "unknown")).lower(),
                                            "mac": entry.get("address"), "addresses": addresses}
    try:
        names = sorted(p.name for p in sys_net.iterdir())
    except OSError:
        names = []
    for name in names:  # what `ip` did not report (no ip binary): link state from sysfs
        if name == "lo" or name in links:
            continue
        links[name] = {"name": name, "link": _read(sys_net / name / "operstate") or "unknown",
                       "mac": _read(sys_net / name / "address"), "addresses": []}
    return list(links.values())


def _gateway(proc_route: Path) -> tuple[str | None, str | None]:
    try:
        lines = proc_route.read_text().splitlines()[1:]
    except OSError:
        return None, None
    for line in lines:
        fields = line.split()
        if len(fields) >= 3 and fields[1] == "00000000":
            try:
                gw = socket.inet_ntoa(struct.pack("<L", int(fields[2], 16)))
            except (ValueError, struct.error):
                continue
            return gw, fields[0]
    return None, None


def _dns(resolv_conf: Path) -> list[str]:
    text = _read(resolv_conf) or ""
    return [parts[1] for line in text.splitlines()
            if len(parts := line.split()) >= 2 and parts[0] == "nameserver"]


def read_network(sys_net: Path = Path("/sys/class/net"), proc_route: Path = Path("/proc/net/route"),
                 resolv_conf: Path = Path("/etc/resolv.conf")) -> dict:
    """Interfaces (link state, MAC, addresses), default gateway and DNS servers, as far as the OS
    tells; missing pieces are None/empty, never an error."""
    gateway, gateway_dev = _gateway(proc_route)
    return {"interfaces": _interfaces(sys_net), "gateway": gateway,
            "gateway_interface": gateway_dev, "dns": _dns(resolv_conf)}
