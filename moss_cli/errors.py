"""Every domain error of moss, and what it means for a run. The library raises these; only the CLI
turns them into one-line messages and exit codes.

Each class says two things: the exit code a run ends with when the error ends it (`exit_code`), and
whether in a batch it fails only the input it is about while the other inputs go on (`fails_input`).
"""

EXIT_OK = 0
EXIT_FAILED = 1  # an input failed, or a run could not finish what it started
EXIT_USAGE = 2  # the command line, the model or the setup cannot work: nothing was done
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT); SIGTERM ends a run with 143
EXIT_BROKEN_PIPE = 141  # the reader of stdout went away (128 + SIGPIPE), as `moss ... | head`


class MossError(Exception):
    """Base class for every error `moss` reports to a user in one line."""

    exit_code = EXIT_USAGE
    fails_input = False  # True: a batch records the failure for this input and goes on


# ---- the command line and its inputs: found before any work -----------------------------------
class UsageError(MossError):
    """The command line asks for something impossible (caught before any work)."""


class InputError(UsageError):
    """The inputs named on the command line cannot be listed (e.g. an unreadable @list file)."""


class ShardError(UsageError):
    """--shard is not K/N with 1 <= K <= N."""


class HintError(UsageError):
    """A --language, --context or --hotwords value that cannot be used."""


class EngineOptionsError(UsageError):
    """The engine's options cannot work (a server URL without a host, --quantize with a server)."""


# ---- the model --------------------------------------------------------------------------------
class ModelUnavailableError(MossError):
    """The checkpoint cannot be found or downloaded (offline, wrong id, missing file)."""


class CheckpointError(MossError):
    """The checkpoint exists but does not match the MOSS-Audio layout (keys, shapes, config)."""


# ---- one input --------------------------------------------------------------------------------
class AudioError(MossError):
    """An input cannot be used as audio (unreadable, empty, too short, not audio)."""

    exit_code = EXIT_FAILED
    fails_input = True


class QuestionError(MossError):
    """A question cannot be asked of this recording (it asks about a time past the end)."""

    fails_input = True


class OutputError(MossError):
    """An output cannot be written for one input (a name clash, a full disk): that input fails."""

    exit_code = EXIT_FAILED
    fails_input = True


# ---- servers ----------------------------------------------------------------------------------
class ServerError(MossError):
    """A server refused a request, answered nonsense or took too long (after retries): that input fails."""

    exit_code = EXIT_FAILED
    fails_input = True


class RequestTooLongError(ServerError):
    """A request's audio is longer than a server takes (its encoder cache); `max_seconds` fits."""

    def __init__(self, message: str, max_seconds: float):
        super().__init__(message)
        self.max_seconds = max_seconds


class UnsupportedByServerError(MossError):
    """The server cannot do what the command line asks (e.g. --no-time-markers on SGLang): the run ends."""


class ServerUnavailableError(ModelUnavailableError):
    """No server can be reached at all (connection refused, unknown host): the whole run ends."""
