"""The dom0 plugins' RPM and .deb: built with `make rpm` / `make deb`, inspected with the
packaging tools themselves (rpm -qp, rpmlint, dpkg-deb, lintian), and the .deb unpacked
into a scratch root whose plugin then runs the way XAPI runs it.

Needs Debian's rpm, rpmlint and lintian; they are installed through
scripts/install-system-deps.sh when missing (as `make test` does).
"""

import importlib.util
import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "src" / "os_xenapi" / "dom0" / "etc" / "xapi.d" / "plugins"
TOOLS = ("rpmbuild", "rpm", "rpmlint", "lintian", "dpkg-deb", "dpkg")


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, str(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pkg_version = _load("dom0_pkg_version", REPO / "tools" / "pkg_version.py")
harness = _load("dom0_packages_harness", REPO / "tests" / "unit" / "dom0" / "harness.py")

PLUGIN_NAMES = sorted(p.name for p in PLUGINS.glob("*.py"))
HELPER_NAMES = sorted(p.name for p in (PLUGINS / "dom0lib").glob("*.py"))
EXPECTED = sorted([f"/etc/xapi.d/plugins/{n}" for n in PLUGIN_NAMES]
                  + [f"/etc/xapi.d/plugins/dom0lib/{n}" for n in HELPER_NAMES])


def _run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False,
                          **kwargs)


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    """Build both packages with make into a scratch directory; return {"rpm": path, "deb": path}."""
    if not all(shutil.which(tool) for tool in TOOLS):
        result = _run(["sh", str(REPO / "scripts" / "install-system-deps.sh")])
        missing = [tool for tool in TOOLS if not shutil.which(tool)]
        assert not missing, f"missing {missing}; install-system-deps.sh said:\n{result.stderr}"
    out = tmp_path_factory.mktemp("packages")
    work = tmp_path_factory.mktemp("package-work")
    built = {}
    for kind in ("rpm", "deb"):
        result = _run(["make", "-s", "-C", str(REPO), kind, f"PYTHON={sys.executable}",
                       f"PKG_OUT={out}", f"PKG_WORK={work}"])
        assert result.returncode == 0, result.stdout + result.stderr
        built[kind] = Path(result.stdout.strip().splitlines()[-1])
    return built


@pytest.fixture(scope="module")
def version():
    return pkg_version.package_version(pkg_version.project_version(REPO / "pyproject.toml"))


def _rpm_files(rpm_path):
    """{path: permission string} of the files and directories in the RPM."""
    result = _run(["rpm", "-qp", "--queryformat", "[%{FILEMODES:perms} %{FILENAMES}\n]",
                   str(rpm_path)])
    assert result.returncode == 0, result.stderr
    return dict(reversed(line.split(" ", 1)) for line in result.stdout.splitlines())


def _deb_files(deb_path):
    result = _run(["dpkg-deb", "-c", str(deb_path)])
    assert result.returncode == 0, result.stderr
    files = {}
    for line in result.stdout.splitlines():
        fields = line.split()
        files["/" + fields[5].lstrip("./").rstrip("/")] = fields[0]
    return files


def test_make_rpm_writes_the_noarch_rpm_named_for_the_package_version(packages, version):
    assert packages["rpm"].name == f"xenapi-plugins-{version}-1.noarch.rpm"


def test_rpm_holds_every_plugin_and_helper_under_etc_xapi_d_plugins(packages):
    files = [path for path in _rpm_files(packages["rpm"]) if path.endswith(".py")]
    assert sorted(files) == EXPECTED


def test_rpm_installs_plugins_0755_and_helpers_0644(packages):
    modes = _rpm_files(packages["rpm"])
    assert {modes[f"/etc/xapi.d/plugins/{n}"] for n in PLUGIN_NAMES} == {"-rwxr-xr-x"}
    assert {modes[f"/etc/xapi.d/plugins/dom0lib/{n}"] for n in HELPER_NAMES} == {"-rw-r--r--"}


def test_rpm_has_no_pycache(packages):
    assert not [path for path in _rpm_files(packages["rpm"])
                if "__pycache__" in path or path.endswith(".pyc")]


def test_rpm_requires_python3(packages):
    requires = _run(["rpm", "-qp", "--requires", str(packages["rpm"])]).stdout.split("\n")
    assert "python3" in [line.strip() for line in requires]


def test_rpm_payload_is_one_dom0s_rpm_4_11_can_read(packages):
    requires = _run(["rpm", "-qp", "--requires", str(packages["rpm"])]).stdout
    assert "PayloadIsZstd" not in requires and "PayloadIsXz" in requires


def test_rpmlint_reports_no_errors(packages):
    config = REPO / "src" / "os_xenapi" / "dom0" / "rpmlint.toml"
    result = _run(["rpmlint", "-c", str(config), str(packages["rpm"])])
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 errors" in result.stdout


def test_make_deb_writes_the_all_deb_named_for_the_package_version(packages, version):
    assert packages["deb"].name == f"xenapi-plugins_{version}_all.deb"


def test_deb_control_names_package_version_architecture_and_python3(packages, version):
    fields = {}
    for name in ("Package", "Version", "Architecture", "Depends"):
        fields[name] = _run(["dpkg-deb", "-f", str(packages["deb"]), name]).stdout.strip()
    assert fields == {"Package": "xenapi-plugins", "Version": version, "Architecture": "all",
                      "Depends": "python3"}


def test_deb_holds_every_plugin_and_helper_under_etc_xapi_d_plugins(packages):
    files = [path for path in _deb_files(packages["deb"]) if path.endswith(".py")]
    assert sorted(files) == EXPECTED


def test_deb_installs_plugins_0755_and_helpers_0644(packages):
    modes = _deb_files(packages["deb"])
    assert {modes[f"/etc/xapi.d/plugins/{n}"] for n in PLUGIN_NAMES} == {"-rwxr-xr-x"}
    assert {modes[f"/etc/xapi.d/plugins/dom0lib/{n}"] for n in HELPER_NAMES} == {"-rw-r--r--"}


def test_deb_has_no_pycache(packages):
    assert not [path for path in _deb_files(packages["deb"])
                if "__pycache__" in path or path.endswith(".pyc")]


def test_lintian_reports_no_errors(packages):
    result = _run(["lintian", "--fail-on", "error", str(packages["deb"])])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "\nE: " not in "\n" + result.stdout


@pytest.fixture(scope="module")
def unpacked(packages, tmp_path_factory):
    root = tmp_path_factory.mktemp("scratch-root")
    result = _run(["dpkg", "-x", str(packages["deb"]), str(root)])
    assert result.returncode == 0, result.stderr
    return root


def test_plugin_from_the_unpacked_deb_runs_like_xapi(unpacked):
    plugin = unpacked / "etc" / "xapi.d" / "plugins" / "dom0_plugin_version.py"
    assert harness.run_like_xapi(plugin, "get_version", {"params": "{}"}) == ("Success", '"3.0"')


def test_unpacked_plugin_reads_dom0_files_under_dom0_root(unpacked, tmp_path):
    (tmp_path / "proc" / "net").mkdir(parents=True)
    (tmp_path / "proc" / "net" / "dev").write_text(
        "vif3.0: 100 1 0 0 0 0 0 0 200 2 0 0 0 0 0 0\n")
    plugin = unpacked / "etc" / "xapi.d" / "plugins" / "bandwidth.py"
    status, value = harness.run_like_xapi(plugin, "fetch_all_bandwidth", {},
                                          env_extra={"DOM0_ROOT": str(tmp_path)})
    assert (status, json.loads(value)) == ("Success", {"3": {"0": {"bw_in": 200, "bw_out": 100}}})


def test_unpacked_plugins_leave_no_pycache_behind(unpacked):
    harness.run_like_xapi(unpacked / "etc" / "xapi.d" / "plugins" / "dom0_plugin_version.py",
                          "get_version", {}, direct=True)
    assert not list(unpacked.rglob("__pycache__"))


@pytest.mark.parametrize("pep440,expected", [
    ("1.2.0", "1.2.0"), ("1.2.0rc1", "1.2.0~rc1"), ("1.2.0.dev3", "1.2.0~~dev3"),
    ("1.2.0rc1.dev2", "1.2.0~rc1~~dev2"), ("1.2.0.post1", "1.2.0.post1")])
def test_pep440_versions_map_to_package_versions(pep440, expected):
    assert pkg_version.package_version(pep440) == expected


@pytest.mark.parametrize("pep440", ["1!1.0", "1.0+local", "1.0-1", "v1.0"])
def test_versions_the_mapping_does_not_cover_are_refused(pep440):
    with pytest.raises(ValueError, match="not a PEP 440 version this mapping covers"):
        pkg_version.package_version(pep440)


ORDERED = ["1.0.0.dev0", "1.0.0a1", "1.0.0rc1.dev2", "1.0.0rc1", "1.0.0", "1.0.0.post1", "1.0.1"]


def test_dpkg_orders_mapped_versions_as_pep440_does():
    mapped = [pkg_version.package_version(v) for v in ORDERED]
    for lower, higher in itertools.pairwise(mapped):
        assert _run(["dpkg", "--compare-versions", lower, "lt", higher]).returncode == 0, (
            lower, higher)


def test_rpm_orders_mapped_versions_as_pep440_does():
    if not shutil.which("rpm"):
        pytest.fail("rpm is missing: run scripts/install-system-deps.sh")
    mapped = [pkg_version.package_version(v) for v in ORDERED]
    for lower, higher in itertools.pairwise(mapped):
        result = _run(["rpm", "--eval", f"%{{lua: print(rpm.vercmp('{lower}', '{higher}'))}}"])
        assert result.stdout.strip() == "-1", (lower, higher, result.stderr)
