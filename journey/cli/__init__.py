"""The command line: the top layer. Each command group is a module with a register()."""

from journey.cli.main import main

__all__ = ["main"]
