"""`python -m cxrbank` runs the CLI."""

from cxrbank.cli import main

main()
