"""The HTTP API: OpenAI's POST /v1/audio/transcriptions and GET /v1/models, moss's other tasks
under /v1/audio/, a health route and an upload page. FastAPI (and Starlette under it) does the HTTP;
the work runs in a thread per request (admission.py) on the worker's one engine (work.py)."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from ..errors import AudioError, MossError, QuestionError, ServerError, UsageError
from ..results import json_text
from .admission import Busy, Slots, Ticket
from .formats import FORMATS, MEDIA_TYPES, Deltas, done_event, transcript_body
from .page import UPLOAD_PAGE
from .uploads import ApiError, Upload, read_upload
from .work import Cancelled, Job, TooLong, Worker

log = logging.getLogger("moss.serve")

# The form fields each route reads, with what /docs says about them (`file` is the audio, always).
COMMON_FIELDS = {"model": "any name (one model is served)", "temperature": "0 decodes greedily (the default)",
                 "prompt": "names, spellings, what the recording is about (moss's --context)"}
TRANSCRIBE_DOCS = {**COMMON_FIELDS, "language": "the speech's language (en, zh, German, ...)",
                   "response_format": "json, text, srt, vtt, verbose_json or diarized_json",
                   "timestamp_granularities[]": "word: verbose_json lists the words with their times",
                   "stream": "true: server-sent events, one per segment",
                   "speakers": "auto or a number: label who speaks (diarized_json implies auto)"}
TRANSCRIBE_FIELDS = {name.removesuffix("[]") for name in TRANSCRIBE_DOCS} | {"include", "chunking_strategy"}
TASK_DOCS = {**COMMON_FIELDS, "response_format": "json (the default) or text (summarize: the Markdown digest)"}
TASK_FIELDS = set(TASK_DOCS)
EXTRA_DOCS = {"ask": {"question": "a question, sent verbatim; repeat the field for several"},
              "caption": {"speech": "true: describe the voice, as JSON fields"},
              "summarize": {"kind": "meeting, podcast, lecture, interview or auto (the default)",
                            "language": "the digest's language (en, zh, German, ...); the recording's by default",
                            "context": "what the recording is about, names, spellings (as prompt)",
                            "min_chapter_seconds": "shortest chapter, in seconds (60 by default)",
                            "speakers": "auto or a number: label who speaks in the transcript",
                            "voices": "true: each speaker's voice profile and each segment's emotion and tone"}}
WAIT_SLICE = 0.25  # seconds between looks at whether the client is still there


class MossJSON(JSONResponse):
    """JSON as the CLI writes it: a non-finite number from a model's answer is null, never a 500."""

    def render(self, content) -> bytes:
        return json_text(content).encode("utf-8")


@dataclass(frozen=True)
class ServeSettings:
    api_key: str | None = None  # clients send it as `Authorization: Bearer KEY`; None: no key asked
    max_upload_bytes: int = 200 * 1024 * 1024
    max_concurrency: int = 1  # requests worked on at once
    max_queue: int = 8  # requests waiting for a place; more are answered 429
    request_timeout: float = 600.0  # seconds a request may take from upload to answer


def create_app(worker: Worker, settings: ServeSettings = ServeSettings()) -> FastAPI:
    app = FastAPI(title="moss", docs_url="/docs", redoc_url=None, default_response_class=MossJSON)
    app.state.worker, app.state.settings = worker, settings
    app.state.slots = Slots(settings.max_concurrency, settings.max_queue)
    _error_handlers(app)
    _routes(app, worker, settings, app.state.slots)
    app.add_middleware(AccessLog)
    return app


def _routes(app: FastAPI, worker: Worker, settings: ServeSettings, slots: Slots) -> None:
    @app.get("/health")
    async def health():
        return {"status": "ok", "model": worker.model, "admitted": slots.admitted}

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return UPLOAD_PAGE

    @app.get("/v1/models")
    async def models(request: Request):
        authorize(request, settings)
        return {"object": "list", "data": [{"id": worker.model, "object": "model", "created": 0, "owned_by": "moss"}]}

    @app.post("/v1/audio/transcriptions", openapi_extra=form_docs(TRANSCRIBE_DOCS))
    async def transcriptions(request: Request):
        return await transcribe(request, worker, settings, slots)

    for task in ("events", "caption", "describe-music", "ask", "summarize"):
        app.add_api_route(f"/v1/audio/{task}", _task_route(task, worker, settings, slots), methods=["POST"],
                          name=task, openapi_extra=form_docs({**TASK_DOCS, **EXTRA_DOCS.get(task, {})}))

    @app.post("/report", response_class=HTMLResponse, openapi_extra=form_docs(
        {"task": "transcribe (the default), events, caption, describe-music or summarize"}))
    async def report(request: Request):
        return await report_page(request, worker, settings, slots)


def form_docs(fields: dict[str, str]) -> dict:
    """The multipart form a route reads, for /docs (the routes read it themselves, to name a wrong field)."""
    properties = {"file": {"type": "string", "format": "binary", "description": "the audio or video file"}}
    properties |= {name: {"type": "string", "description": text} for name, text in fields.items()}
    schema = {"type": "object", "required": ["file"], "properties": properties}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


def _task_route(task: str, worker: Worker, settings: ServeSettings, slots: Slots):
    known = TASK_FIELDS | set(EXTRA_DOCS.get(task, {})) | ({"questions"} if task == "ask" else set())

    async def route(request: Request):
        authorize(request, settings)
        with admitted(slots) as ticket:
            upload = await read_upload(request, ticket.folder, settings.max_upload_bytes, known)
            fmt = upload.one("response_format", "json")
            if fmt not in ("json", "text") or (task == "ask" and fmt != "json"):
                raise ApiError(400, f"response_format {fmt!r}: this route answers json{'' if task == 'ask' else ' or text'}",
                               "invalid_response_format")
            questions = tuple(upload.fields.get("question", []) + upload.fields.get("questions", []))
            if task == "ask" and not any(question.strip() for question in questions):
                raise ApiError(400, "ask needs a question: the field 'question', once per question", "missing_question")
            job = Job(task, upload.path, upload.name, speech=flag(upload, "speech"), context=context(upload),
                      questions=questions, temperature=number(upload, "temperature"))
            if task == "summarize":
                job = digest_job(job, upload)
            results = await finished(request, ticket, settings, lambda: worker.run(job, ticket.watch, ticket.folder))
        if task == "ask":  # `moss ask --json`: one object per question
            return MossJSON([result.answer_dict() for result in results])
        if fmt == "text":
            text = markdown(results) if task == "summarize" else results.text + "\n"
            return Response(text, media_type="text/plain; charset=utf-8")
        return MossJSON(results.to_dict())  # what `moss <task> --json` writes

    route.__name__ = task.replace("-", "_")
    return route


def digest_job(job: Job, upload: Upload) -> Job:
    """summarize's fields: `context` (or OpenAI's `prompt`), kind, language, shortest chapter, speakers, voices."""
    given = " ".join((upload.one("context") or "").split()) or None
    shortest = upload.one("min_chapter_seconds")
    try:
        shortest = float(shortest) if shortest is not None and shortest.strip() else None
    except ValueError:
        raise ApiError(400, f"min_chapter_seconds {shortest!r} is not a number", "invalid_value") from None
    return replace(job, context=given or job.context, kind=(upload.one("kind") or "auto").strip().lower(),
                   language=upload.one("language") or None, min_chapter_seconds=shortest,
                   speakers=upload.one("speakers") or None, voices=flag(upload, "voices"))


def markdown(result) -> str:
    """The digest as `moss summarize` prints it."""
    import io

    from ..output.chapters import MarkdownWriter

    text = io.StringIO()
    MarkdownWriter().write(result, text)
    return text.getvalue()


async def transcribe(request: Request, worker: Worker, settings: ServeSettings, slots: Slots):
    authorize(request, settings)
    with admitted(slots) as ticket:
        upload = await read_upload(request, ticket.folder, settings.max_upload_bytes, TRANSCRIBE_FIELDS)
        fmt = upload.one("response_format", "json")
        if fmt not in FORMATS:
            raise ApiError(400, f"response_format {fmt!r}: one of {', '.join(FORMATS)}", "invalid_response_format")
        words = "word" in upload.fields.get("timestamp_granularities", [])
        speakers = upload.one("speakers") or ("auto" if fmt == "diarized_json" else None)
        job = Job("transcribe", upload.path, upload.name, words=words, speakers=speakers,
                  language=upload.one("language") or None, context=context(upload),
                  temperature=number(upload, "temperature"))
        if flag(upload, "stream"):
            if speakers is not None:
                raise ApiError(400, "speakers are found over the whole recording: ask without stream=true",
                               "unsupported_stream")
            return await streamed(request, ticket, settings, worker, job)
        result = await finished(request, ticket, settings, lambda: worker.run(job, ticket.watch, ticket.folder))
    body = transcript_body(result, fmt, job.language, words)
    if isinstance(body, str):
        return Response(body, media_type=MEDIA_TYPES[fmt] + "; charset=utf-8")
    return MossJSON(body)


async def report_page(request: Request, worker: Worker, settings: ServeSettings, slots: Slots):
    """The upload page's form: the task's result as moss's --html report page, the audio embedded."""
    from ..output.report import page_context, render_page

    authorize(request, settings)
    with admitted(slots) as ticket:
        upload = await read_upload(request, ticket.folder, settings.max_upload_bytes, {"task"})
        task = upload.one("task", "transcribe")
        if task not in ("transcribe", "events", "caption", "describe-music", "summarize"):
            raise ApiError(400, f"task {task!r}: transcribe, events, caption, describe-music or summarize",
                           "invalid_task")
        job = Job(task, upload.path, upload.name)
        kept = []
        result = await finished(request, ticket, settings, lambda: worker.run(
            job, ticket.watch, ticket.folder, keep=lambda source: kept.append(
                page_context(source, upload.path, None, "embed", {}))))
    return HTMLResponse(render_page([result], kept[0] if kept else None))


# ---- running a request's work --------------------------------------------------------------------
@contextmanager
def admitted(slots: Slots) -> Iterator[Ticket]:
    """A place in the queue for the request (429 when none), given back if its work never starts."""
    try:
        ticket = slots.admit()
    except Busy as exc:
        raise ApiError(429, str(exc), "rate_limit_exceeded", "rate_limit_error",
                       {"Retry-After": str(exc.retry_after)}) from None
    try:
        yield ticket
    except BaseException:
        if not ticket.started:
            ticket.release()
        raise


async def finished(request: Request, ticket: Ticket, settings: ServeSettings, work):
    """`work()`'s result, run in the ticket's thread; the work is stopped when the client goes away or
    the request's time runs out (504)."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    ticket.start(work, lambda result, error: _soon(loop, _settle, future, result, error))
    deadline = loop.time() + settings.request_timeout
    try:
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ApiError(504, f"the request took longer than {settings.request_timeout:g} s", "timeout",
                               "timeout_error")
            done, _ = await asyncio.wait({future}, timeout=min(WAIT_SLICE, remaining))
            if done:
                return future.result()
            if await request.is_disconnected():
                raise as_api_error(Cancelled("the client went away"))
    finally:
        if not future.done():
            ticket.watch.cancel.set()  # the thread stops at its next chunk and removes the upload
            future.cancel()  # what it ends with then has no one to go to


def _soon(loop: asyncio.AbstractEventLoop, callback, *args) -> None:
    """`callback(*args)` on the server's loop, from a request's thread; a server shut down meanwhile
    has no one left to tell."""
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # the loop is closed
        pass


def _settle(future: asyncio.Future, result, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(as_api_error(error))
    else:
        future.set_result(result)


async def streamed(request: Request, ticket: Ticket, settings: ServeSettings, worker: Worker, job: Job):
    """Server-sent events, a transcript.text.delta per segment as its chunk is parsed, then
    transcript.text.done. Bad audio is still a 4xx: the response starts once the audio is open."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    ticket.start(lambda: worker.stream(job, ticket.watch, ticket.folder,
                                       lambda piece: _soon(loop, queue.put_nowait, ("piece", piece))),
                 lambda result, error: _soon(loop, queue.put_nowait, ("end", (result, error))))
    deadline = loop.time() + settings.request_timeout
    kind, value = await _next(queue, deadline, ticket)
    if kind == "end":  # failed before any audio was read
        raise as_api_error(value[1] or MossError("the transcript ended before it began"))

    async def events():
        deltas = Deltas()
        try:
            while True:
                kind, value = await _next(queue, deadline, ticket)
                if kind == "piece":
                    for event in deltas.events(value):
                        yield _sse(event)
                    continue
                result, error = value
                yield _sse(done_event(result) if error is None else {"type": "error", **as_api_error(error).body()})
                return
        except ApiError as exc:
            yield _sse({"type": "error", **exc.body()})
        finally:
            ticket.watch.cancel.set()  # a client that hangs up stops the work; after the end it changes nothing

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


async def _next(queue: asyncio.Queue, deadline: float, ticket: Ticket):
    remaining = deadline - asyncio.get_running_loop().time()
    try:
        return await asyncio.wait_for(queue.get(), max(0.0, remaining))
    except (asyncio.TimeoutError, TimeoutError):
        ticket.watch.cancel.set()
        raise ApiError(504, "the request took too long", "timeout", "timeout_error") from None


def _sse(event: dict) -> str:
    return f"data: {json_text(event)}\n\n"


def as_api_error(exc: BaseException) -> ApiError:
    """What the client is told: its own mistakes as 4xx with the reason, ours as a 500 without details."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, TooLong):
        return ApiError(400, str(exc), "audio_too_long")
    if isinstance(exc, AudioError):
        return ApiError(400, str(exc), "invalid_audio")
    if isinstance(exc, (UsageError, QuestionError)):
        return ApiError(400, str(exc), "invalid_value")
    if isinstance(exc, Cancelled):
        return ApiError(499, str(exc), "cancelled")
    if isinstance(exc, ServerError):
        return ApiError(502, f"the model server failed: {exc}", "upstream_error", "server_error")
    log.error("internal error", exc_info=(type(exc), exc, exc.__traceback__))
    message = str(exc) if isinstance(exc, MossError) else "internal error (see the server's log)"
    return ApiError(500, message, "internal_error", "server_error")


# ---- fields, keys, errors, the log ---------------------------------------------------------------
def flag(upload: Upload, name: str) -> bool:
    return (upload.one(name) or "").strip().lower() in ("true", "1", "yes", "on")


def number(upload: Upload, name: str) -> float | None:
    value = upload.one(name)
    if value is None or not value.strip():
        return None
    try:
        parsed = float(value)
    except ValueError:
        raise ApiError(400, f"{name} {value!r} is not a number", "invalid_value") from None
    if not 0 <= parsed <= 2:
        raise ApiError(400, f"{name} must be between 0 and 2, got {value}", "invalid_value")
    return parsed


def context(upload: Upload) -> str | None:
    """OpenAI's `prompt` (text that guides the model: names, spellings) as moss's --context, on one line."""
    return " ".join((upload.one("prompt") or "").split()) or None


def authorize(request: Request, settings: ServeSettings) -> None:
    if settings.api_key is None:
        return
    given = request.headers.get("authorization", "")
    scheme, _, key = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(key.strip().encode(), settings.api_key.encode()):
        raise ApiError(401, "a valid API key is needed: Authorization: Bearer KEY", "invalid_api_key",
                       "authentication_error")


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request, exc: ApiError):
        return MossJSON(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return MossJSON(ApiError(exc.status_code, str(exc.detail), code).body(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc: RequestValidationError):
        return MossJSON(ApiError(400, "invalid request", "invalid_value").body(), status_code=400)

    @app.exception_handler(Exception)
    async def internal(request, exc: Exception):
        error = as_api_error(exc)
        return MossJSON(error.body(), status_code=error.status)


class AccessLog:
    """One line per request: client, method, path (no query string), status, seconds. Never a header
    (where the key travels) or a body (the audio)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        began, status = time.monotonic(), [500]

        async def sending(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            client = scope.get("client") or ("-", 0)
            path = json.dumps(scope["path"])[1:-1]  # escaped: a path cannot write lines of its own into the log
            log.info("%s %s %s %d %.2fs", client[0], scope["method"], path, status[0], time.monotonic() - began)
