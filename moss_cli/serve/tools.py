"""`moss mcp`: the tasks as MCP tools over stdio (the official `mcp` SDK), on files under the
folders the user allows and nowhere else. Each tool answers with the JSON `moss <task> --json`
writes (structured content, and the same JSON as text for clients that read only text)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import anyio
from mcp.server.mcpserver import MCPServer

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
                       "speakers, sound events, captions, music descriptions and answers about local recordings.")

    async def run(job: Job) -> dict:
        return await anyio.to_thread.run_sync(_run, worker, job)

    @server.tool()
    async def transcribe(path: str, words: bool = False, speakers: str | None = None,
                         language: str | None = None, context: str | None = None) -> dict:
        """Transcribe speech with times (word-level with words=true; speakers: "auto" or a number)."""
        return await run(Job("transcribe", allowed.check(path), path, words=words, speakers=speakers,
                             language=language, context=context))

    @server.tool()
    async def ask(path: str, question: str) -> dict:
        """Ask a question about a recording; the answer as text."""
        return await run(Job("ask", allowed.check(path), path, questions=(question,)))

    @server.tool()
    async def caption(path: str, speech: bool = False) -> dict:
        """Describe what can be heard (speech=true: the voice, as JSON fields)."""
        return await run(Job("caption", allowed.check(path), path, speech=speech))

    @server.tool()
    async def events(path: str) -> dict:
        """Sound events in time order, each with start and end seconds."""
        return await run(Job("events", allowed.check(path), path))

    @server.tool(name="describe-music")
    async def describe_music(path: str) -> dict:
        """Describe music: style, tempo, harmony, instruments, structure, mood."""
        return await run(Job("describe-music", allowed.check(path), path))

    return server


def _run(worker: Worker, job: Job) -> dict:
    """The job's JSON; a problem with the input comes back as the tool's error, in one line."""
    folder = Path(tempfile.mkdtemp(prefix="moss-mcp-"))
    try:
        results = worker.run(job, Watch(), folder)
    except MossError as exc:
        raise ValueError(str(exc)) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return results[0].answer_dict() if job.task == "ask" else results.to_dict()
