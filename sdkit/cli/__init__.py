"""The ``sdkit`` command line: :func:`main` parses the arguments and runs one command."""

from sdkit.cli.main import main

__all__ = ["main"]
