"""Which SDL video driver the display asks for, and refusing to run on one that shows nothing.

On a Raspberry Pi without X or Wayland the panel is driven through KMS/DRM: with neither DISPLAY
nor WAYLAND_DISPLAY set and /dev/dri present, the display asks SDL for `kmsdrm`. SDL may still
end up elsewhere (another SDL_VIDEODRIVER inherited, a build without kmsdrm, the offscreen or
dummy driver), and then the kiosk would run happily while the panel stays black. So after
opening the window the driver SDL actually gave is checked: anything but kmsdrm when kmsdrm was
wanted, or a driver that draws nowhere (dummy, offscreen) that nobody asked for, stops the
display with exit status 1 and a line naming the driver — unless --allow-fallback-driver.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

KMSDRM = "kmsdrm"
INVISIBLE = frozenset({"dummy", "offscreen"})  # drivers that show nothing on a panel
DRI = Path("/dev/dri")


def wanted_driver(env: Mapping[str, str], dri: Path = DRI) -> tuple[str | None, bool]:
    """(driver to ask SDL for or None for SDL's own choice, whether the user chose it)."""
    explicit = (env.get("SDL_VIDEODRIVER") or "").strip()
    if explicit:
        return explicit, True
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY") and dri.exists():
        return KMSDRM, False
    return None, False


def driver_problem(wanted: str | None, explicit: bool, got: str) -> str | None:
    """Why the driver SDL gave must not be used, or None if it is fine."""
    if wanted == KMSDRM and got != KMSDRM:
        return f"asked SDL for the {KMSDRM} video driver but got {got!r}"
    if got in INVISIBLE and not (explicit and wanted is not None and got in wanted.split(",")):
        return f"SDL fell back to the {got!r} video driver, which shows nothing on a panel"
    return None
