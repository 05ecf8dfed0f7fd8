"""Firmware install throughput (as a ratio to `sha256sum` of the same bytes) and peak RSS.

    .venv/bin/python bench/firmware_install.py [--large | --no-large] [--runs 3] [--dir D]

For a 64 MB and (with --large, or by default when the disk has room) a 1 GB payload of random
data, builds and signs a bundle, then times, best of --runs, with the bundle in the page cache:
  sha256sum   `sha256sum BUNDLE` (the payload plus a header of a few kB)
  install     `batm-firmware install BUNDLE` into a fresh directory-backend slots dir, as a
              subprocess: verify, hash every chunk, extract, fsync, journal, arm
  hashlib     SHA-256 of the same file in this process (OpenSSL; it uses the CPU's SHA
              extensions where coreutils' sha256sum may not) - the stricter reference
  copy        read the bundle, write it to a new file, fsync: what the disk allows at best
The install's peak RSS is the child's ru_maxrss from wait4(). Targets (issue): ratio >= 0.8,
peak RSS <= 64 MB for both sizes. Prints the figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from firmware_updater.bundle import add_signature, build
from firmware_updater.manifest import VersionRange
from firmware_updater.testing import OLD, cli_argv, cli_env, make_key, make_slots

MB = 1 << 20


def write_random(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 4 * MB))
            f.write(block)
            left -= len(block)


def warm(path: Path) -> None:
    with open(path, "rb", buffering=0) as f:
        while f.read(8 * MB):
            pass


def hashlib_time(path: Path) -> float:
    start = time.perf_counter()
    digest, buffer = hashlib.sha256(), bytearray(MB)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buffer):
            digest.update(view[:n])
    return time.perf_counter() - start


def copy_time(path: Path, dest: Path) -> float:
    start = time.perf_counter()
    buffer = bytearray(MB)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f, open(dest, "wb", buffering=0) as out:
        while n := f.readinto(buffer):
            out.write(view[:n])
        os.fsync(out.fileno())
    elapsed = time.perf_counter() - start
    dest.unlink()
    return elapsed


def timed(argv: list[str], env: dict | None = None) -> tuple[float, int, str]:
    """Wall time, peak RSS (bytes) of the child, and its output."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = child.stdout.read().decode()
    _pid, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"{argv[0]} failed ({child.returncode}): {output.strip()}")
    return elapsed, usage.ru_maxrss * 1024, output


def bench(workdir: Path, size: int, runs: int) -> dict:
    src = workdir / "src"
    src.mkdir()
    write_random(src / "rootfs.img", size)
    key = make_key(workdir, "bench")
    bundle = workdir / "bundle.fw"
    manifest = build(src, bundle, 20240115, ["rpi4"], [VersionRange(OLD, None)])
    add_signature(bundle, key)
    shutil.rmtree(src)
    warm(bundle)

    sha_times = [timed(["sha256sum", str(bundle)])[0] for _ in range(runs)]
    hashlib_times = [hashlib_time(bundle) for _ in range(runs)]
    copy_times = [copy_time(bundle, workdir / "copy") for _ in range(runs)]
    install_times, rss = [], 0
    for run in range(runs):
        slots = make_slots(workdir / f"slots{run}")
        argv = cli_argv("install", str(bundle), "--slots-dir", str(slots),
                        "--trusted-keys", str(workdir / "trusted"))
        elapsed, peak, _out = timed(argv, env=cli_env())
        install_times.append(elapsed)
        rss = max(rss, peak)
        shutil.rmtree(slots)
        warm(bundle)
    bundle.unlink()
    best_sha, best_install = min(sha_times), min(install_times)
    best_hashlib = min(hashlib_times)
    return {"size": size, "chunk": manifest.chunk_size, "sha256sum": best_sha,
            "hashlib": best_hashlib, "install": best_install, "ratio": best_sha / best_install,
            "ratio_hashlib": best_hashlib / best_install, "copy": min(copy_times), "rss": rss}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action=argparse.BooleanOptionalAction, default=None,
                        help="include the 1 GB payload (default: when the disk has 4 GB free)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, help="work directory (default: a temp dir)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="fw-bench-", dir=args.dir))
    sizes = [64 * MB]
    large = args.large
    if large is None:
        large = shutil.disk_usage(base).free > 4 * 1024 * MB
    if large:
        sizes.append(1024 * MB)
    print(f"{'payload':>8} {'chunk':>6} {'sha256sum':>10} {'hashlib':>9} {'install':>9} "
          f"{'copy':>8} {'ratio':>6} {'ratio/hashlib':>13} {'peak RSS':>9}")
    try:
        for size in sizes:
            workdir = base / f"{size // MB}M"
            workdir.mkdir()
            r = bench(workdir, size, args.runs)
            print(f"{size // MB:>6}MB {r['chunk'] // MB:>4}MB {r['sha256sum']:>9.3f}s "
                  f"{r['hashlib']:>8.3f}s {r['install']:>8.3f}s {r['copy']:>7.3f}s "
                  f"{r['ratio']:>6.2f} "
                  f"{r['ratio_hashlib']:>13.2f} {r['rss'] / MB:>7.1f}MB  "
                  f"(install {size / MB / r['install']:.0f} MB/s)", flush=True)
            shutil.rmtree(workdir)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; bench process max RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
