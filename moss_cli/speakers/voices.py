"""Who speaks when: a voice embedding for each piece of speech, clustered into speakers.

The result is a timeline of `Turn`s; `attribution.py` puts it on the transcript. The default
diarizer is Resemblyzer's GE2E voice encoder, whose weights ship inside its wheel (it works
offline and costs about 1% of real time on a CPU), installed with moss's `speakers` extra
(SPEAKERS_INSTALL); `pyannote` runs pyannote.audio's pipeline where it is installed and cached.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import Protocol

import numpy as np

from ..audio.constants import SAMPLE_RATE
from ..errors import ModelUnavailableError
from ..text import one_line_problem, printable_name
from .known import matched_names

DIARIZERS = ("resemblyzer", "pyannote")
# Resemblyzer is an extra: it requires webrtcvad, which PyPI has only as source (a C compiler builds it).
SPEAKERS_INSTALL = "pip install 'moss-cli[speakers]'"
MEL_WINDOW = SAMPLE_RATE * 25 // 1000  # Resemblyzer's features: 25 ms windows ...
MEL_HOP = SAMPLE_RATE // 100  # ... every 10 ms ...
MEL_BANDS = 40  # ... in 40 mel bands
WINDOW_SECONDS = 1.6  # the encoder's own partial-utterance length (160 mel frames of 10 ms)
WINDOW_HOP_SECONDS = 0.5
MAX_PIECE_SECONDS = 3.0  # a stretch of speech longer than this is cut: a turn change inside costs little
MIN_PIECE_SECONDS = 0.5  # less voice than this is too little to cluster; it gets the nearest speaker
PAUSE_SECONDS = 0.15  # a quieter run this long inside speech is a pause, a likely turn boundary
PAUSE_DB = 35.0  # quieter than the loud frames of the stretch by this much
# `auto` splits the voices in two while the split is clear (F ratio) and large (cosine distance
# of the mean voices). Tuned on espeak-ng conversations (tests/conversations.py) of 10 to 150
# sentences: splits of one voice reach F 23 but distance 0.067 at most (or distance 0.16 at F 2);
# splits between two voices had F >= 3.8 and distance >= 0.076 from 18 sentences on.
MIN_SPLIT_F = 3.5
MIN_SPLIT_DISTANCE = 0.072
# ... and separated: along the line between the halves' mean voices, the means lie this many
# within-half standard deviations apart. Unlike the distance, this does not depend on how much one
# voice varies: cutting one voice's unimodal spread in two gives about 2.6 (a Gaussian's halves).
# Ten-minute espeak-ng monologues of fourteen voice and seed pairs, pitch, speed and channel
# varied per paragraph, split at 2.3 to 3.8 where their halves were also far apart (4.9 at most
# otherwise); two or three distinct voices split at 5.1 to 11. Where the channel changes as much
# as the voice does (telephone band next to full band), two voices can blur below this and stay
# one speaker, and one voice's channels can pass it and split. Short conversations inflate it
# (few pieces in 256 dimensions): there F and the distance decide.
MIN_SPLIT_SEPARATION = 4.2
MAX_SPEAKERS = 8
MIN_SPEAKER_SECONDS = 3.0  # with `auto`, a "speaker" heard for less is an outlier, given to the nearest
MINOR_SHARE = 0.15  # ... and so is one heard for less than this share of the speech ...
MINOR_DISTANCE = 0.12  # ... whose mean voice is this close to another's (espeak voices: 0.09 to 0.2)
BATCH_WINDOWS = 64  # windows through the encoder at once
MAX_CLUSTERED_PIECES = 4000  # the tree's pairwise distances stay under 64 MB; longer recordings get longer pieces


@dataclass(frozen=True)
class SpeakerOptions:
    count: int | None = None  # known number of speakers; None: find it from the data
    names: tuple[str, ...] = ()  # labels for the speakers in order of first appearance
    diarizer: str = "resemblyzer"
    bounds: tuple[int, int] | None = None  # with count None: the fewest and most speakers auto may find
    samples: tuple[tuple[str, str], ...] = ()  # (name, audio file): a short sample of a known voice each
    profiles: bool = False  # --voices: describe each speaker's voice and each segment's mood (tasks/voices.py)

    def __post_init__(self):
        if self.count is not None and self.count < 1:
            raise ValueError(f"the number of speakers must be at least 1, not {self.count}")
        if self.bounds is not None and not 1 <= self.bounds[0] <= self.bounds[1]:
            raise ValueError(f"a range of speakers runs from at least 1 up: {self.bounds[0]}-{self.bounds[1]} does not")
        if self.samples and self.diarizer != "resemblyzer":
            raise ValueError("voice samples (--voice) are matched by the resemblyzer diarizer only")
        if self.diarizer not in DIARIZERS:
            raise ValueError(f"unknown diarizer {self.diarizer!r}: use one of {', '.join(DIARIZERS)}")
        if any(not name.strip() for name in self.names):
            raise ValueError("speaker names must not be empty")
        for name in self.names + tuple(name for name, _ in self.samples):  # every name passes here
            if problem := one_line_problem(name):
                raise ValueError(f"speaker name {printable_name(name)} is not one line of text: {problem}")
        if len({name for name, _ in self.samples}) < len(self.samples):
            raise ValueError("each --voice needs a name of its own")

    def settings(self) -> dict:
        """What a manifest records (for --skip-existing): the options that were set, so that outputs
        made before ranges and samples existed stay up to date."""
        recorded = asdict(self)
        for name in ("bounds", "samples", "profiles"):
            if not recorded[name]:
                del recorded[name]
        return recorded


@dataclass(frozen=True)
class Turn:
    start: float  # seconds from the start of the file
    end: float
    speaker: int  # cluster number; attribution renames speakers in order of first appearance
    name: str | None = None  # the known voice (--voice) this speaker was matched to


class Progress(Protocol):
    def advance(self, seconds: float) -> None: ...


class Diarizer(Protocol):
    def turns(self, source, spans: list[tuple[float, float]], count: int | None, progress: Progress,
              bounds: tuple[int, int] | None = None, known: dict[str, np.ndarray] | None = None) -> list[Turn]: ...


@lru_cache(maxsize=2)
def load_diarizer(name: str) -> Diarizer:
    """The named diarizer, loaded once per process (a batch shares it)."""
    if name == "pyannote":
        return PyannoteDiarizer()
    return ResemblyzerDiarizer()


class ResemblyzerDiarizer:
    """Pieces of speech -> GE2E voice embeddings -> agglomerative clustering -> turns."""

    def __init__(self):
        try:
            with warnings.catch_warnings():  # its VAD's import warns about pkg_resources
                warnings.simplefilter("ignore")
                from resemblyzer import VoiceEncoder
                from resemblyzer.audio import normalize_volume
        except ImportError as exc:  # the extra not installed, or its webrtcvad missing
            missing = exc.name or "resemblyzer"
            raise ModelUnavailableError(f"--speakers needs the speakers extra ({missing} is not installed): "
                                        f"{SPEAKERS_INSTALL}") from None
        self.encoder = VoiceEncoder("cpu", verbose=False)
        self._normalize = normalize_volume

    def turns(self, source, spans, count, progress, bounds=None, known=None) -> list[Turn]:
        """`known`: name -> voice vector (`voice_of`) of voices to name the speakers by."""
        pieces = plan_pieces(source, spans)
        if not pieces:
            return []
        vectors = self.embed(source, pieces, progress)
        durations = np.array([end - start for start, end in pieces])
        labels = cluster(vectors, durations, count, bounds)
        names = matched_names(_centroids(vectors, labels), known or {})
        return [replace(turn, name=names.get(turn.speaker)) for turn in merge_turns(pieces, labels)]

    def voice_of(self, source) -> np.ndarray:
        """One unit vector for a sample of one voice: the mean of its pieces' vectors, weighted by length."""
        pieces = plan_pieces(source, [(0.0, source.duration)])
        if not pieces:
            raise ValueError("no voice heard in it")

        class Silent:
            def advance(self, seconds):
                pass

        weights = np.array([end - start for start, end in pieces])[:, None]
        return _unit((self.embed(source, pieces, Silent()) * weights).sum(0, keepdims=True))[0]

    def embed(self, source, pieces: list[tuple[float, float]], progress: Progress) -> np.ndarray:
        """One unit vector per piece: the mean of its windows' embeddings, as Resemblyzer does."""
        windows, owners, pending = [], [], 0.0
        sums = np.zeros((len(pieces), self.encoder.linear.out_features), np.float32)
        for index, (start, end) in enumerate(pieces):
            samples = source.read(int(start * SAMPLE_RATE), int(end * SAMPLE_RATE))
            # Loudness must not tell voices apart: each piece is brought to the encoder's level.
            mel = mel_frames(self._normalize(samples, -30, increase_only=True))
            for window in _windows(mel):
                windows.append(window)
                owners.append(index)
            pending += end - start
            if len(windows) >= BATCH_WINDOWS or index == len(pieces) - 1:
                np.add.at(sums, owners, self._encode(np.stack(windows)))
                progress.advance(pending)
                windows, owners, pending = [], [], 0.0
        return _unit(sums)

    def _encode(self, windows: np.ndarray) -> np.ndarray:
        """(n, 160, 40) mel windows -> (n, 256) unit vectors. On one thread: the LSTM's matrices are
        too small to gain from more, and on a busy CPU extra threads made it ten times slower."""
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                return self.encoder(torch.from_numpy(windows)).numpy()
        finally:
            torch.set_num_threads(threads)


class PyannoteDiarizer:
    """pyannote.audio's pretrained pipeline (gated on the hub: it must already be in the cache)."""

    PIPELINES = ("pyannote/speaker-diarization-community-1", "pyannote/speaker-diarization-3.1")

    def __init__(self):
        try:
            from pyannote.audio import Pipeline
        except ImportError:
            raise ModelUnavailableError("--diarizer pyannote needs pyannote.audio (pip install pyannote.audio); "
                                        f"the default diarizer, resemblyzer, needs only {SPEAKERS_INSTALL}") from None
        repo = next((r for r in self.PIPELINES if _in_hub_cache(r)), None)
        if repo is None:
            raise ModelUnavailableError(f"pyannote's gated pipeline ({' or '.join(self.PIPELINES)}) is not in the "
                                        "Hugging Face cache: accept its terms on the hub, then download it once "
                                        "with `hf download` and a token")
        try:
            self.pipeline = Pipeline.from_pretrained(repo)
        except Exception as exc:  # its models are gated too; any failure is one line
            raise ModelUnavailableError(f"pyannote pipeline {repo} failed to load: {exc}") from None
        if self.pipeline is None:
            raise ModelUnavailableError(f"pyannote pipeline {repo} failed to load (gated models missing from the cache)")

    def turns(self, source, spans, count, progress, bounds=None, known=None) -> list[Turn]:
        import torch

        waveform = torch.from_numpy(np.ascontiguousarray(source.read()))[None]
        wanted = ({"num_speakers": count} if count else
                  {"min_speakers": bounds[0], "max_speakers": bounds[1]} if bounds else {})
        output = self.pipeline({"waveform": waveform, "sample_rate": SAMPLE_RATE}, **wanted)
        annotation = getattr(output, "speaker_diarization", output)  # pyannote 4 wraps it
        numbers: dict = {}
        turns = [Turn(float(seg.start), float(seg.end), numbers.setdefault(label, len(numbers)))
                 for seg, _, label in annotation.itertracks(yield_label=True)]
        progress.advance(source.duration)
        return sorted(turns, key=lambda t: t.start)


def plan_pieces(source, spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Speech cut at pauses, then into equal parts of at most MAX_PIECE_SECONDS (longer for very
    long recordings, so that at most MAX_CLUSTERED_PIECES are clustered)."""
    stretches = []
    for start, end in spans:
        samples = source.read(int(start * SAMPLE_RATE), int(end * SAMPLE_RATE))
        stretches += [(start + a, start + b) for a, b in split_at_pauses(samples)]
    total = sum(end - start for start, end in stretches)
    longest = max(MAX_PIECE_SECONDS, total / MAX_CLUSTERED_PIECES)
    pieces = []
    for start, end in stretches:
        parts = int(np.ceil((end - start) / longest - 1e-9))
        edges = np.linspace(start, end, parts + 1)
        pieces += [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:])]
    return pieces


def split_at_pauses(samples: np.ndarray) -> list[tuple[float, float]]:
    """Voiced stretches (seconds into `samples`) between pauses of at least PAUSE_SECONDS."""
    frame = MEL_HOP
    n = samples.size // frame
    if n == 0:
        return [(0.0, samples.size / SAMPLE_RATE)] if samples.size else []
    energy = np.mean(samples[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1)
    level = 10 * np.log10(energy + 1e-12)
    voiced = level > np.percentile(level, 95) - PAUSE_DB
    stretches, start, quiet = [], None, 0
    for i, on in enumerate(voiced):
        if on:
            start, quiet = (i if start is None else start), 0
        elif start is not None:
            quiet += 1
            if quiet * frame >= PAUSE_SECONDS * SAMPLE_RATE:
                stretches.append((start, i - quiet + 1))
                start, quiet = None, 0
    if start is not None:
        stretches.append((start, n - quiet))
    return [(a * frame / SAMPLE_RATE, b * frame / SAMPLE_RATE) for a, b in stretches]


def cluster(vectors: np.ndarray, durations: np.ndarray, count: int | None,
            bounds: tuple[int, int] | None = None) -> np.ndarray:
    """A speaker number per piece: `count` speakers, or as many as the data shows (auto), within
    `bounds` (fewest, most) when given.

    Ward's agglomerative clustering of the unit vectors; pieces too short to judge are left out
    of it and join the nearest speaker after.
    """
    labels = np.zeros(len(vectors), int)
    judged = np.flatnonzero(durations >= MIN_PIECE_SECONDS)
    if judged.size == 0:
        judged = np.arange(len(vectors))
    fewest, most = bounds or (1, MAX_SPEAKERS)
    if count != 1 and most > 1 and judged.size > 2:
        from scipy.cluster.hierarchy import fcluster, linkage

        tree = linkage(vectors[judged].astype(np.float64), "ward")
        number = min(count, judged.size) if count else count_speakers(vectors[judged], tree, fewest, most)
        labels[judged] = _nearest_mean(vectors[judged], fcluster(tree, number, "maxclust") - 1)
        if count is None:
            labels[judged] = _absorb_minor(vectors[judged], durations[judged], labels[judged], fewest)
    centroids = _centroids(vectors[judged], labels[judged])
    rest = np.setdiff1d(np.arange(len(vectors)), judged)
    labels[rest] = np.argmax(vectors[rest] @ centroids.T, axis=1) if rest.size else labels[rest]
    return labels


def count_speakers(vectors: np.ndarray, tree: np.ndarray, fewest: int = 1, most: int = MAX_SPEAKERS) -> int:
    """Split the Ward tree from the top while each split is both clear and large.

    Clear: the split's share of the spread, against the spread left inside the clusters, an F
    ratio (grows with the evidence). Large: the two halves' mean voices differ by a cosine
    distance a change of speaker makes (does not grow with the evidence, so that one voice's
    many sentences never add up to a second voice), and separated (`separation`). Splits up to
    `fewest` speakers are made whatever they look like; none beyond `most`.
    """
    from scipy.cluster.hierarchy import fcluster

    n, number = len(vectors), 1
    before = np.zeros(n, int)
    for k in range(2, min(most, n - 1) + 1):
        labels = fcluster(tree, k, "maxclust") - 1
        if labels.max() + 1 < k:  # tied heights: no clean cut into k
            break
        inside = sum(((vectors[labels == c] - vectors[labels == c].mean(0)) ** 2).sum() for c in range(k))
        gain = tree[-(k - 1), 2] ** 2 / 2  # Ward's merge height is sqrt(2 x the spread it adds)
        halves = next(np.unique(labels[before == c]) for c in range(k - 1) if np.unique(labels[before == c]).size == 2)
        mean_voices = _centroids(vectors, labels)[halves]
        unclear = (gain / (inside / (n - k)) < MIN_SPLIT_F or 1 - mean_voices[0] @ mean_voices[1] < MIN_SPLIT_DISTANCE
                   or separation(vectors[labels == halves[0]], vectors[labels == halves[1]]) < MIN_SPLIT_SEPARATION)
        if k > fewest and unclear:
            break
        number, before = k, labels
    return number


def separation(one: np.ndarray, other: np.ndarray) -> float:
    """How far apart two groups of voice vectors lie along the line between their means, in
    standard deviations of the groups' own spread along that line (pooled)."""
    line = one.mean(0) - other.mean(0)
    line = line / max(float(np.linalg.norm(line)), 1e-12)
    a, b = one @ line, other @ line
    spread = np.sqrt((((a - a.mean()) ** 2).sum() + ((b - b.mean()) ** 2).sum()) / max(a.size + b.size - 2, 1))
    return float((a.mean() - b.mean()) / max(spread, 1e-12))


def _absorb_minor(vectors: np.ndarray, durations: np.ndarray, labels: np.ndarray, fewest: int = 1) -> np.ndarray:
    """With `auto`, a cluster that is not a speaker of its own is dissolved, smallest first: one
    heard for under MIN_SPEAKER_SECONDS (a cough, a laugh, a mixed piece), or a small one close to
    another (a few sentences that sound alike by their words more than by their voice). Its pieces
    join their nearest remaining speakers; numbers are then made consecutive. At least `fewest` stay."""
    while labels.max() + 1 > fewest:
        heard = np.bincount(labels, weights=durations)
        centroids = _centroids(vectors, labels)
        small = int(np.argmin(heard))
        closeness = centroids @ centroids[small]
        closeness[small] = -np.inf
        minor = heard[small] < MIN_SPEAKER_SECONDS or (
            heard[small] < MINOR_SHARE * heard.sum() and 1 - closeness.max() < MINOR_DISTANCE)
        if not minor:
            break
        rest = np.flatnonzero(np.arange(len(heard)) != small)
        members = labels == small
        labels = labels.copy()
        labels[members] = rest[np.argmax(vectors[members] @ centroids[rest].T, axis=1)]
        labels = np.unique(labels, return_inverse=True)[1]
    return labels


def _nearest_mean(vectors: np.ndarray, labels: np.ndarray, rounds: int = 5) -> np.ndarray:
    """A few k-means rounds from the tree's clusters: a piece the tree put on the wrong side of a
    split goes to the speaker whose mean voice it is nearest."""
    for _ in range(rounds):
        moved = np.argmax(vectors @ _centroids(vectors, labels).T, axis=1)
        if np.array_equal(moved, labels) or np.unique(moved).size < np.unique(labels).size:
            break
        labels = moved
    return labels


def _centroids(vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    sums = np.zeros((labels.max() + 1, vectors.shape[1]), np.float64)
    np.add.at(sums, labels, vectors)
    return _unit(sums)


def merge_turns(pieces: list[tuple[float, float]], labels: np.ndarray) -> list[Turn]:
    """Consecutive pieces of one speaker become one turn (across the pause between them)."""
    turns: list[Turn] = []
    for (start, end), speaker in sorted(zip(pieces, labels.tolist())):
        if turns and turns[-1].speaker == speaker:
            turns[-1] = Turn(turns[-1].start, end, speaker)
        else:
            turns.append(Turn(start, end, speaker))
    return turns


def mel_frames(samples: np.ndarray) -> np.ndarray:
    """(frames, MEL_BANDS) mel power spectrogram: Resemblyzer's own features
    (librosa's melspectrogram, to 1e-6), computed with torch.stft, which needs no JIT warm-up."""
    import torch

    spectrum = torch.stft(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)), n_fft=MEL_WINDOW,
                          hop_length=MEL_HOP, window=torch.hann_window(MEL_WINDOW), center=True, pad_mode="constant",
                          return_complex=True)
    return (torch.from_numpy(_mel_filters()) @ spectrum.abs() ** 2).T.numpy()


@lru_cache(maxsize=1)
def _mel_filters() -> np.ndarray:
    from transformers.audio_utils import mel_filter_bank

    return mel_filter_bank(num_frequency_bins=MEL_WINDOW // 2 + 1, num_mel_filters=MEL_BANDS, min_frequency=0.0,
                           max_frequency=SAMPLE_RATE / 2, sampling_rate=SAMPLE_RATE, norm="slaney", mel_scale="slaney").T.astype(np.float32)


def _windows(mel: np.ndarray) -> list[np.ndarray]:
    """WINDOW_SECONDS windows every WINDOW_HOP_SECONDS over a piece's mel frames; the last one ends
    with the piece; a piece shorter than a window is zero-padded, as Resemblyzer does."""
    frames_per_second = SAMPLE_RATE / MEL_HOP
    size, hop = round(WINDOW_SECONDS * frames_per_second), round(WINDOW_HOP_SECONDS * frames_per_second)
    if mel.shape[0] <= size:
        return [np.pad(mel, ((0, size - mel.shape[0]), (0, 0)))]
    starts = list(range(0, mel.shape[0] - size + 1, hop))
    if starts[-1] + size < mel.shape[0]:
        starts.append(mel.shape[0] - size)
    return [mel[s : s + size] for s in starts]


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _in_hub_cache(repo: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo, "config.yaml"), str)
