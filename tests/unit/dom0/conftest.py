"""Fixtures of the dom0 plugin unit tests: a scratch DOM0_ROOT for every test, fake commands.

Every test runs with DOM0_ROOT set to an empty scratch directory, so no plugin can touch
this machine's /etc, /var/run or /proc by mistake; tests create the files a plugin reads.
"""

import pytest

from . import harness


@pytest.fixture(autouse=True)
def dom0_root(tmp_path, monkeypatch):
    """The scratch directory that stands for dom0's "/" during the test."""
    root = tmp_path / "dom0-root"
    root.mkdir()
    monkeypatch.setenv("DOM0_ROOT", str(root))
    return root


@pytest.fixture
def commands(monkeypatch):
    """A FakeCommands standing in for every process the plugins would start."""
    fake = harness.FakeCommands()
    monkeypatch.setattr(harness.dom0lib().commands, "spawn", fake.spawn)
    return fake


@pytest.fixture
def xenstore_tree(commands):
    """An in-memory xenstore answering the xenstore-* commands, with guest domain 5 present."""
    tree = harness.fake_xenstore_module().XenstoreTree({"/local/domain/5/name": "guest-5"})
    commands.use_xenstore(tree)
    return tree


@pytest.fixture
def failure():
    """The XenAPIPlugin.Failure class the plugins raise (the stand-in's)."""
    return harness.xenapiplugin_stand_in().Failure
