"""The desk's front-end libraries, from the npm registry into ``ticketing/web/static/vendor/``.

No CDN and no build step: the files are committed, and ``VENDOR.json`` next to them records for
each one the npm package, its version and licence (from the package's own ``package.json``),
the registry's integrity of the package tarball (sha512, as ``npm`` prints it) and the file's
sha256. ::

    .venv/bin/python scripts/vendor_frontend.py           # fetch the pinned versions again
    .venv/bin/python scripts/vendor_frontend.py --check   # offline: the files match VENDOR.json

Fetching runs ``npm pack <package>@<version>`` into a temporary folder (npm is the only client
that talks to the registry), checks the tarball against the integrity the registry declares
(``npm view <package>@<version> dist.integrity``) and, when VENDOR.json already pins that
version, against the recorded integrity too: a republished tarball is refused, never copied.
Only the files listed in :data:`PACKAGES` are extracted, each with its licence text (and its
NOTICE, which Apache-2.0 requires to be kept). A file built from several packages (ECharts'
``echarts.min.js`` embeds zrender and tslib) names them in ``bundles``: their licences are
vendored from their own pinned packages, whose versions must be the exact versions the bundling
package depends on, and VENDOR.json records the bundled versions next to the file.
To move to a new version, change it in :data:`PACKAGES` and run the script without ``--check``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR_DIR = ROOT / "ticketing" / "web" / "static" / "vendor"
MANIFEST = "VENDOR.json"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    files: dict[str, str]  # path inside the tarball (under package/) -> file name in vendor/
    # the SPDX id read off the shipped LICENSE file, for a package.json that declares none
    license_from_file: str | None = None
    # packages compiled into this package's files (their licences come from their own entries)
    bundles: tuple[str, ...] = ()


PACKAGES = (
    Package("htmx.org", "2.0.11",
            {"dist/htmx.min.js": "htmx.min.js", "LICENSE": "htmx.org.LICENSE"}),
    # htmx-ext-sse's package.json has no "license"; its LICENSE is the BSD Zero Clause text
    Package("htmx-ext-sse", "2.2.4",
            {"dist/sse.min.js": "htmx-ext-sse.min.js", "LICENSE": "htmx-ext-sse.LICENSE"},
            license_from_file="0BSD"),
    # the reports' charts; echarts.min.js is the full build (the ZH and EN locales are built in)
    Package("echarts", "6.1.0",
            {"dist/echarts.min.js": "echarts.min.js", "LICENSE": "echarts.LICENSE",
             "NOTICE": "echarts.NOTICE", "licenses/LICENSE-d3": "echarts.LICENSE-d3"},
            bundles=("zrender", "tslib")),
    # compiled into echarts.min.js: only their licence texts are vendored
    Package("zrender", "6.1.0", {"LICENSE": "zrender.LICENSE"}),
    Package("tslib", "2.3.0", {"LICENSE.txt": "tslib.LICENSE"}),
)
PINNED = {p.name: p.version for p in PACKAGES}


class VendorError(Exception):
    """A fetched or committed file is not what the manifest says."""


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def integrity_of(data: bytes) -> str:
    """npm's Subresource-Integrity string of a tarball: ``sha512-<base64>``."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def read_manifest(vendor_dir: Path = VENDOR_DIR) -> dict:
    path = vendor_dir / MANIFEST
    if not path.exists():
        return {"files": {}}
    return json.loads(path.read_text(encoding="utf-8"))


# --- checking (offline) ------------------------------------------------------------------------
def check(vendor_dir: Path = VENDOR_DIR) -> list[str]:
    """What is wrong with the committed files; an empty list when all match VENDOR.json."""
    manifest_path = vendor_dir / MANIFEST
    if not manifest_path.exists():
        return [f"{manifest_path} is missing"]
    try:
        files = json.loads(manifest_path.read_text(encoding="utf-8"))["files"]
    except (ValueError, KeyError) as exc:
        return [f"{manifest_path} is not a vendor manifest: {exc}"]
    problems = []
    for name, entry in sorted(files.items()):
        path = vendor_dir / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif sha256_of(path.read_bytes()) != entry.get("sha256"):
            problems.append(f"{name}: sha256 differs from {MANIFEST}")
        for key in ("package", "version", "license", "integrity", "source"):
            if not entry.get(key):
                problems.append(f"{name}: {MANIFEST} records no {key}")
    pinned = {(p.name, p.version, target) for p in PACKAGES for target in p.files.values()}
    recorded = {(e.get("package"), e.get("version"), n) for n, e in files.items()}
    for package, version, name in sorted(pinned - recorded):
        problems.append(f"{name}: {package}@{version} is pinned here but not recorded")
    versions = {(e.get("package"), e.get("version")) for e in files.values()}
    for name, entry in sorted(files.items()):
        for package, version in sorted(entry.get("bundles", {}).items()):
            if (package, version) not in versions:
                problems.append(f"{name}: bundles {package}@{version}, whose licence "
                                f"is not recorded")
    for name in sorted(p.name for p in vendor_dir.iterdir()
                       if p.is_file() and p.name != MANIFEST and p.name not in files):
        problems.append(f"{name}: in vendor/ but not in {MANIFEST}")
    return problems


# --- fetching (npm registry) -------------------------------------------------------------------
def _npm(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(["npm", *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise VendorError(f"npm {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def fetch_tarball(package: Package, workdir: Path) -> tuple[bytes, str]:
    """The package tarball and the integrity the registry declares for it."""
    spec = f"{package.name}@{package.version}"
    declared = json.loads(_npm("view", spec, "dist.integrity", "--json")).strip()
    packed = json.loads(_npm("pack", spec, "--json", "--pack-destination", str(workdir),
                             cwd=workdir))
    data = (workdir / packed[0]["filename"]).read_bytes()
    return data, declared


def extract(package: Package, tarball: Path) -> tuple[dict[str, bytes], dict]:
    """The listed files and the package's package.json, read member by member (no extractall)."""
    wanted = {f"package/{inner}": target for inner, target in package.files.items()}
    found: dict[str, bytes] = {}
    with tarfile.open(tarball, "r:gz") as archive:
        meta_member = archive.getmember("package/package.json")
        meta = json.loads(archive.extractfile(meta_member).read())  # type: ignore[union-attr]
        for member, target in wanted.items():
            try:
                info = archive.getmember(member)
            except KeyError:
                raise VendorError(f"{package.name}@{package.version} has no {member}") from None
            if not info.isfile():
                raise VendorError(f"{member} in {package.name} is not a regular file")
            found[target] = archive.extractfile(info).read()  # type: ignore[union-attr]
    return found, meta


def _license(package: Package, meta: dict) -> tuple[str, str]:
    """The package's licence and where it was read: package.json, else the pinned reading of
    its LICENSE file; neither = refused (nothing is vendored without a known licence)."""
    declared = meta.get("license")
    if isinstance(declared, str) and declared:
        return declared, "package.json"
    if package.license_from_file and "LICENSE" in package.files:
        return package.license_from_file, "LICENSE (package.json declares none)"
    raise VendorError(f"{package.name}@{package.version} declares no licence")


def _bundled(package: Package, meta: dict) -> dict[str, str]:
    """The exact versions of the packages compiled into ``package``'s files, which must be the
    versions pinned here (else the vendored licence texts would be another release's)."""
    depends = meta.get("dependencies") or {}
    found = {}
    for name in package.bundles:
        if depends.get(name) != PINNED.get(name):
            raise VendorError(f"{package.name}@{package.version} bundles {name}@"
                              f"{depends.get(name)}, but {name}@{PINNED.get(name)} is pinned")
        found[name] = depends[name]
    return found


def vendor(vendor_dir: Path = VENDOR_DIR, *, fetch=fetch_tarball) -> dict:
    """Fetch every pinned package, verify it and write its files and VENDOR.json."""
    previous = read_manifest(vendor_dir).get("files", {})
    manifest: dict[str, dict] = {}
    outputs: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="kefu-vendor-") as tmp:
        for package in PACKAGES:
            data, declared = fetch(package, Path(tmp))
            actual = integrity_of(data)
            if actual != declared:
                raise VendorError(f"{package.name}@{package.version}: tarball integrity "
                                  f"{actual} is not the registry's {declared}")
            for name, entry in previous.items():
                if (entry.get("package"), entry.get("version")) == (package.name, package.version) \
                        and entry.get("integrity") not in (None, actual):
                    raise VendorError(f"{package.name}@{package.version} changed since it was "
                                      f"vendored ({name}: {entry['integrity']} → {actual})")
            tarball = Path(tmp) / f"{package.name}-{package.version}.tgz"
            tarball.write_bytes(data)
            files, meta = extract(package, tarball)
            if meta.get("name") != package.name or meta.get("version") != package.version:
                raise VendorError(f"tarball is {meta.get('name')}@{meta.get('version')}, "
                                  f"not {package.name}@{package.version}")
            license, license_source = _license(package, meta)
            bundled = _bundled(package, meta)
            for inner, target in package.files.items():
                outputs[target] = files[target]
                manifest[target] = {
                    "package": package.name,
                    "version": package.version,
                    "license": license,
                    "license_source": license_source,
                    "integrity": actual,
                    "source": f"{package.name}@{package.version}/{inner}",
                    "sha256": sha256_of(files[target]),
                    **({"bundles": bundled} if bundled else {}),
                }
    vendor_dir.mkdir(parents=True, exist_ok=True)
    for name in previous:
        if name not in outputs and (vendor_dir / name).is_file():
            (vendor_dir / name).unlink()  # a file of a version no longer pinned
    for name, data in outputs.items():
        (vendor_dir / name).write_bytes(data)
    document = {"about": "Front-end files copied from the npm registry by "
                         "scripts/vendor_frontend.py; --check verifies them offline.",
                "files": dict(sorted(manifest.items()))}
    (vendor_dir / MANIFEST).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n",
                                       encoding="utf-8")
    return document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only verify the committed files against VENDOR.json (offline)")
    parser.add_argument("--dir", type=Path, default=VENDOR_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.dir)
        for problem in problems:
            print(f"vendor check: {problem}", file=sys.stderr)
        if not problems:
            print(f"vendor check: {len(read_manifest(args.dir)['files'])} files match {MANIFEST}")
        return 1 if problems else 0
    try:
        document = vendor(args.dir)
    except VendorError as exc:
        print(f"vendor: {exc}", file=sys.stderr)
        return 1
    for name, entry in document["files"].items():
        print(f"{name:24} {entry['package']}@{entry['version']} ({entry['license']}) "
              f"sha256 {entry['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
