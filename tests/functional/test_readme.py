"""README.md's code blocks run as written, each one alone: a ```python block in a new Python
process from an empty directory (under pytest if it defines tests, as the README means those),
so that no block leans on a name another block made. ```console blocks are terminal sessions to
read, not to run (`make test` would run this suite again; the simulator runs until Ctrl+C); every
block says which of the two it is."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
KINDS = ("python", "console")


def _blocks() -> list[tuple[int, str, str]]:
    """(line, info string, code) of every fenced block of the README."""
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1).strip(), m.group(2))
            for m in FENCE.finditer(text)]


PYTHON = [pytest.param(code, id=f"line-{line}") for line, kind, code in _blocks()
          if kind == "python"]


def test_every_block_is_python_to_run_or_a_console_session_to_read():
    kinds = {line: kind for line, kind, _ in _blocks()}
    assert kinds and {line: kind for line, kind in kinds.items() if kind not in KINDS} == {}


def test_console_blocks_are_commands_at_a_prompt():
    for line, kind, code in _blocks():
        if kind == "console":
            assert code.startswith("$ "), f"README line {line}: a console block starts at $"


@pytest.mark.parametrize("code", PYTHON)
def test_python_block_runs_alone(code: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    if re.search(r"^def test_", code, re.M):
        (tmp_path / "test_readme_block.py").write_text(code)
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                "test_readme_block.py"]
    else:
        argv = [sys.executable, "-c", code]
    result = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=90, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_readme_says_make_test_installs_each_system_package_with_apt_as_root():
    script = (README.parent / "scripts" / "install-system-deps.sh").read_text(encoding="utf-8")
    needed = re.search(r'^NEEDED="([^"]*)"', script, re.M)
    assert needed, "install-system-deps.sh lists its packages in NEEDED"
    packages = {pair.split(":", 1)[1] for pair in needed.group(1).split()}
    text = README.read_text(encoding="utf-8")
    said = re.search(r"`make test` also installs system packages, with `apt-get`, as root\."
                     r"(.*?)\n\n", text, re.S)
    assert said, "README says that make test installs system packages with apt-get as root"
    assert "scripts/install-system-deps.sh" in said.group(1)
    assert {p for p in packages if not re.search(rf"\b{re.escape(p)}\b", said.group(1))} == set()
