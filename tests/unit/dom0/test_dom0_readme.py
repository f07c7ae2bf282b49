"""The dom0 README stays in step with the code: every exported function and every error code
is listed in it."""

import re

import pytest

from . import harness

README = (harness.DOM0 / "README.md").read_text()
PLUGIN_FILES = sorted(harness.PLUGINS.glob("*.py"))


def _exported(path):
    source = path.read_text()
    register_call = source.split("dom0lib.register(", 1)[1].split(")", 1)[0]
    return [name.strip() for name in register_call.split(",")[1:] if name.strip()]


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: p.name)
def test_the_functions_table_lists_every_exported_function(path):
    row = re.search(rf"^\| `{re.escape(path.name)}` \| (.*) \|$", README, re.M)
    assert row, f"{path.name} has no row in the README's functions table"
    listed = re.findall(r"`([a-z0-9_]+)`", row.group(1))
    assert sorted(listed) == sorted(_exported(path))


@pytest.mark.parametrize("code", harness.dom0lib().errors.ALL_CODES)
def test_the_errors_table_lists_every_code(code):
    assert f"| `{code}` |" in README
