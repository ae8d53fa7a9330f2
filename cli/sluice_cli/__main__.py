"""``python -m sluice_cli``: the ``sluice`` command without the installed script."""

from sluice_cli.main import main

main()
