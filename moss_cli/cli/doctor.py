"""`moss doctor` and `moss models`: what this machine has to run MOSS-Audio with, gathered, not printed.

The checkpoints in the Hugging Face cache (huggingface_hub's own scan), the device and dtype the
engine's own `auto` rules pick here, library versions and threads, and whether each server answers
check-server's probe. The CLI prints the report (cli.py); nothing here prints or exits.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..files import read_small_text
from ..text import printable_name

MOSS_MODEL_TYPE = "moss_audio"  # config.json's model_type in every MOSS-Audio checkpoint
PROBE_TIMEOUT = 10.0  # seconds: a server that answers a one-token question slower is not much use
CONFIG_BYTES = 1 << 20  # a checkpoint's config.json is a few kB: a larger one is not read


@dataclass(frozen=True)
class CachedModel:
    repo_id: str
    size_bytes: int
    size: str  # as huggingface_hub writes it: "10.4G"
    revisions: list[str]  # "<commit[:8]> (main)" per snapshot
    model_type: str | None  # config.json's, where a snapshot has one
    moss_audio: bool  # config says moss_audio, or the name says MOSS-Audio


@dataclass(frozen=True)
class CacheReport:
    path: str
    models: list[CachedModel]  # MOSS-Audio checkpoints first, then the rest
    missing: bool = False  # no cache folder at all (nothing downloaded yet)


@dataclass(frozen=True)
class ServerReport:
    url: str  # without user name or password
    answers: bool
    detail: str  # the served model, or why it does not answer
    seconds: float | None = None  # how long the probe took


@dataclass(frozen=True)
class ModelStatus:
    """Whether the checkpoint a run would use is here, with nothing to download."""

    name: str  # as given (-m, MOSS_MODEL or the default)
    status: str  # where it is, or what it lacks and how to get it
    found: bool  # a local directory or a cached snapshot holding every file a run loads


@dataclass(frozen=True)
class ReleasedModel:
    repo_id: str
    short_name: str  # -m NAME
    size_bytes: int  # its bf16 weights, about
    size: str  # "10.4 GB"
    cached: bool  # a complete snapshot in the Hugging Face cache
    status: str  # "cached", or what is missing and the command that downloads it
    default: bool  # the one a run uses without -m


@dataclass
class DoctorReport:
    versions: dict[str, str]
    device: str  # what --device auto picks
    dtype: str  # what --dtype auto picks on that device
    threads: int  # torch's CPU threads (--threads sets them)
    cpu_cores: int | None
    cache: CacheReport
    servers: list[ServerReport] = field(default_factory=list)
    model: ModelStatus | None = None  # the checkpoint a run would use
    speakers: str = ""  # whether --speakers' default diarizer is installed (the speakers extra)

    @property
    def ok(self) -> bool:
        """Everything asked works: every server given answers, and without servers (a run would load
        the model here) the model is here."""
        model_ok = bool(self.servers) or self.model is None or self.model.found
        return model_ok and all(server.answers for server in self.servers)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "ok": self.ok}, ensure_ascii=False, indent=2)


def hub_cache() -> Path:
    """The hub cache folder as huggingface_hub resolves it (HF_HUB_CACHE, else HF_HOME/hub), read now:
    huggingface_hub reads the variables once, when it is imported."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def cached_models(cache: Path | None = None) -> CacheReport:
    """Every model repo in the hub cache, with its size on disk and revisions; MOSS-Audio ones first."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    cache = cache or hub_cache()
    try:
        info = scan_cache_dir(cache)
    except CacheNotFound:
        return CacheReport(printable_name(cache), [], missing=True)
    models = [_cached_model(repo) for repo in info.repos if repo.repo_type == "model"]
    models.sort(key=lambda model: (not model.moss_audio, model.repo_id.lower()))
    return CacheReport(printable_name(cache), models)


def _cached_model(repo) -> CachedModel:
    """One cached repo, every text in it printable: folder names, refs and config.json are anyone's to
    write (a hostile download, a shared cache), and they reach the terminal and --json."""
    revisions = sorted(repo.revisions, key=lambda revision: revision.last_modified, reverse=True)
    model_type = next((kind for revision in revisions if (kind := _model_type(revision.snapshot_path))), None)
    named = "moss-audio" in repo.repo_id.lower()
    return CachedModel(
        printable_name(repo.repo_id), repo.size_on_disk, repo.size_on_disk_str,
        [_revision_text(revision) for revision in revisions],
        model_type, model_type == MOSS_MODEL_TYPE or (model_type is None and named))


def _revision_text(revision) -> str:
    """"<commit[:8]> (main)": ref names are file names under refs/, printable like any name."""
    refs = f" ({', '.join(sorted(revision.refs))})" if revision.refs else ""
    return printable_name(revision.commit_hash[:8] + refs)


def _model_type(snapshot: Path) -> str | None:
    """config.json's model_type, printable; None when the snapshot has no readable config (none: a
    tokenizer-only download; or one that is not a small regular file of JSON an object deep at most a
    few hundred levels: a FIFO would hang the read, a deeply nested one exhausts the parser's stack)."""
    text = read_small_text(Path(snapshot) / "config.json", CONFIG_BYTES)
    if text is None:
        return None
    try:
        config = json.loads(text)
    except (ValueError, RecursionError):
        return None
    kind = config.get("model_type") if isinstance(config, dict) else None
    return printable_name(kind) if isinstance(kind, str) else None


def environment() -> dict:
    """Versions, the device and dtype `auto` picks (the engine's own rules) and torch's threads."""
    import huggingface_hub
    import torch
    import transformers

    from .. import __version__
    from ..engine.factory import placement

    device, dtype = placement("auto", "auto")
    return {
        "versions": {"moss": __version__, "python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "huggingface_hub": huggingface_hub.__version__},
        "device": device,
        "dtype": dtype,
        "threads": torch.get_num_threads(),
        "cpu_cores": os.cpu_count(),
        "speakers": speakers_status(),
    }


def speakers_status() -> str:
    """Whether --speakers works here: Resemblyzer and its webrtcvad found (not imported: seconds of torch)."""
    from importlib.util import find_spec

    from ..speakers.voices import SPEAKERS_INSTALL

    missing = [name for name in ("resemblyzer", "webrtcvad") if find_spec(name) is None]
    if missing:
        return f"not installed ({', '.join(missing)} missing): {SPEAKERS_INSTALL}"
    return "installed (resemblyzer)"


def probe_server(url: str, api_key: str | None = None, timeout: float = PROBE_TIMEOUT) -> ServerReport:
    """check-server's probe (5 s of quiet noise, its question), asked for one token: does it answer?"""
    from ..engine.factory import probe_server as probe
    from ..engine.factory import redact_url
    from ..errors import MossError

    started = time.monotonic()
    try:
        detail = probe(url, api_key, timeout)
    except MossError as exc:
        return ServerReport(redact_url(url), False, str(exc))
    return ServerReport(redact_url(url), True, detail, round(time.monotonic() - started, 3))


def model_status(model: str, cache: Path | None = None) -> ModelStatus:
    """Where --model would come from (a short name as its hub id): a complete directory, a complete
    snapshot in the hub cache, or nowhere yet (and how to get it). Offline: nothing is downloaded."""
    from ..model.checkpoint import missing_files, model_name

    resolved = model_name(model)
    path = Path(resolved).expanduser()
    if path.is_dir():
        missing = missing_files(path)
        if missing:
            return ModelStatus(model, f"a local directory lacking {', '.join(missing)}", False)
        return ModelStatus(model, "a local directory", True)
    snapshots = _snapshots(resolved, cache or hub_cache())
    if any(not missing_files(snapshot) for snapshot in snapshots):
        return ModelStatus(model, "in the Hugging Face cache", True)
    if snapshots:
        lacks = ", ".join(missing_files(snapshots[0]))
        return ModelStatus(model, f"in the Hugging Face cache without {lacks} (hf download {resolved}, or use --server)",
                           False)
    return ModelStatus(model, f"not in the Hugging Face cache (hf download {resolved}, or use --server)", False)


def _snapshots(repo_id: str, cache: Path) -> list[Path]:
    """The cached snapshots of a hub model repo, newest first ([] for a name that is no hub id)."""
    if repo_id.count("/") != 1 or repo_id.startswith((".", "/", "~")):
        return []
    folder = cache / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    try:
        found = [snapshot for snapshot in folder.iterdir() if snapshot.is_dir()]
    except OSError:  # not there, or unreadable: nothing cached
        return []
    return sorted(found, key=lambda snapshot: snapshot.stat().st_mtime, reverse=True)


def released_models(cache: Path | None = None) -> list[ReleasedModel]:
    """The released MOSS-Audio checkpoints with their sizes, and whether each is cached here (offline)."""
    from .. import DEFAULT_MODEL
    from ..model.checkpoint import RELEASED, missing_files, model_name, short_name

    default = model_name(os.environ.get("MOSS_MODEL") or DEFAULT_MODEL)
    listed = []
    for repo_id, gigabytes in RELEASED.items():
        snapshots = _snapshots(repo_id, cache or hub_cache())
        cached = any(not missing_files(snapshot) for snapshot in snapshots)
        if cached:
            status = "cached"
        elif snapshots:  # e.g. check-server's tokenizer-only download
            status = f"partly cached, lacks {', '.join(missing_files(snapshots[0]))}: hf download {repo_id}"
        else:
            status = f"not cached: hf download {repo_id}"
        listed.append(ReleasedModel(repo_id, short_name(repo_id) or repo_id, int(gigabytes * 1e9), f"{gigabytes:.1f} GB",
                                    cached, status, repo_id == default))
    return listed


def doctor_report(model: str, servers: list[str], api_key: str | None = None,
                  timeout: float = PROBE_TIMEOUT) -> DoctorReport:
    return DoctorReport(**environment(), cache=cached_models(),
                        servers=[probe_server(url, api_key, timeout) for url in servers], model=model_status(model))


def model_lines(cache: CacheReport, every: bool = False) -> list[str]:
    """The cache's MOSS-Audio checkpoints (every: all model repos, others marked), one a line."""
    shown = [model for model in cache.models if every or model.moss_audio]
    if cache.missing:
        return [f"Hugging Face cache {cache.path}: none yet (nothing downloaded)"]
    lines = [f"Hugging Face cache {cache.path}: {len(shown)} {'model repo' if every else 'MOSS-Audio checkpoint'}"
             f"{'' if len(shown) == 1 else 's'}"]
    width = max((len(model.repo_id) for model in shown), default=0)
    for model in shown:
        mark = "" if model.moss_audio else f"  (not MOSS-Audio: {model.model_type or 'no config.json'})"
        lines.append(f"  {model.repo_id:<{width}}  {model.size:>8}  {', '.join(model.revisions)}{mark}")
    others = len(cache.models) - len(shown)
    if others:
        lines.append(f"  and {others} other model repo{'' if others == 1 else 's'} (moss models --all)")
    return lines


def released_lines(released: list[ReleasedModel], cache: str) -> list[str]:
    """`moss models --available`: one released checkpoint a line, its -m name, size and whether cached."""
    lines = [f"Released MOSS-Audio checkpoints (bf16 sizes; cache {cache}):"]
    width = max(len(model.repo_id) for model in released)
    names = [f"-m {model.short_name}{' (default)' if model.default else ''}" for model in released]
    short = max(len(name) for name in names)
    for model, name in zip(released, names):
        lines.append(f"  {model.repo_id:<{width}}  {name:<{short}}  {model.size:>7}  {model.status}")
    return lines


def doctor_lines(report: DoctorReport) -> list[str]:
    versions = ", ".join(f"{name} {version}" for name, version in report.versions.items())
    model = report.model
    lines = [versions,
             f"device (--device auto): {report.device}; dtype (--dtype auto): {report.dtype}",
             f"threads: {report.threads} (CPU cores: {report.cpu_cores or 'unknown'})",
             *([printable_name(f"model (--model {model.name}): {model.status}")] if model else []),
             f"speaker labels (--speakers): {report.speakers}",
             *model_lines(report.cache)]
    for server in report.servers:
        took = f" in {server.seconds:.2f} s" if server.seconds is not None else ""
        verdict = "answers" if server.answers else "does not answer"
        lines.append(f"server {server.url}: {verdict}{took} ({server.detail})")
    return lines
