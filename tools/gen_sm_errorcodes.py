#!/usr/bin/env python3
"""Write the simulator's SM error table (src/os_xenapi/simulator/sm/errorcodes.json).

The storage manager (xapi-project/sm) names its errors by key (``ConfigTargetMissing``) and looks
up a number and a description in ``XE_SR_ERRORCODES.xml``; XAPI turns number N into the API error
``SR_BACKEND_FAILURE_N``. The simulator never reads shared/ at run time, so this tool copies the
table into a small JSON file: ``{key: {"value": N, "description": "..."}}``, descriptions kept
character for character (some end with a space, and clients compare them).

    python tools/gen_sm_errorcodes.py ../shared/xapi/XE_SR_ERRORCODES.xml
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent.parent / "src/os_xenapi/simulator/sm/errorcodes.json"


def read_table(path: Path) -> dict[str, dict[str, object]]:
    """Every ``<code>`` of the XML file as key -> value and description; raises on a bad entry."""
    root = ElementTree.parse(path).getroot()
    if root.tag != "SM-errorcodes":
        raise ValueError(f"{path}: root element is <{root.tag}>, expected <SM-errorcodes>")
    table: dict[str, dict[str, object]] = {}
    for index, code in enumerate(root.iter("code")):
        name = code.findtext("name")
        value = code.findtext("value")
        description = code.findtext("description")
        if not name or value is None or description is None:
            raise ValueError(f"{path}: <code> number {index + 1} lacks name, value or description")
        if name in table:
            raise ValueError(f"{path}: error key {name!r} is defined twice")
        table[name] = {"value": int(value), "description": description}
    return table


def main(argv: list[str]) -> int:
    """Write errorcodes.json from the XML file named in argv[1]; returns the exit status."""
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    table = read_table(Path(argv[1]))
    OUTPUT.write_text(json.dumps(table, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    print(f"wrote {len(table)} SM error codes to {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
