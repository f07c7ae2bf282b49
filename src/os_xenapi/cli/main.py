"""The ``os-xenapi`` command: one click group, one small module per subcommand.

os-xenapi simulator --listen 127.0.0.1:8080 --hosts 2
os-xenapi demo
"""

from __future__ import annotations

import click

from .demo import demo
from .simulator_cmd import simulator


@click.group()
@click.version_option(package_name="os-xenapi")
def main() -> None:
    """Manage XenServer and XCP-ng hosts through XAPI, or simulate a pool to test against."""


main.add_command(simulator)
main.add_command(demo)


if __name__ == "__main__":
    main(prog_name="os-xenapi")
