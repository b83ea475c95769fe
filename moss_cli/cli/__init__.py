"""The `moss` command line: the only layer that prints, exits, reads the terminal or knows Typer."""

from ..model.openmp import short_openmp_spin

short_openmp_spin()  # before anything imports torch: OpenMP reads it when it loads

from .app import app  # noqa: E402

__all__ = ["app"]
