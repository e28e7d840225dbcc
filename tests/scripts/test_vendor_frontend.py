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
    assert {"htmx.min.js", "htmx-ext-sse.min.js", "echarts.min.js"} <= set(manifest)
    licenses = {"htmx.org": "0BSD", "htmx-ext-sse": "0BSD", "echarts": "Apache-2.0",
                "zrender": "BSD-3-Clause", "tslib": "0BSD"}
    for name, entry in manifest.items():
        assert entry["integrity"].startswith("sha512-") and len(entry["sha256"]) == 64
        assert entry["license"] == licenses[entry["package"]]
    assert {e["version"] for e in manifest.values() if e["package"] == "htmx.org"} == {"2.0.11"}
    # Apache-2.0 asks for the NOTICE; the bundled zrender (BSD-3-Clause) for its licence text
    assert {"echarts.LICENSE", "echarts.NOTICE", "zrender.LICENSE"} <= set(manifest)
    assert manifest["echarts.min.js"]["bundles"] == {"zrender": "6.1.0", "tslib": "2.3.0"}


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
    meta = {"name": package.name, "version": package.version,
            "dependencies": {name: vf.PINNED[name] for name in package.bundles}}
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


def test_a_bundled_package_pinned_at_another_version_is_refused(tmp_path: Path) -> None:
    def older_zrender(package, _workdir):
        data = _tarball(package)
        if package.name == "echarts":
            buffer = io.BytesIO()
            with tarfile.open(fileobj=io.BytesIO(data)) as src, \
                    tarfile.open(fileobj=buffer, mode="w:gz") as dst:
                for member in src.getmembers():
                    content = src.extractfile(member).read()
                    if member.name == "package/package.json":
                        meta = json.loads(content)
                        meta["dependencies"]["zrender"] = "5.6.1"
                        content = json.dumps(meta).encode()
                        member.size = len(content)
                    dst.addfile(member, io.BytesIO(content))
            data = buffer.getvalue()
        return data, vf.integrity_of(data)

    with pytest.raises(vf.VendorError, match="bundles zrender@5.6.1, but zrender@6.1.0 is pinned"):
        vf.vendor(tmp_path / "x", fetch=older_zrender)


def test_check_fails_when_a_bundled_licence_is_not_recorded(copy: Path, capsys) -> None:
    manifest = json.loads((copy / vf.MANIFEST).read_text(encoding="utf-8"))
    del manifest["files"]["zrender.LICENSE"]
    (copy / vf.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    (copy / "zrender.LICENSE").unlink()
    assert vf.main(["--check", "--dir", str(copy)]) == 1
    err = capsys.readouterr().err
    assert "echarts.min.js: bundles zrender@6.1.0, whose licence is not recorded" in err
