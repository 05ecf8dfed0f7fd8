"""Sleeping until something happens, for real.

pygame-ce's event.wait() is not a blocking wait: it re-implements SDL_WaitEventTimeout as
"pump, peek, SDL_Delay(1)" in a loop (src_c/event.c, _pg_event_wait), i.e. ~1,000 wake-ups a
second.  Measured here: ~770 nanosleeps and ~3,000 failed recvmsg() calls per second, about 2 %
of a core on an idle x86 box, more on a Raspberry Pi, forever.  A kiosk shows the same screen for
days, so the display sleeps in select() instead, on two things:

- a self-pipe that the other threads write a byte to after posting a pygame event (agent link,
  signal thread): pygame.event.post() alone would not wake select();
- the window system's connection (the X11 socket, or the Wayland socket), so window events —
  expose, resize, close — still wake the loop.  SDL has no API for that descriptor, so it comes
  from the native display pointer that pygame.display.get_wm_info() exposes, via
  XConnectionNumber() / wl_display_get_fd().

Drivers without such a connection (kmsdrm on a bare Pi, dummy, offscreen) have no window events
to wait for, so the pipe alone suffices.  On any other driver the loop still wakes every
FALLBACK_TIMEOUT seconds to pump SDL (a few wake-ups a second, not a thousand).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import select

FALLBACK_TIMEOUT = 0.5
_HEADLESS_DRIVERS = {"kmsdrm", "dummy", "offscreen", "evdev"}


class Waker:
    """A self-pipe: wake() from any thread, wait() in the UI thread."""

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)

    def wake(self) -> None:
        # A full pipe already guarantees a wake-up; losing this byte loses nothing.
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._write_fd, b"!")

    def wait(self, extra_fds: list[int], timeout: float | None) -> None:
        """Block until woken, one of extra_fds is readable, or timeout (None = forever)."""
        # (select() retries by itself after EINTR, PEP 475.)
        select.select([self._read_fd, *extra_fds], [], [], timeout)
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read_fd, 4096):
                pass

    def close(self) -> None:
        for fd in (self._read_fd, self._write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def _capsule_pointer(capsule, name: bytes) -> int | None:
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype = ctypes.c_void_p
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    try:
        return get_pointer(capsule, name)
    except (ValueError, TypeError):
        return None


def _native_fd(library: str, soname: str, function: str, display_ptr: int) -> int | None:
    path = ctypes.util.find_library(library) or soname
    try:
        lib = ctypes.CDLL(path)
        fn = getattr(lib, function)
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_void_p]
    fd = fn(display_ptr)
    return fd if fd >= 0 else None


def window_system_fd(driver: str, wm_info: dict) -> int | None:
    """The file descriptor of the connection to the X server / Wayland compositor, or None."""
    capsule = wm_info.get("display")
    if capsule is None:
        return None
    pointer = _capsule_pointer(capsule, b"display")
    if not pointer:
        return None
    if driver == "x11":
        return _native_fd("X11", "libX11.so.6", "XConnectionNumber", pointer)
    if driver == "wayland":
        return _native_fd("wayland-client", "libwayland-client.so.0", "wl_display_get_fd",
                          pointer)
    return None


def wait_plan(driver: str, wm_info: dict) -> tuple[list[int], float | None]:
    """(descriptors to select on besides the pipe, timeout) for a video driver."""
    fd = window_system_fd(driver, wm_info)
    if fd is not None:
        return [fd], None
    if driver in _HEADLESS_DRIVERS:
        return [], None
    return [], FALLBACK_TIMEOUT
