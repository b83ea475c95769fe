"""The `moss` command line: the only layer that prints, exits, reads the terminal or knows Typer."""

from ..model.openmp import short_openmp_spin

short_openmp_spin()  # before anything imports torch: OpenMP reads it when it loads

from .app import app  # noqa: E402
from .process import run_and_exit  # noqa: E402

__all__ = ["app", "main"]


def main() -> None:
    """The `moss` console script."""
    run_and_exit(app)
