"""The booted-systemd rig: the packaged terminal in a bookworm rootfs, systemd as PID 1.

Where the simulated rig runs the product's processes itself (as root, no systemd), this rig
installs `dist/batm-terminal_*.deb` with apt into a Debian rootfs and boots it with
systemd-nspawn, so users, tmpfiles, unit sandboxing, the watchdog and journald are the real ones.
The HIL suite runs against its rig.json (`BATM_RIG=D/rig.json`) unchanged.

  rootfs    builds the rootfs with mmdebstrap and caches it, keyed by the package's content hash
  network   the two network namespaces (server, terminal) and the veth pair between them
  machine   one booted container: overlay over the cached rootfs, nspawn on a console pty
  rig       up/down: network, server, machine, rig.json; what `down` must undo, kept on disk
  __main__  `python -m sim.booted up|down --dir D`
"""
