"""Helpers for the tests of the plugins that move VHD chains (migration, workarounds, glance,
ipxe): an SR mount in the scratch dom0, fake VHD files, and vhd-util answered by
stubs/fake_vhd_util.py through FakeCommands.
"""

import importlib.util
import os
import sys

from . import harness

SR_UUID = "0f5a7c3e-4b1d-4e2f-9a8b-7c6d5e4f3a2b"
SR_PATH = "/var/run/sr-mount/" + SR_UUID
# Nova's uuid_stack: the leaf takes the last UUID.
NEW_UUIDS = ["aaaaaaaa-0000-4000-8000-000000000003", "aaaaaaaa-0000-4000-8000-000000000002",
             "aaaaaaaa-0000-4000-8000-000000000001"]
OLD_UUIDS = ["bbbbbbbb-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002",
             "bbbbbbbb-0000-4000-8000-000000000003"]


def fake_vhd_util():
    """The stubs/fake_vhd_util.py module (make, read, handle)."""
    if "dom0_fake_vhd_util" not in sys.modules:
        spec = importlib.util.spec_from_file_location("dom0_fake_vhd_util",
                                                      str(harness.STUBS / "fake_vhd_util.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["dom0_fake_vhd_util"] = module
    return sys.modules["dom0_fake_vhd_util"]


def use_vhd_util(commands):
    """Let FakeCommands answer vhd-util with the fake."""
    commands.on("vhd-util", handler=fake_vhd_util().handle)


def make_sr(dom0_root, sr_uuid=SR_UUID):
    """Create /var/run/sr-mount/<sr_uuid> in the scratch dom0; return its real Path."""
    sr_dir = dom0_root / "var" / "run" / "sr-mount" / sr_uuid
    sr_dir.mkdir(parents=True)
    return sr_dir


def make_chain(directory, uuids, payloads=None):
    """Write a fake VHD chain <uuid>.vhd in directory, leaf first, each pointing at the next."""
    for index, uuid in enumerate(uuids):
        parent = uuids[index + 1] + ".vhd" if index + 1 < len(uuids) else None
        payload = payloads[index] if payloads else "data-of-" + uuid
        fake_vhd_util().make(directory / (uuid + ".vhd"), parent=parent, payload=payload)


def chain_from(directory, leaf_uuid):
    """Walk the fake chain from <leaf_uuid>.vhd; return [(uuid, payload), ...], leaf first."""
    chain, name = [], leaf_uuid + ".vhd"
    for _ in range(40):
        fields = fake_vhd_util().read(os.path.join(str(directory), name))
        chain.append((name[:-4], fields.get("payload")))
        if "parent" not in fields:
            return chain
        name = fields["parent"]
    raise AssertionError("the chain loops")


def vhd_names(directory):
    """The *.vhd file names in directory, sorted."""
    return sorted(name for name in os.listdir(str(directory)) if name.endswith(".vhd"))


def install_vhd_util_launcher(bin_dir):
    """Write bin_dir/vhd-util, a script that answers as stubs/fake_vhd_util.py does (for
    plugins run as subprocesses); return bin_dir."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    launcher = bin_dir / "vhd-util"
    launcher.write_text(
        f"#!{sys.executable}\nimport sys\nsys.dont_write_bytecode = True\n"
        f"sys.path.insert(0, {str(harness.STUBS)!r})\nimport fake_vhd_util\n"
        "sys.exit(fake_vhd_util.run_command_line(sys.argv))\n")
    launcher.chmod(0o755)
    return bin_dir
