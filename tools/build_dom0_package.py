#!/usr/bin/env python3
"""Build the dom0 plugins' packages: xenapi-plugins-<v>-1.noarch.rpm and xenapi-plugins_<v>_all.deb.

Both hold the same files, taken from src/os_xenapi/dom0/etc/xapi.d/plugins by name: the
plugin files (*.py, mode 0755) in /etc/xapi.d/plugins and the dom0lib helper package
(*.py, mode 0644) beside them; never a __pycache__. The version is os-xenapi's, mapped to
RPM/Debian form by tools/pkg_version.py. `make rpm` and `make deb` call this.

    python tools/build_dom0_package.py rpm|deb [--out DIR] [--work DIR]

Needs rpmbuild (Debian package rpm) or dpkg-deb; scripts/install-system-deps.sh installs them.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pkg_version  # noqa: E402  (the sibling tool, found through the line above)

REPO = Path(__file__).resolve().parent.parent
DOM0 = REPO / "src" / "os_xenapi" / "dom0"
PLUGINS = DOM0 / "etc" / "xapi.d" / "plugins"
SPEC = DOM0 / "xenapi-plugins.spec"
DEBIAN = DOM0 / "debian"
NAME = "xenapi-plugins"
MAINTAINER = os.environ.get(
    "DOM0_PKG_MAINTAINER", "os-xenapi developers <openstack-discuss@lists.openstack.org>")
# dom0 of XenServer 8 / XCP-ng 8.x has rpm 4.11, which reads xz payloads but not zstd.
RPM_PAYLOAD = "w9.xzdio"


class BuildError(Exception):
    """The package cannot be built; the message says why and what to do."""


def payload() -> list[tuple[Path, str, int]]:
    """Return (source file, path in the package, mode) for every file the packages install."""
    plugins = sorted(PLUGINS.glob("*.py"))
    helpers = sorted((PLUGINS / "dom0lib").glob("*.py"))
    if not plugins or not helpers:
        raise BuildError(f"no plugins found under {PLUGINS}")
    files = [(path, f"etc/xapi.d/plugins/{path.name}", 0o755) for path in plugins]
    files += [(path, f"etc/xapi.d/plugins/dom0lib/{path.name}", 0o644) for path in helpers]
    return files


def _tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if not found:
        raise BuildError(f"{name} is missing: install the Debian package {package} "
                         "(scripts/install-system-deps.sh does it)")
    return found


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise BuildError(f"{Path(argv[0]).name} failed (exit {result.returncode}):\n"
                         + result.stdout[-2000:] + result.stderr[-2000:])


def _fresh(directory: Path) -> Path:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    return directory


def build_rpm(version: str, out: Path, work: Path) -> Path:
    """Build the RPM with rpmbuild from the spec in the tree; return its path."""
    rpmbuild = _tool("rpmbuild", "rpm")
    payload()  # fail early, with a clear message, if the tree has no plugins
    topdir = _fresh(work / "rpm")
    out.mkdir(parents=True, exist_ok=True)
    _run([rpmbuild, "-bb", "--nodeps",
          "--define", f"_topdir {topdir}",
          "--define", f"_rpmdir {out}",
          "--define", "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm",
          "--define", f"_binary_payload {RPM_PAYLOAD}",
          "--define", f"pkg_version {version}",
          "--define", f"plugins_dir {PLUGINS}",
          str(SPEC)])
    package = out / f"{NAME}-{version}-1.noarch.rpm"
    if not package.exists():
        raise BuildError(f"rpmbuild did not write {package}")
    return package


def _fill(template: Path, values: dict[str, str]) -> str:
    text = template.read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    return text


def build_deb(version: str, pep440: str, out: Path, work: Path) -> Path:
    """Stage the package tree with DEBIAN/control and build it with dpkg-deb; return its path."""
    dpkg_deb = _tool("dpkg-deb", "dpkg")
    stage = _fresh(work / "deb" / f"{NAME}_{version}_all")
    installed = payload()
    doc = f"usr/share/doc/{NAME}"
    for source, target, mode in installed:
        destination = stage / target
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
        destination.chmod(mode)
    (stage / doc).mkdir(parents=True)
    shutil.copyfile(DEBIAN / "copyright", stage / doc / "copyright")
    changelog = _fill(DEBIAN / "changelog.in", {
        "VERSION": version, "PEP440": pep440, "MAINTAINER": MAINTAINER,
        "DATE": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())})
    # Debian wants it compressed with no name or time stamp inside (gzip -9n).
    with open(stage / doc / "changelog.gz", "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=raw, mtime=0) as gz:
            gz.write(changelog.encode("utf-8"))
    overrides = stage / "usr" / "share" / "lintian" / "overrides" / NAME
    overrides.parent.mkdir(parents=True)
    shutil.copyfile(DEBIAN / "lintian-overrides", overrides)
    for path in (stage / doc / "copyright", stage / doc / "changelog.gz", overrides):
        path.chmod(0o644)
    for directory in [stage] + [p for p in stage.rglob("*") if p.is_dir()]:
        directory.chmod(0o755)
    files = sorted(p for p in stage.rglob("*") if p.is_file())
    control_dir = stage / "DEBIAN"
    control_dir.mkdir(mode=0o755)
    size_kib = sum((p.stat().st_size + 1023) // 1024 for p in files)
    (control_dir / "control").write_text(_fill(DEBIAN / "control.in", {
        "VERSION": version, "MAINTAINER": MAINTAINER, "INSTALLED_SIZE": str(size_kib)}))
    (control_dir / "md5sums").write_text("".join(
        f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.relative_to(stage)}\n" for p in files))
    for path in control_dir.iterdir():
        path.chmod(0o644)
    out.mkdir(parents=True, exist_ok=True)
    package = out / f"{NAME}_{version}_all.deb"
    _run([dpkg_deb, "--root-owner-group", "-Zxz", "--build", str(stage), str(package)])
    return package


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["rpm", "deb"])
    parser.add_argument("--out", type=Path, default=REPO / "build" / "packages",
                        help="where the package goes")
    parser.add_argument("--work", type=Path, default=REPO / "build" / "dom0-packages",
                        help="scratch directory for staging")
    options = parser.parse_args(argv)
    try:
        pep440 = pkg_version.project_version(REPO / "pyproject.toml")
        version = pkg_version.package_version(pep440)
        out, work = options.out.resolve(), options.work.resolve()
        if options.kind == "rpm":
            package = build_rpm(version, out, work)
        else:
            package = build_deb(version, pep440, out, work)
    except (BuildError, ValueError, OSError) as exc:
        print(f"build_dom0_package: {exc}", file=sys.stderr)
        return 1
    print(package)
    return 0


if __name__ == "__main__":
    sys.exit(main())
