"""The vendored front-end files match VENDOR.json; fetching verifies before it writes.

Offline: the fetch is replaced by tarballs built here from the committed files.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from scripts import vendor_frontend as vf


def test_the_committed_files_match_their_manifest(capsys) -> None:
    assert vf.check() == []
    assert vf.main(["--check"]) == 0
    manifest = vf.read_manifest()["files"]
    assert {"htmx.min.js", "htmx-ext-sse.min.js"} <= set(manifest)
    for name, entry in manifest.items():
        assert entry["integrity"].startswith("sha512-") and len(entry["sha256"]) == 64
        assert entry["license"] == "0BSD"
    assert {e["version"] for e in manifest.values() if e["package"] == "htmx.org"} == {"2.0.11"}


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "vendor"
    shutil.copytree(vf.VENDOR_DIR, target)
    return target


def test_check_fails_on_a_changed_missing_or_unrecorded_file(copy: Path, capsys) -> None:
    (copy / "htmx.min.js").write_bytes((copy / "htmx.min.js").read_bytes() + b"\n")
    (copy / "htmx-ext-sse.LICENSE").unlink()
    (copy / "extra.js").write_text("alert(1)")
    assert vf.main(["--check", "--dir", str(copy)]) == 1
    err = capsys.readouterr().err
    assert "htmx.min.js: sha256 differs" in err
    assert "htmx-ext-sse.LICENSE: missing" in err
    assert "extra.js: in vendor/ but not in VENDOR.json" in err


def _tarball(package: vf.Package, *, tamper: bool = False) -> bytes:
    """The package as the registry would serve it, rebuilt from the committed files."""
    buffer = io.BytesIO()
    meta = {"name": package.name, "version": package.version}
    if package.license_from_file is None:
        meta["license"] = "0BSD"
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        files = {"package.json": json.dumps(meta).encode()}
        for inner, target in package.files.items():
            files[inner] = (vf.VENDOR_DIR / target).read_bytes() + (b"//x" if tamper else b"")
        for inner, data in files.items():
            info = tarfile.TarInfo(f"package/{inner}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_fetching_writes_verified_files_and_the_manifest(tmp_path: Path) -> None:
    def fetch(package, _workdir):
        data = _tarball(package)
        return data, vf.integrity_of(data)

    target = tmp_path / "fresh"
    vf.vendor(target, fetch=fetch)
    assert vf.check(target) == []
    committed = vf.read_manifest()["files"]
    written = vf.read_manifest(target)["files"]
    assert {n: e["sha256"] for n, e in written.items()} == {
        n: e["sha256"] for n, e in committed.items()}
    assert written["htmx-ext-sse.min.js"]["license_source"].startswith("LICENSE")


def test_a_tarball_that_is_not_what_the_registry_declares_is_refused(tmp_path: Path) -> None:
    def forged(package, _workdir):
        return _tarball(package, tamper=True), vf.integrity_of(_tarball(package))

    with pytest.raises(vf.VendorError, match="is not the registry's"):
        vf.vendor(tmp_path / "x", fetch=forged)
    assert not (tmp_path / "x").exists()


def test_a_version_republished_since_it_was_vendored_is_refused(copy: Path) -> None:
    def republished(package, _workdir):  # consistent with itself, not with VENDOR.json
        data = _tarball(package, tamper=True)
        return data, vf.integrity_of(data)

    before = (copy / "htmx.min.js").read_bytes()
    with pytest.raises(vf.VendorError, match="changed since it was vendored"):
        vf.vendor(copy, fetch=republished)
    assert (copy / "htmx.min.js").read_bytes() == before
