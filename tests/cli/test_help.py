"""--help reads right: flags as flags, every default, examples at the bottom, one-line purposes."""

import os
import re
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from moss_cli.cli.app import app
from moss_cli.cli.helptext import EXAMPLES

runner = CliRunner()
GROUP = typer.main.get_command(app)
COMMANDS = sorted(GROUP.commands)


def help_text(*args, columns=80) -> str:
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.stdout


def plain_help(*args, columns=80) -> str:
    """The help click writes without rich (TYPER_USE_RICH=0), as a terminal of `columns` shows it."""
    env = {**os.environ, "TYPER_USE_RICH": "0", "COLUMNS": str(columns)}
    done = subprocess.run([sys.executable, "-m", "moss_cli.cli", *args, "--help"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def lines_of(text: str) -> list[str]:
    """Help lines without rich's box drawing, whitespace collapsed."""
    return [" ".join(re.sub(r"[│╭╮╰╯─]", " ", line).split()) for line in text.splitlines()]


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_flags_are_shown_as_flags(command):
    text = help_text(*([command] if command else []))
    assert "<bool>" not in text and "<list[" not in text and "BOOLEAN" not in text and "[default: False]" not in text


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_that_takes_a_value_shows_its_default(command):
    """A flag is off unless given; every other option shows its default or says what happens without it."""
    unshown = [param.opts[0] for param in GROUP.commands[command].params
               if param.param_type_name == "option" and not param.is_flag
               and not isinstance(param.show_default, str) and (param.default is None or param.show_default is False)]
    assert unshown == []


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_ends_with_its_examples(command):
    lines = [line for line in lines_of(help_text(command)) if line]
    examples = EXAMPLES[command]
    assert lines[-len(examples) - 1 :] == ["Examples:", *examples]  # each on one line at 80 columns


def test_plain_help_at_80_columns_keeps_each_example_on_a_line():
    lines = [line.strip() for line in plain_help("transcribe").splitlines()]
    assert "<bool>" not in "\n".join(lines) and "-h, --help                      Show this message and exit." in lines
    assert [line for line in lines[lines.index("Examples:") + 1 :] if line] == EXAMPLES["transcribe"]


def test_moss_help_lists_every_command_with_its_purpose_on_one_line():
    lines = lines_of(help_text(columns=80))
    for name in COMMANDS:
        purpose = GROUP.commands[name].short_help
        assert purpose and f"{name} {purpose}" in lines


def test_the_offline_model_error_names_the_download_command_and_the_server(wav_file):
    result = runner.invoke(app, ["transcribe", str(wav_file), "-m", "OpenMOSS-Team/MOSS-Audio-8B-Instruct"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    message = result.stderr
    assert "hf download OpenMOSS-Team/MOSS-Audio-8B-Instruct" in message and "--server URL" in message
    assert "--model /path/to/checkpoint" in message
