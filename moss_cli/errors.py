"""Domain errors. The library raises these; only the CLI turns them into messages and exit codes."""


class MossError(Exception):
    """Base class for every error `moss` reports to a user in one line."""


class ModelUnavailableError(MossError):
    """The checkpoint cannot be found or downloaded (offline, wrong id, missing file)."""


class CheckpointError(MossError):
    """The checkpoint exists but does not match the MOSS-Audio layout (keys, shapes, config)."""


class AudioError(MossError):
    """An input cannot be used as audio (unreadable, empty, too short, not audio)."""
