"""python -m moss_cli.cli: the same app as the `moss` command."""

from . import main

main()
