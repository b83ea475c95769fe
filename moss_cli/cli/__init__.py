"""The `moss` command line: the only layer that prints, exits, reads the terminal or knows Typer."""

from .app import app

__all__ = ["app"]
