#!/usr/bin/env python3
"""Print os-xenapi's version (pyproject.toml's [project] version) as an RPM or Debian version.

The dom0 plugin packages carry the library's version. PEP 440 orders pre-releases before
the release; RPM and dpkg do the same only through "~", which sorts before anything, even
the end of the string. So:

    PEP 440           RPM / Debian        why
    1.2.0             1.2.0
    1.2.0rc1          1.2.0~rc1           a, b, rc sort before the release
    1.2.0.dev3        1.2.0~~dev3         "~~" sorts before "~": dev releases come before a1
    1.2.0rc1.dev2     1.2.0~rc1~~dev2     a dev release of rc1 comes before rc1
    1.2.0.post1       1.2.0.post1         sorts after 1.2.0 in both
    1!1.0, 1.0+local  refused             epochs and local labels have no place in a package

    python tools/pkg_version.py [--pep440 | --rpm | --deb] [pyproject.toml]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_PEP440 = re.compile(
    r"(?P<release>[0-9]+(?:\.[0-9]+)*)"
    r"(?:(?P<pre>a|b|rc)(?P<pre_n>[0-9]+))?"
    r"(?:\.post(?P<post>[0-9]+))?"
    r"(?:\.dev(?P<dev>[0-9]+))?"
)


def project_version(pyproject: Path) -> str:
    """Return the version in pyproject's [project] table; ValueError if there is none."""
    text = pyproject.read_text(encoding="utf-8")
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: read the one line we need.
        section = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
        match = section and re.search(r'^version\s*=\s*"([^"]+)"\s*$', section.group(1), re.M)
        if not match:
            raise ValueError(f"{pyproject}: no version in [project]") from None
        return match.group(1)
    version = tomllib.loads(text).get("project", {}).get("version")
    if not isinstance(version, str):
        raise ValueError(f"{pyproject}: no version in [project]")
    return version


def package_version(version: str) -> str:
    """Map a normalised PEP 440 version to one that sorts the same in RPM and dpkg.

    Raises ValueError for what the mapping does not cover (epochs, local labels, other forms).
    """
    match = _PEP440.fullmatch(version)
    if not match:
        raise ValueError(f"{version!r} is not a PEP 440 version this mapping covers "
                         "(N.N[aN|bN|rcN][.postN][.devN]; no epoch, no +local)")
    result = match.group("release")
    if match.group("pre"):
        result += f"~{match.group('pre')}{match.group('pre_n')}"
    if match.group("post"):
        result += f".post{match.group('post')}"
    if match.group("dev"):
        result += f"~~dev{match.group('dev')}"
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--pep440", action="store_true", help="print the version unchanged")
    form.add_argument("--rpm", action="store_true", help="print the RPM version (default)")
    form.add_argument("--deb", action="store_true", help="print the Debian version")
    parser.add_argument("pyproject", nargs="?", type=Path, default=REPO / "pyproject.toml")
    options = parser.parse_args(argv)
    try:
        version = project_version(options.pyproject)
        print(version if options.pep440 else package_version(version))
    except (OSError, ValueError) as exc:
        print(f"pkg_version: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
