"""Every command's --help, word for word as it was captured (tests/golden/help/): options declared
in groups must list the same flags, defaults, panels and texts as the commands that spelled them out.

A deliberate change of the help regenerates the files: MOSS_WRITE_HELP=1 pytest tests -k help_golden
"""

import json
import os
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from moss_cli.cli.app import app

GOLDEN = Path(__file__).parents[1] / "golden" / "help"
GROUP = typer.main.get_command(app)
COMMANDS = sorted(GROUP.commands)


def rendered(command: str | None) -> str:
    """The rich help at a fixed width (the form a terminal shows)."""
    args = [command] if command else []
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "100", "TERMINAL_WIDTH": "100"})
    assert result.exit_code == 0, result.output
    return result.stdout


def declared(command: str) -> str:
    """Each parameter as click sees it: names, type, default, panel, help; independent of layout."""
    params = []
    for param in GROUP.commands[command].params:
        default = param.default
        params.append({
            "name": param.name, "opts": param.opts, "secondary": getattr(param, "secondary_opts", None),
            "kind": param.param_type_name, "type": repr(getattr(param, "type", None)),
            "multiple": getattr(param, "multiple", None),
            "default": default if isinstance(default, (str, int, float, bool, type(None))) else repr(default),
            "required": param.required, "envvar": getattr(param, "envvar", None),
            "flag": getattr(param, "is_flag", False), "show_default": getattr(param, "show_default", None),
            "panel": getattr(param, "rich_help_panel", None), "help": getattr(param, "help", None),
            "metavar": getattr(param, "metavar", None),
        })
    return json.dumps(params, indent=1, ensure_ascii=False, default=repr) + "\n"


def by_panel(declarations: str) -> list:
    """The parameters panel by panel, panels in the order they first appear, each keeping its own order:
    the order --help shows. Options written into a command from groups (see cli/groups.py) keep each
    panel's order but not the order across panels the commands had when the files were captured."""
    params = json.loads(declarations)
    panels = list(dict.fromkeys(param["panel"] for param in params))
    return sorted(params, key=lambda param: panels.index(param["panel"]))


def check(name: str, text: str, seen=lambda text: text) -> None:
    """`seen`: what of the text must stay as captured."""
    path = GOLDEN / name
    if os.environ.get("MOSS_WRITE_HELP") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert seen(text) == seen(path.read_text(encoding="utf-8")), f"{name} differs from the captured help"


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_matches_the_golden_text(command):
    check(f"{command or 'moss'}.txt", rendered(command))


@pytest.mark.parametrize("command", COMMANDS)
def test_parameters_match_the_golden_declarations(command):
    check(f"{command}.json", declared(command), seen=by_panel)


def test_every_command_has_golden_help():
    assert sorted(path.stem for path in GOLDEN.glob("*.json")) == COMMANDS
