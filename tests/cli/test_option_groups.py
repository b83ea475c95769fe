"""Options declared once: a group's fields become a command's options, the command gets one instance
per group, and what one command changes of a group stays with that command."""

from dataclasses import dataclass
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from moss_cli.cli.app import app as moss
from moss_cli.cli.groups import Change, OptionGroup, changing, only, options, without
from moss_cli.cli.options import (
    EngineOptions,
    EngineSpec,
    OutputOptions,
    ServerOptions,
    SubtitleOptions,
    writes,
)
from moss_cli.errors import UsageError
from moss_cli.output.subtitles import CueLayout

runner = CliRunner()


@dataclass(frozen=True)
class Knobs(OptionGroup):
    size: Annotated[int, typer.Option(min=1, rich_help_panel="Knobs", help="How big.")] = 3
    colour: Annotated[str, typer.Option("--colour", "-c", rich_help_panel="Knobs", help="Which colour.")] = "red"
    loud: Annotated[bool, typer.Option("--loud", rich_help_panel="Knobs", help="Make noise.")] = False
    seen: tuple[str, ...] = ()  # the group's own state, not an option


def app_of(*commands) -> typer.Typer:
    app = typer.Typer()
    app.callback()(lambda: None)  # a group of commands even with one: called by name, as moss's are
    for command in commands:
        app.command()(options(command))
    return app


def params(app: typer.Typer, command: str) -> dict:
    group = typer.main.get_command(app)
    return {param.name: param for param in group.commands[command].params}


def test_a_groups_fields_become_options_with_their_defaults_and_declarations():
    def paint(name: str, *, knobs: Knobs) -> None:
        pass

    declared = params(app_of(paint), "paint")
    assert list(declared) == ["name", "size", "colour", "loud"]  # in place of the group, in its order
    assert declared["size"].default == 3 and declared["size"].help == "How big."
    assert declared["colour"].opts == ["--colour", "-c"] and declared["colour"].rich_help_panel == "Knobs"
    assert declared["loud"].is_flag


def test_the_command_gets_one_instance_of_each_group():
    got = []

    def paint(name: str, *, knobs: Knobs, more: Annotated[Knobs, only()]) -> None:
        got.append((name, knobs, more))

    result = runner.invoke(app_of(paint), ["paint", "door", "--size", "5", "--loud"])
    assert result.exit_code == 0, result.output
    assert got == [("door", Knobs(5, "red", True), Knobs())]


def test_only_shows_those_options_in_its_order_and_the_others_keep_their_defaults():
    got = []

    def paint(*, knobs: Annotated[Knobs, only("loud", "size")]) -> None:
        got.append(knobs)

    app = app_of(paint)
    assert list(params(app, "paint")) == ["loud", "size"]
    assert runner.invoke(app, ["paint", "--colour", "blue"]).exit_code == 2  # not an option of this command
    assert runner.invoke(app, ["paint", "--size", "2"]).exit_code == 0
    assert got == [Knobs(size=2)]


def test_a_change_holds_for_its_command_only():
    def paint(*, knobs: Annotated[Knobs, without("loud", size=Change(7, help="Bigger.", rich_help_panel=None))]):
        pass

    def draw(*, knobs: Knobs):
        pass

    app = app_of(paint, draw)
    changed, kept = params(app, "paint")["size"], params(app, "draw")["size"]
    assert (changed.default, changed.help, changed.rich_help_panel) == (7, "Bigger.", None)
    assert (kept.default, kept.help, kept.rich_help_panel) == (3, "How big.", "Knobs")
    assert "loud" not in params(app, "paint")
    assert Knobs().size == 3


def test_mistakes_in_a_commands_groups_fail_when_it_is_declared():
    def unknown(*, knobs: Annotated[Knobs, only("weight")]):
        pass

    def twice(*, knobs: Knobs, again: Knobs):
        pass

    def no_such_attribute(*, knobs: Annotated[Knobs, changing(size=Change(colourful=True))]):
        pass

    for command, message in [(unknown, "no option weight"), (twice, "named twice"),
                             (no_such_attribute, "no 'colourful'")]:
        with pytest.raises(TypeError, match=message):
            options(command)


def test_a_usage_error_in_a_command_is_one_line_and_exit_2():
    def paint(*, knobs: Knobs):
        raise UsageError("--size: too big")

    result = runner.invoke(app_of(paint), ["paint"])
    assert result.exit_code == 2 and result.stderr == "moss: error: --size: too big\n"


def test_all_means_the_formats_the_command_writes_in_the_order_outputs_are_written():
    got = []

    def caption(*, output: Annotated[OutputOptions, writes("json", "txt", "html")]):
        got.append(output.formats())

    app = app_of(caption)
    assert [name for name in params(app, "caption")][:4] == ["json_", "txt", "html", "all_"]
    for args, formats in [([], ("txt",)), (["--json"], ("json",)), (["--all"], ("txt", "json", "html"))]:
        assert runner.invoke(app, ["caption", *args]).exit_code == 0
        assert got.pop() == formats


def test_subtitle_defaults_are_the_layouts():
    assert SubtitleOptions().layout() == CueLayout()
    assert SubtitleOptions(highlight_words=True).layout(words=True) == CueLayout(words=True, highlight_words=True)
    with pytest.raises(UsageError):
        SubtitleOptions(min_cue_seconds=9.0).layout()


def test_engine_and_server_make_the_engine_choice():
    choice = EngineOptions(device="cpu", threads=2).spec(ServerOptions(server=["http://a/v1"], thinking=True))
    assert choice == EngineSpec(EngineOptions.model, "cpu", "auto", True, ["http://a/v1"], None, None, 600.0,
                                  thinking=True, threads=2)


@pytest.mark.parametrize(("command", "option", "default", "help_"), [
    ("ask", "max_new_tokens", 1024, "Most tokens per answer."),
    ("transcribe", "max_new_tokens", None, "Most tokens to generate per request."),
    ("check-server", "timeout", 120.0, None),
    ("doctor", "timeout", 10.0, "Seconds each server may take to answer."),
    ("events", "timeout", 600.0, None),
])
def test_moss_commands_keep_their_own_defaults(command, option, default, help_):
    param = params(moss, command)[option]
    assert param.default == default and (help_ is None or param.help == help_)
