"""A request's multipart form read within the size limit, its audio saved to the request's private
folder; every problem an ApiError with a 4xx status that the client can act on."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20


class ApiError(Exception):
    """An OpenAI-style error: `{"error": {"message", "type", "code"}}` with this HTTP status."""

    def __init__(self, status: int, message: str, code: str, kind: str = "invalid_request_error",
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.kind = status, message, code, kind
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": None, "code": self.code}}


@dataclass
class Upload:
    path: Path  # the saved audio
    name: str  # the client's file name, as results name it
    fields: dict[str, list[str]]  # every other field, repeated ones in order

    def one(self, name: str, default: str | None = None) -> str | None:
        values = self.fields.get(name)
        return values[-1] if values else default


def too_large(limit: int) -> ApiError:
    return ApiError(413, f"the upload is larger than this server takes ({limit} bytes)", "file_too_large")


async def read_upload(request, folder: Path, limit: int, known: set[str]) -> Upload:
    """The form's `file` saved to `folder`; a field the route does not know is refused by name (a
    misspelt field would otherwise be ignored silently)."""
    from starlette.datastructures import UploadFile

    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + CHUNK:  # room for the other fields
        raise too_large(limit)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(400, "send the audio as multipart/form-data with the file in a field named 'file'",
                       "invalid_content_type")
    try:
        form = await _limited(request, limit + CHUNK).form(max_files=1, max_fields=64)
    except ApiError:
        raise
    except Exception as exc:  # python-multipart's and Starlette's errors: a malformed or cut-off body
        raise ApiError(400, f"cannot read the form: {_reason(exc)}", "invalid_form") from None
    try:
        fields: dict[str, list[str]] = {}
        audio = None
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key != "file":
                    raise ApiError(400, f"unknown file field {key!r}: send the audio in a field named 'file'",
                                   "unknown_field")
                audio = value
            elif key == "file":
                raise ApiError(400, "the field 'file' holds text, not a file: send the audio as a file upload "
                               "(with a filename)", "missing_file")
            elif key.removesuffix("[]") not in known:
                raise ApiError(400, f"unknown field {key!r}; this route takes {', '.join(sorted(known))}",
                               "unknown_field")
            else:
                fields.setdefault(key.removesuffix("[]"), []).append(value)
        if audio is None:
            raise ApiError(400, "no audio: send the file in a multipart field named 'file'", "missing_file")
        name = safe_name(audio.filename)
        path = folder / f"upload{Path(name).suffix.lower()}"  # decoders pick by extension; the name is ours
        await _save(audio, path, limit)
        return Upload(path, name, fields)
    finally:
        await form.close()


def _limited(request, limit: int):
    """The request, its body cut off with a 413 past `limit` bytes (a chunked upload has no length
    to check beforehand)."""
    from starlette.requests import Request

    received = 0

    async def receive():
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise too_large(limit - CHUNK)
        return message

    return Request(request.scope, receive)


async def _save(audio, path: Path, limit: int) -> None:
    """The upload copied to `path` a chunk at a time, off the event loop (other requests go on meanwhile)."""
    from anyio import open_file

    size = 0
    async with await open_file(path, "wb") as out:
        while chunk := await audio.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            await out.write(chunk)
    if size == 0:
        raise ApiError(400, "the file is empty", "empty_file")


def safe_name(filename: str | None) -> str:
    """The client's file name without folders or control characters (it appears in results and logs)."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = "".join(char for char in name if char.isprintable())[:200].strip()
    return name or "upload"


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "detail", "") or exc).strip() or type(exc).__name__
