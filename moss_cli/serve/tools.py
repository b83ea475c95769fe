"""`moss mcp`: the tasks as MCP tools over stdio (the official `mcp` SDK), on files under the
folders the user allows and nowhere else. Each tool answers with the JSON `moss <task> --json`
writes (structured content, and the same JSON as text for clients that read only text)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from ..errors import MossError, UsageError
from .work import Job, Watch, Worker


class Allowed:
    """The folders tools may read from; a path is resolved (symlinks, ..) before it is checked."""

    def __init__(self, folders: list[Path]):
        if not folders:
            raise UsageError("moss mcp needs at least one --allow DIR: the folders its tools may read")
        self.folders = []
        for folder in folders:
            resolved = Path(folder).expanduser().resolve()
            if not resolved.is_dir():
                raise UsageError(f"--allow {folder}: not a folder")
            self.folders.append(resolved)

    def check(self, path: str) -> Path:
        resolved = Path(path).expanduser().resolve()
        if not any(resolved.is_relative_to(folder) for folder in self.folders):
            raise UsageError(f"{path}: outside the allowed folders ({', '.join(map(str, self.folders))})")
        if not resolved.is_file():
            raise UsageError(f"{path}: no such file")
        return resolved


def create_server(worker: Worker, allowed: Allowed) -> MCPServer:
    server = MCPServer("moss", instructions="Audio understanding with MOSS-Audio: transcripts with times and "
                       "speakers, sound events, captions, music descriptions, digests and answers about local recordings.")

    async def run(task: str, path: str, **asked) -> dict[str, Any]:
        """The task's JSON; a problem with the path or the audio is the tool's error, in one line."""
        try:
            job = Job(task, allowed.check(path), path, **asked)
            return await anyio.to_thread.run_sync(_run, worker, job)
        except MossError as exc:
            raise ToolError(str(exc)) from None

    @server.tool(structured_output=True)
    async def transcribe(path: str, words: bool = False, speakers: str | None = None,
                         language: str | None = None, context: str | None = None) -> dict[str, Any]:
        """Transcribe speech with times (word-level with words=true; speakers: "auto" or a number)."""
        return await run("transcribe", path, words=words, speakers=speakers, language=language, context=context)

    @server.tool(structured_output=True)
    async def ask(path: str, question: str) -> dict[str, Any]:
        """Ask a question about a recording; the answer as text."""
        return await run("ask", path, questions=(question,))

    @server.tool(structured_output=True)
    async def caption(path: str, speech: bool = False) -> dict[str, Any]:
        """Describe what can be heard (speech=true: the voice, as JSON fields)."""
        return await run("caption", path, speech=speech)

    @server.tool(structured_output=True)
    async def events(path: str) -> dict[str, Any]:
        """Sound events in time order, each with start and end seconds."""
        return await run("events", path)

    @server.tool(name="describe-music", structured_output=True)
    async def describe_music(path: str) -> dict[str, Any]:
        """Describe music: style, tempo, harmony, instruments, structure, mood."""
        return await run("describe-music", path)

    @server.tool(structured_output=True)
    async def summarize(path: str, kind: str = "auto", language: str | None = None, context: str | None = None,
                        min_chapter_seconds: float | None = None, voices: bool = False) -> dict[str, Any]:
        """A digest: short and longer summary, chapters (start, title, gist), key points, and for a meeting
        action items and decisions (kind: meeting, podcast, lecture, interview or auto; language: the
        digest's; voices=true: each speaker's voice profile and each segment's emotion and tone)."""
        return await run("summarize", path, kind=kind, language=language, context=context,
                         min_chapter_seconds=min_chapter_seconds, voices=voices)

    return server


def _run(worker: Worker, job: Job) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="moss-mcp-"))  # where audio that must be converted goes
    try:
        results = worker.run(job, Watch(), folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return results[0].answer_dict() if job.task == "ask" else results.to_dict()
