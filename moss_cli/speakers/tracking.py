"""Speaker labels over a live run: each utterance's voice joins the nearest speaker heard so far, or starts a
new one, so a label (S1, S2, ... or a given name) means the same voice for the whole run.

A file run clusters every piece of speech at its end (voices.py); a live run cannot wait for the end,
so it decides an utterance at a time, against the running mean voice of each speaker. Utterances are
cut at pauses, where turns change, so an utterance gets one speaker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ..audio.constants import SAMPLE_RATE
from ..errors import UsageError
from ..results import Segment
from .voices import MIN_PIECE_SECONDS, SpeakerOptions, load_diarizer

# Cosine distance between an utterance's GE2E embedding and a speaker's mean voice past which it is
# another speaker (same-speaker utterances are typically within 0.1-0.2, different speakers 0.3 and more).
NEW_SPEAKER_DISTANCE = 0.25


class SpeakerTracker:
    """`label(samples, segments)`: the segments of one utterance, labelled with its speaker."""

    def __init__(self, embed: Callable[[np.ndarray], np.ndarray | None], options: SpeakerOptions,
                 new_speaker_distance: float = NEW_SPEAKER_DISTANCE):
        self.embed, self.options, self.distance = embed, options, new_speaker_distance
        self.sums: list[np.ndarray] = []  # per speaker, the sum of its utterances' unit vectors
        self.last: int | None = None

    def label(self, samples: np.ndarray, segments: list[Segment]) -> list[Segment]:
        if not segments:
            return segments
        speaker = self._speaker_of(self.embed(samples))
        name = self._name(speaker)
        return [replace(s, speaker=name, words=[replace(w, speaker=name) for w in s.words]) for s in segments]

    def _speaker_of(self, vector: np.ndarray | None) -> int:
        """The speaker this voice belongs to, a new one if it is far from all (and the count allows)."""
        if vector is None:  # too little voice to tell: the one heard last (S1 at first, whose voice comes later)
            speaker = self.last or 0
        elif not self.sums:
            speaker = self._new(vector)
        else:
            means = np.stack([s / np.linalg.norm(s) for s in self.sums])
            distances = 1.0 - means @ vector
            nearest = int(np.argmin(distances))
            room = self.options.count is None or len(self.sums) < self.options.count
            if distances[nearest] > self.distance and room:
                speaker = self._new(vector)
            else:
                speaker = nearest
                self.sums[nearest] = self.sums[nearest] + vector
        self.last = speaker
        return speaker

    def _new(self, vector: np.ndarray) -> int:
        self.sums.append(vector.copy())
        return len(self.sums) - 1

    def _name(self, speaker: int) -> str:
        names = self.options.names
        return names[speaker] if speaker < len(names) else f"S{speaker + 1}"


def voice_embedder(options: SpeakerOptions) -> Callable[[np.ndarray], np.ndarray | None]:
    """An utterance's samples -> the unit GE2E embedding of its voice (Resemblyzer), None when too short."""
    if options.diarizer != "resemblyzer":
        raise UsageError("live speaker labels use resemblyzer's voice embeddings: --diarizer resemblyzer")
    from ..audio.sources import AudioSource
    from ..progress import NoProgress

    diarizer = load_diarizer("resemblyzer")

    def embed(samples: np.ndarray) -> np.ndarray | None:
        seconds = samples.size / SAMPLE_RATE
        if seconds < MIN_PIECE_SECONDS:
            return None
        return diarizer.embed(AudioSource.from_array("utterance", samples), [(0.0, seconds)], NoProgress())[0]

    return embed
