"""``python -m bioflow`` runs the command line (same as the ``bioflow`` script)."""

from bioflow.cli import main

main()
