"""Bundle format, manifest validation, signatures and the resumable tar reader."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from firmware_updater import bundle
from firmware_updater.errors import BundleError, PayloadError, TrustError
from firmware_updater.manifest import Manifest, VersionRange, check_installable
from firmware_updater.tarstream import TarReader, safe_member_path
from firmware_updater.testing import NEW, make_bundle, make_key, make_tree
from firmware_updater.trust import (
    key_id,
    keygen,
    load_private_key,
    load_public_key,
    load_trusted_keys,
    public_raw,
    verify_manifest,
)


def built(tmp_path: Path, keys=()) -> tuple[Path, Manifest]:
    src = make_tree(tmp_path / "src")
    manifest = make_bundle(tmp_path / "b.fw", src, keys=list(keys))
    return tmp_path / "b.fw", manifest


def header_of(path: Path) -> bundle.Header:
    with open(path, "rb") as f:
        return bundle.read_header(f.read)


def test_layout_and_inspect(tmp_path: Path) -> None:
    path, manifest = built(tmp_path)
    data = path.read_bytes()
    assert data[:8] == b"BATMFW1\n"
    header = header_of(path)
    assert Manifest.from_bytes(header.manifest_bytes) == manifest
    assert len(data) == header.size + manifest.payload_size
    report = bundle.describe(path, verify_payload=True)
    assert report["complete"] and report["payload_verified"] and report["signatures"] == []
    assert manifest.chunk_count == -(-manifest.payload_size // manifest.chunk_size)


def test_sign_in_place_with_several_keys(tmp_path: Path) -> None:
    k1, k2 = make_key(tmp_path, "k1"), make_key(tmp_path, "k2")
    path, _ = built(tmp_path, keys=[k1])
    size = path.stat().st_size
    bundle.add_signature(path, k2)
    assert path.stat().st_size == size  # the payload did not move
    header = header_of(path)
    ids = [kid for kid, _ in header.signatures]
    assert ids == [key_id(public_raw(k.public_key())) for k in (k1, k2)]
    with pytest.raises(BundleError, match="already signed"):
        bundle.add_signature(path, k1)
    trusted = load_trusted_keys(tmp_path / "trusted")
    assert verify_manifest(header.manifest_bytes, list(header.signatures), trusted) == ids[0]


def test_key_files_pem_and_base64url(tmp_path: Path) -> None:
    kid = keygen(tmp_path / "release")
    assert (tmp_path / "release").stat().st_mode & 0o777 == 0o600
    key = load_private_key(tmp_path / "release")
    assert key_id(public_raw(key.public_key())) == kid
    assert key_id(public_raw(load_public_key(tmp_path / "release.pub"))) == kid
    with pytest.raises(TrustError, match="already exists"):
        keygen(tmp_path / "release")
    (tmp_path / "bad.pub").write_text("not a key")
    with pytest.raises(TrustError, match=r"bad\.pub"):
        load_public_key(tmp_path / "bad.pub")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrustError, match="no trusted keys"):
        load_trusted_keys(tmp_path / "empty")


def manifest_json(tmp_path: Path) -> dict:
    _path, manifest = built(tmp_path)
    return manifest.to_json()


@pytest.mark.parametrize(("field", "value", "match"), [
    ("version", "20240115", "field version"),
    ("version", 123, "field version"),
    ("hardware", [], "field hardware"),
    ("hardware", ["RPi 4!"], "field hardware"),
    ("install_from", [], "field install_from"),
    ("install_from", [{"min": 20240101, "max": 20230101}], r"install_from\[0\] is empty"),
    ("payload_size", 1000, "field payload_size"),
    ("payload_sha256", "xyz", "field payload_sha256"),
    ("chunk_size", 3000, "field chunk_size"),
    ("chunk_sha256", [], "field chunk_sha256"),
    ("created", "yesterday", "field created"),
    ("format_version", 2, "field format_version"),
    ("surprise", 1, "'surprise' is not known"),
])
def test_manifest_fields_are_validated(tmp_path: Path, field: str, value, match: str) -> None:
    data = manifest_json(tmp_path)
    data[field] = value
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(BundleError, match=match):
        Manifest.from_bytes(raw)


def test_manifest_missing_duplicate_and_non_canonical(tmp_path: Path) -> None:
    data = manifest_json(tmp_path)
    pretty = json.dumps(data, indent=1).encode()
    del data["payload_size"]
    with pytest.raises(BundleError, match="'payload_size' is missing"):
        Manifest.from_json(data)
    with pytest.raises(BundleError, match="appears twice"):
        Manifest.from_bytes(b'{"version":1,"version":2}')
    with pytest.raises(BundleError, match="canonical"):
        Manifest.from_bytes(pretty)


def test_a_deeply_nested_manifest_is_refused_not_a_crash() -> None:
    hostile = b'{"version":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(BundleError, match="nests too deeply"):
        Manifest.from_bytes(hostile)


def test_bad_headers(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="bad magic"):
        bundle.read_header(io.BytesIO(b"PK\x03\x04" + bytes(100)).read)
    with pytest.raises(BundleError, match="manifest length"):
        bundle.read_header(io.BytesIO(b"BATMFW1\n" + (1 << 30).to_bytes(4, "big")).read)


def test_version_ranges_and_policy(tmp_path: Path) -> None:
    assert VersionRange.parse("20230801-") == VersionRange(20230801, None)
    assert VersionRange.parse("-20231231").contains(20190101)
    assert str(VersionRange.parse("20230801")) == "20230801"
    with pytest.raises(ValueError, match="not a YYYYMMDD"):
        VersionRange.parse("2023-08-01")
    _path, manifest = built(tmp_path)
    check_installable(manifest, 20230801, "rpi4")


def test_build_refuses_symlinks_and_reserved_names(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    (src / "link").symlink_to("/etc/passwd")
    with pytest.raises(BundleError, match="no symlinks"):
        bundle.build(src, tmp_path / "b.fw", NEW, ["rpi4"], [VersionRange(None, NEW - 1)])
    (src / "link").unlink()
    (src / "manifest.json").write_text("{}")
    with pytest.raises(BundleError, match="reserved"):
        bundle.build(src, tmp_path / "b.fw", NEW, ["rpi4"], [VersionRange(None, NEW - 1)])


class Recorder:
    def __init__(self) -> None:
        self.events: list = []
        self.files: dict[str, bytearray] = {}
        self.current = ""

    def directory(self, path, mode):
        self.events.append(("dir", path))

    def begin_file(self, path, mode, size):
        self.current = path
        self.files[path] = bytearray()
        self.events.append(("file", path, size))

    def write(self, data):
        self.files[self.current] += data

    def end_file(self):
        self.events.append(("end", self.current))


def long_name_tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, size in (("d/" + "x" * 150 + "/f.bin", 3000), ("é.txt", 5), ("z", 0)):
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, io.BytesIO(bytes(range(256)) * (size // 256 + 1)))
    return buffer.getvalue()


@pytest.mark.parametrize("split", [1, 511, 512, 700, 1024, 4096])
def test_tar_reader_resumes_from_its_state_at_any_split(split: int) -> None:
    data = memoryview(long_name_tar())
    whole = Recorder()
    reader = TarReader(whole)
    reader.feed(data)
    reader.finish()
    assert next(e for e in whole.events if e[0] == "file")[1].startswith("d/xxx")
    for cut in range(0, len(data), split * 7 + 1):
        sink = Recorder()  # stands for the slot: what was written before the cut survives
        before = TarReader(sink)
        before.feed(data[:cut])
        after = TarReader(sink, json.loads(json.dumps(before.state())))  # a new process
        after.feed(data[cut:])
        after.finish()
        assert sink.files == whole.files


def test_tar_reader_truncation_and_trailing_garbage() -> None:
    data = long_name_tar()
    reader = TarReader(Recorder())
    reader.feed(memoryview(data[:2000]))
    with pytest.raises(PayloadError, match="truncated"):
        reader.finish()
    reader = TarReader(Recorder())
    with pytest.raises(PayloadError, match="after the end"):
        reader.feed(memoryview(data + b"junk"))


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/etc/x", "a/b/../../../x"])
def test_safe_member_path_refuses_escapes(name: str) -> None:
    with pytest.raises(PayloadError):
        safe_member_path(name)


def test_safe_member_path_normalises() -> None:
    assert safe_member_path("./a//b/./c") == "a/b/c"
    assert safe_member_path("./") == ""
