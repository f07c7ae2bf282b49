"""os-xenapi as a user gets it: the sdist and the wheel built from this tree with `python -m
build`, each installed into a new venv outside the checkout, where a Simulator serves
os-xenapi's own dom0 plugins to XenAPISession. Also what the two archives hold (every plugin and
stand-in with its mode, the RPM spec, the Debian files) and that `make rpm` / `make deb` work
from the unpacked sdist.

The wheel is built with the lowest setuptools that pyproject.toml admits, so that the bound is
true; the sdist, and the wheel pip makes of it, with the newest. It reaches only the package
registries, and pip's cache makes later runs quick.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
DOM0 = SRC / "os_xenapi" / "dom0"
DOM0ENV = SRC / "os_xenapi" / "simulator" / "dom0env"
# Files of the dom0 tree for developers of the tree, not for users of a package.
DEVELOPMENT_ONLY = {"ruff.toml", "rpmlint.toml", ".gitkeep"}
# What setuptools says when pyproject.toml uses a form it means to drop.
DEPRECATION = re.compile(r"deprecat|BuildBackendWarning", re.IGNORECASE)

pytestmark = pytest.mark.timeout(600)


def _run(argv: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False,
                            timeout=300, **kwargs)
    shown = " ".join(str(a) for a in argv)[:300]
    assert result.returncode == 0, f"{shown}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def _tree_files(*under: Path) -> list[Path]:
    """The tree's files as git sees them (tracked, or new and not ignored; not caches, not a
    stale egg-info, whose SOURCES.txt setuptools would add to an sdist)."""
    listed = _run(["git", "-C", REPO, "ls-files", "-z", "--cached", "--others",
                   "--exclude-standard", "--", *under]).stdout
    return [REPO / name for name in sorted(set(listed.split("\0")) - {""})
            if (REPO / name).is_file()]


def _shipped_files() -> dict[str, bool]:
    """{path in os_xenapi: must be executable} for every dom0 and dom0env file of the tree."""
    shipped = {}
    for path in _tree_files(DOM0, DOM0ENV):
        if path.name in DEVELOPMENT_ONLY:
            continue
        plugin = path.parent == DOM0 / "etc" / "xapi.d" / "plugins"
        shipped[path.relative_to(SRC).as_posix()] = plugin or path.parent == DOM0ENV / "bin"
    return shipped


def _modes(entries: dict[str, int], prefix: str) -> dict[str, bool]:
    """{path: has exec bits} of the archive entries under os_xenapi/dom0 and dom0env."""
    wanted = ("os_xenapi/dom0/", "os_xenapi/simulator/dom0env/")
    modes = {}
    for name, mode in entries.items():
        inner = name[len(prefix):] if name.startswith(prefix) else name
        if inner.startswith(wanted) and not inner.endswith("/"):
            modes[inner] = mode & 0o111 == 0o111
            assert mode & 0o111 in (0, 0o111), f"{inner} is executable for some only: {mode:o}"
    return modes


def _lower_bound() -> str:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'requires = \["setuptools>=([0-9.]+)"\]', text)
    assert match, "pyproject.toml's build-system must require setuptools>=N"
    return match.group(1)


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The sdist, built with the newest setuptools, and the wheel, with the lowest one the tree
    admits, both from a copy of the tree's files (modes kept). pip builds a wheel from the sdist
    when it installs it."""
    source = tmp_path_factory.mktemp("source")
    for path in _tree_files(REPO):
        copy = source / path.relative_to(REPO)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, copy)
    out = tmp_path_factory.mktemp("dist")
    constraint = out / "constraint.txt"
    constraint.write_text(f"setuptools=={_lower_bound()}\n")
    build = [sys.executable, "-m", "build", "--outdir", out]
    newest = _run([*build, "--sdist", source])
    lowest = _run([*build, "--wheel", source],
                  env={**os.environ, "PIP_CONSTRAINT": str(constraint)})
    [sdist] = out.glob("*.tar.gz")
    [wheel] = out.glob("*.whl")
    return {"sdist": sdist, "wheel": wheel,
            "output": "".join(r.stdout + r.stderr for r in (newest, lowest))}


def _dist_info(wheel_path: Path, name: str) -> str:
    with zipfile.ZipFile(wheel_path) as wheel:
        return wheel.read(next(n for n in wheel.namelist()
                               if n.endswith(f".dist-info/{name}"))).decode()


def test_wheel_is_built_by_the_lowest_setuptools_admitted(dists):
    assert f"Generator: setuptools ({_lower_bound()})" in _dist_info(dists["wheel"], "WHEEL")


def test_neither_setuptools_says_anything_in_pyproject_is_deprecated(dists):
    assert not DEPRECATION.findall(dists["output"])


def test_wheel_states_its_license_as_an_spdx_expression_with_the_text_beside_it(dists):
    metadata = _dist_info(dists["wheel"], "METADATA").split("\n\n", 1)[0].splitlines()
    assert "License-Expression: Apache-2.0" in metadata
    assert "License-File: LICENSE" in metadata
    assert not [line for line in metadata if line.startswith("License:")]
    assert "Apache License" in _dist_info(dists["wheel"], "licenses/LICENSE")


def test_wheel_carries_every_plugin_stand_in_and_packaging_file_with_its_mode(dists):
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        entries = {info.filename: info.external_attr >> 16 for info in wheel.infolist()}
    assert _modes(entries, "") == _shipped_files()


def test_setuptools_takes_no_dom0_directory_for_a_python_package_and_ships_no_bytecode(dists):
    # What setuptools says when it meets files in an importable-looking directory that is not
    # in `packages` (os_xenapi.dom0, .dom0.debian, dom0env.bin...), as include-package-data does.
    assert "absent from the `packages` configuration" not in dists["output"]
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = wheel.namelist()
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_sdist_carries_the_same_dom0_files_and_what_builds_the_packages(dists):
    with tarfile.open(dists["sdist"]) as sdist:
        entries = {m.name: m.mode for m in sdist.getmembers() if m.isfile()}
    prefix = dists["sdist"].name.removesuffix(".tar.gz") + "/"
    assert _modes(entries, prefix + "src/") == _shipped_files()
    for name in ("pyproject.toml", "README.md", "LICENSE", "Makefile",
                 "tools/build_dom0_package.py", "tools/pkg_version.py",
                 "scripts/install-system-deps.sh"):
        assert prefix + name in entries, name


def test_make_rpm_and_deb_work_from_the_unpacked_sdist(dists, tmp_path):
    for tool in ("rpmbuild", "rpm", "dpkg-deb"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing: run scripts/install-system-deps.sh")
    with tarfile.open(dists["sdist"]) as sdist:
        sdist.extractall(tmp_path, filter="tar")
    [tree] = tmp_path.iterdir()
    plugins = sorted(n for n in _shipped_files() if re.fullmatch(
        r"os_xenapi/dom0/etc/xapi\.d/plugins/(dom0lib/)?[^/]+\.py", n))
    expected = sorted("/etc/xapi.d/plugins/" + n.split("/plugins/", 1)[1] for n in plugins)
    out = tmp_path / "packages"
    built = {}
    for kind in ("rpm", "deb"):
        result = _run(["make", "-s", "-C", tree, kind, f"PYTHON={sys.executable}",
                       f"PKG_OUT={out}", f"PKG_WORK={tmp_path / 'work'}"])
        built[kind] = result.stdout.strip().splitlines()[-1]
    rpm = _run(["rpm", "-qp", "--queryformat", "[%{FILEMODES:perms} %{FILENAMES}\n]",
                built["rpm"]]).stdout.split()
    deb = _run(["dpkg-deb", "-c", built["deb"]]).stdout.split()
    assert sorted(p for p in rpm[1::2] if p.endswith(".py")) == expected
    assert sorted("/" + p.lstrip("./") for p in deb if p.endswith(".py")) == expected


# -- installed, and used ---------------------------------------------------------------------

# Run by the venv's own python, from a directory outside the checkout: a dom0 plugin call, and
# one whose plugin runs the simulated dom0's xenstore-write and xenstore-read.
USE = r"""
import json, sys, tempfile
import os_xenapi
from os_xenapi.client import host_xenstore
from os_xenapi.client.session import XenAPISession
from os_xenapi.simulator import Simulator
from os_xenapi.simulator.plugins import default_plugins_dir, dom0_of

with tempfile.TemporaryDirectory() as root, \
        Simulator(vms=1, auth_failure_delay=0, dom0_root=root) as sim:
    with XenAPISession(sim.url, sim.username, sim.password, "dist-test") as session:
        version = session.call_plugin_serialized("dom0_plugin_version.py", "get_version")
        vm = session.VM.get_by_name_label("sim-vm-00001")[0]
        session.call_xenapi("VM.start", vm, False, False)
        domid = int(session.call_xenapi("VM.get_domid", vm))
        host_xenstore.write_record(session, domid, "data/greeting", "hello")
        read = host_xenstore.read_record(session, domid, "data/greeting")
        stored = sim.run(lambda xapi: dom0_of(xapi).xenstore.read(
            xapi.master, f"/local/domain/{domid}/data/greeting"))
json.dump({"os_xenapi": os_xenapi.__file__, "plugins": str(default_plugins_dir()),
           "version": version, "read": read, "stored": stored}, sys.stdout)
"""


def _new_venv(path: Path) -> Path:
    """An empty venv (no pip of its own: the test's pip installs into it); its python."""
    _run([sys.executable, "-m", "venv", "--without-pip", path])
    return path / "bin" / "python"


def _use(python: Path, venv: Path, cwd: Path) -> dict[str, str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "LANG": "C.UTF-8"}
    result = _run([python, "-c", USE], cwd=cwd, env=env)
    used = json.loads(result.stdout)
    for key in ("os_xenapi", "plugins"):
        assert Path(used.pop(key)).is_relative_to(venv), f"{key} is not the venv's"
    return used


EXPECTED_USE = {"version": "3.0", "read": '"hello"', "stored": "hello"}


@pytest.fixture(scope="module")
def wheel_venv(dists, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with the wheel and its dependencies, as `pip install <wheel>` gives them."""
    venv = tmp_path_factory.mktemp("wheel-venv")
    python = _new_venv(venv)
    result = _run([sys.executable, "-m", "pip", "--python", python, "install",
                   "--no-input", dists["wheel"]])
    assert not DEPRECATION.findall(result.stdout + result.stderr)
    return venv


def test_installed_wheel_serves_the_plugins_to_xenapisession(wheel_venv, tmp_path):
    assert _use(wheel_venv / "bin" / "python", wheel_venv, tmp_path) == EXPECTED_USE


def test_installed_sdist_serves_the_plugins_to_xenapisession(dists, wheel_venv, tmp_path):
    # pip builds a wheel of the sdist, with the newest setuptools. The dependencies, already
    # checked with the wheel, come from the wheel's venv, after this venv's os_xenapi on sys.path.
    venv = tmp_path / "sdist-venv"
    python = _new_venv(venv)
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-input", "--no-deps",
          dists["sdist"]])
    [site] = (venv / "lib").glob("python3*/site-packages")
    [deps] = (wheel_venv / "lib").glob("python3*/site-packages")
    (site / "wheel-venv-deps.pth").write_text(f"{deps}\n")
    work = tmp_path / "work"
    work.mkdir()
    assert _use(python, venv, work) == EXPECTED_USE
