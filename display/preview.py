"""Render every screen from sample models into PNGs, without an agent or a window.

    python -m display.preview OUT_DIR [--size 800x480]

For reviewing the look of all screens at once (and for the tests, which reuse SAMPLES).  Uses
SDL's dummy video driver, so it runs headless.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

SERIAL = "BT300412"
VERSION = 20230801
SERVER = "192.0.2.10:8443"


def _model(screen: str, title: str, text: str, **extra) -> dict:
    base = {"screen": screen, "title": title, "text": text, "pairing_code": None,
            "serial": SERIAL, "version": VERSION, "server": SERVER, "progress": None,
            "step": None, "steps": None, "detail": None, "seq": 1, "changed_at": 1700000000}
    base.update(extra)
    return base


# One realistic model per contract screen id (architecture §5), plus the display's own screens.
SAMPLES: dict[str, dict] = {
    "set_server": _model("set_server", "Set server address",
                         "Open advanced administration and enter the host name or IP address "
                         "of the operator's server.", server=None),
    "connecting": _model("connecting", "Connecting to server",
                         f"Contacting the server at {SERVER}. Please wait."),
    "server_unreachable": _model("server_unreachable", "Server unreachable",
                                 f"Cannot reach the server at {SERVER}. Retrying automatically.",
                                 detail="connect: connection timed out after 10 s"),
    "terminal_unpaired": _model("terminal_unpaired", "Error: Terminal unpaired",
                                "This terminal is not paired with the server. The server "
                                "upgrades its software automatically first. Please wait.",
                                version=20190130),
    "upgrading": _model("upgrading", "Upgrading software",
                        "Installing version 20230801. The terminal restarts by itself when "
                        "done.", progress=62, step=2, steps=2, version=20210615),
    "unknown_terminal": _model("unknown_terminal", "Unknown terminal",
                               f"The server does not know terminal {SERIAL}. Ask the operator "
                               "to create it on the server."),
    "pairing_code": _model("pairing_code", "Terminal unpaired: pairing code",
                           "In CAS, approve the pairing request on the terminal list page and "
                           "confirm that the code matches.", pairing_code="7KQ3-M9XP"),
    "vpn_error": _model("vpn_error", "VPN connection error",
                        "The terminal cannot connect through the VPN. Its VPN configuration "
                        "has probably not been generated on the server yet.",
                        detail="wireguard: no configuration received from the server"),
    "certificate_mismatch": _model("certificate_mismatch", "SERVER CERTIFICATE MISMATCH",
                                   "The server presented a different key from the one this "
                                   "terminal was paired with, so the terminal will not "
                                   "connect.",
                                   detail="pinned SPKI sha256 3f9a..c210, got 81d0..77ae"),
    "in_service": _model("in_service", "In service",
                         "Paired and connected to the master service via VPN."),
    "agent_unreachable": {"screen": "agent_unreachable",
                          "detail": "control socket /var/lib/batm-agent/control.sock: "
                                    "No such file or directory"},
    "admin_menu": _model("admin_menu", "Advanced administration",
                         "Server address, network and diagnostics. Enter the PIN to continue."),
    "future_screen": _model("future_screen", "Новый экран 新画面",
                            "Экран, который этот дисплей не знает: показан заголовок и текст. "
                            "未知的屏幕也会显示标题和文字。"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="render every screen to PNG files")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--size", default="800x480")
    args = parser.parse_args(argv)

    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    import pygame

    from display.app import parse_size
    from display.model import parse_screen
    from display.render import render
    from display.screenshots import save_png_atomic

    pygame.font.init()
    size = parse_size(args.size)
    surface = pygame.Surface(size)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, raw in SAMPLES.items():
        render(surface, parse_screen(raw))
        path = args.out_dir / f"{name}.png"
        save_png_atomic(surface, path)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
