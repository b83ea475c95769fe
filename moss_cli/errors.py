"""Domain errors. The library raises these; only the CLI turns them into messages and exit codes."""


class MossError(Exception):
    """Base class for every error `moss` reports to a user in one line."""


class EngineOptionsError(MossError):
    """The engine's options cannot work (a server URL without a host, --quantize with a server): caught before any work."""


class ModelUnavailableError(MossError):
    """The checkpoint cannot be found or downloaded (offline, wrong id, missing file)."""


class CheckpointError(MossError):
    """The checkpoint exists but does not match the MOSS-Audio layout (keys, shapes, config)."""


class AudioError(MossError):
    """An input cannot be used as audio (unreadable, empty, too short, not audio)."""


class ServerError(MossError):
    """A server refused a request, answered nonsense or took too long (after retries): that input fails."""


class RequestTooLongError(ServerError):
    """A request's audio is longer than a server takes (its encoder cache); `max_seconds` fits."""

    def __init__(self, message: str, max_seconds: float):
        super().__init__(message)
        self.max_seconds = max_seconds


class UnsupportedByServerError(MossError):
    """The server cannot do what the command line asks (e.g. --no-time-markers on SGLang): the run ends."""


class ServerUnavailableError(ModelUnavailableError):
    """No server can be reached at all (connection refused, unknown host): the whole run ends."""


class QuestionError(MossError):
    """A question cannot be asked of this recording (it asks about a time past the end)."""
