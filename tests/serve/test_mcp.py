"""`moss mcp` as an MCP client sees it: the SDK's own stdio client starts the command, lists its tools
and calls them on files under --allow (and is refused everywhere else)."""

from __future__ import annotations

import json
import os
import sys

import anyio
import pytest
from typer.testing import CliRunner

pytest.importorskip("mcp", reason="the serve extra is not installed")

from mcp import ClientSession, StdioServerParameters, stdio_client
from support.fake_server import phrase_file
from support.paths import REPO

from moss_cli.cli.app import app


def session_calls(arguments: list[str], calls: list[tuple[str, dict]]):
    """Start `moss mcp ARGUMENTS` over stdio, list its tools, make the calls; (tool names, results)."""
    parameters = StdioServerParameters(command=sys.executable, args=["-m", "moss_cli.cli", "mcp", *arguments],
                                       env={**os.environ, "PYTHONPATH": str(REPO)})

    async def main():
        async with stdio_client(parameters) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            names = sorted(tool.name for tool in (await session.list_tools()).tools)
            return names, [await session.call_tool(name, args) for name, args in calls]

    return anyio.run(main)


def structured(result) -> dict:
    assert not result.is_error, result.content
    text = json.loads(result.content[0].text)  # clients that read only text get the same JSON
    assert text == result.structured_content
    return result.structured_content


def test_tools_answer_with_the_cli_json_inside_the_allowed_folder(tmp_path, fake):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    path, truth = phrase_file(allowed / "talk.wav", 12.0, seed=5)
    outside, _ = phrase_file(tmp_path / "secret.wav", 4.0)
    (allowed / "link.wav").symlink_to(outside)
    names, (transcript, answer, events, caption, escaped, linked, missing) = session_calls(
        ["--allow", str(allowed), "--server", fake.url, "--max-new-tokens", "64"],
        [("transcribe", {"path": str(path)}), ("ask", {"path": str(path), "question": "Who speaks?"}),
         ("events", {"path": str(path)}), ("caption", {"path": str(path)}),
         ("transcribe", {"path": str(allowed / ".." / "secret.wav")}), ("caption", {"path": str(allowed / "link.wav")}),
         ("caption", {"path": str(allowed / "nothing.wav")})])
    assert names == ["ask", "caption", "describe-music", "events", "summarize", "transcribe"]
    cli = CliRunner().invoke(app, ["transcribe", str(path), "--json", "--server", fake.url, "-q",
                                   "--max-new-tokens", "64"])
    assert structured(transcript) == json.loads(cli.stdout)
    assert [s["text"] for s in structured(transcript)["segments"]] == [f"phrase {p.index}." for p in truth]
    assert structured(answer)["answer"] == "heard " + ",".join(str(p.index) for p in truth)
    assert len(structured(events)["events"]) == len(truth)
    assert structured(caption)["task"] == "caption"
    for refused in (escaped, linked):
        assert refused.is_error and "outside the allowed folders" in refused.content[0].text
    assert missing.is_error and "no such file" in missing.content[0].text


def test_without_an_allowed_folder_it_does_not_start():
    result = CliRunner().invoke(app, ["mcp", "--allow", "/no/such/folder"])
    assert result.exit_code == 2 and "--allow /no/such/folder: not a folder" in result.stderr
