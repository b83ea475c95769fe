"""Finding a checkpoint: a local directory or a Hugging Face hub id, its files checked.

Without torch or transformers, so that a missing model is reported at once, and the model's
heavy imports can run in the background while the first input is decoded (loading.py).
"""

from __future__ import annotations

from pathlib import Path

from .. import DEFAULT_MODEL
from ..errors import ModelUnavailableError

CONFIG_FILE = "config.json"
SINGLE_WEIGHTS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
# What a client needs from a hub repo; skips README images and the like.
CHECKPOINT_PATTERNS = ["*.json", "*.safetensors", "merges.txt", "vocab.json", "*.jinja"]
TOKENIZER_PATTERNS = ["*.json", "merges.txt", "vocab.json", "*.jinja"]  # no weights: check-server needs only these
HUB_ORG = "OpenMOSS-Team"
# -m 4b, 8b-thinking, ... (any case): the released checkpoints' hub ids.
SHORT_NAMES = {f"{size}{kind}": f"{HUB_ORG}/MOSS-Audio-{size.upper()}-{name}" for size in ("4b", "8b")
               for kind, name in (("", "Instruct"), ("-instruct", "Instruct"), ("-thinking", "Thinking"))}

# The released checkpoints and the size of their bf16 weights, about (for `moss models --available`).
RELEASED = {f"{HUB_ORG}/MOSS-Audio-{size}-{kind}": gigabytes for size, gigabytes in (("4B", 10.4), ("8B", 18.0))
            for kind in ("Instruct", "Thinking")}


def short_name(hub_id: str) -> str | None:
    """The shortest -m name of a released checkpoint (4b, 8b-thinking); None for any other."""
    names = [short for short, full in SHORT_NAMES.items() if full == hub_id]
    return min(names, key=len) if names else None


def model_name(model: str) -> str:
    """`model` with a short name (4b, 8b, 4b-thinking, 8b-instruct, ...) as its hub id; a local
    directory of that name, and any other name, as it is."""
    hub_id = SHORT_NAMES.get(model.strip().lower())
    return model if hub_id is None or Path(model).expanduser().is_dir() else hub_id


def resolve_checkpoint(model: str, *, revision: str | None = None, cache_dir: str | None = None) -> Path:
    """A local checkpoint directory for `model`: the directory itself, or the hub snapshot in the cache.

    Downloads only when the hub is reachable and HF_HUB_OFFLINE is not set.
    """
    model = model_name(model)
    path = Path(model).expanduser()
    if path.is_dir():
        return _check_files(path, model)
    if path.exists() or model.startswith((".", "/", "~")) or model.count("/") != 1:
        raise ModelUnavailableError(
            f"model {model!r}: not a checkpoint directory nor a hub id like {DEFAULT_MODEL!r}"
        )
    return _check_files(_download(model, revision, cache_dir), model)


def resolve_tokenizer(model: str, *, revision: str | None = None) -> Path:
    """A directory holding `model`'s tokenizer files: the checkpoint directory, or the hub files
    without the weights (downloaded when the hub is reachable and HF_HUB_OFFLINE is not set)."""
    model = model_name(model)
    path = Path(model).expanduser()
    if not path.is_dir():
        if path.exists() or model.startswith((".", "/", "~")) or model.count("/") != 1:
            raise ModelUnavailableError(f"model {model!r}: not a checkpoint directory nor a hub id like {DEFAULT_MODEL!r}")
        path = _download(model, revision, None, TOKENIZER_PATTERNS)
    missing = [name for name in ("vocab.json", "merges.txt") if not (path / name).is_file()]
    if missing:
        raise ModelUnavailableError(f"model {model!r}: {path} lacks {', '.join(missing)} (the tokenizer)")
    return path


def _download(repo_id: str, revision: str | None, cache_dir: str | None, patterns=CHECKPOINT_PATTERNS) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

    # `hf` is the command line huggingface_hub ships (huggingface-cli before 1.0); it fills the same cache.
    hint = (f"download it where the hub is reachable (hf download {repo_id}), pass a local directory with "
            "--model /path/to/checkpoint")
    hint += "" if patterns is TOKENIZER_PATTERNS else ", or use a running server with --server URL"
    try:
        folder = snapshot_download(
            repo_id, revision=revision, cache_dir=cache_dir, allow_patterns=patterns
        )
    except LocalEntryNotFoundError:
        raise ModelUnavailableError(
            f"model {repo_id!r}: not in the Hugging Face cache and the hub cannot be reached "
            f"(offline or HF_HUB_OFFLINE=1); {hint}"
        ) from None
    except RepositoryNotFoundError:
        raise ModelUnavailableError(f"model {repo_id!r}: no such repository on the Hugging Face hub; {hint}") from None
    except Exception as exc:  # network and hub errors come in many types; all mean "not available"
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelUnavailableError(f"model {repo_id!r}: cannot be downloaded ({reason}); {hint}") from None
    return Path(folder)


def missing_files(folder: Path) -> list[str]:
    """The files a checkpoint directory needs that `folder` lacks (none: it can be loaded)."""
    required = [CONFIG_FILE, "vocab.json", "merges.txt"]
    missing = [name for name in required if not (folder / name).is_file()]
    if not (folder / SINGLE_WEIGHTS).is_file() and not (folder / WEIGHTS_INDEX).is_file():
        missing.append(f"{SINGLE_WEIGHTS} or {WEIGHTS_INDEX}")
    return missing


def _check_files(folder: Path, model: str) -> Path:
    missing = missing_files(folder)
    if missing:
        raise ModelUnavailableError(
            f"model {model!r}: {folder} lacks {', '.join(missing)}; pass a complete checkpoint directory with --model"
        )
    return folder
