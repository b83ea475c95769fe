"""Speaker labels over a live run: each utterance's voice joins the nearest speaker heard so far, or starts a
new one, so a label (S1, S2, ... or a given name) means the same voice for the whole run.

A file run clusters every piece of speech once, at its end (voices.py); a live run clusters again after
each utterance and keeps the labels it already wrote. Utterances are cut at pauses, where turns
change, so an utterance gets one speaker.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ..audio.constants import SAMPLE_RATE
from ..errors import UsageError
from ..results import Segment
from .voices import MIN_PIECE_SECONDS, SpeakerOptions, cluster, load_diarizer

HISTORY = 400  # utterances kept and re-clustered: time and memory stay bounded over hours
MIN_CLUSTERED = 3  # voices.cluster splits no fewer; before that a voice this far from all is a new speaker:
NEW_SPEAKER_DISTANCE = 0.3  # cosine distance of GE2E embeddings (one speaker's utterances: within about 0.2)


class SpeakerTracker:
    """`label(samples, segments)`: the segments of one utterance, labelled with its speaker.

    Each utterance's voice embedding joins those heard before, and all are clustered again as the
    file path clusters them (voices.cluster: Ward's tree, the number of speakers found or given).
    A cluster takes the label most of its earlier utterances had where no other cluster holds that label
    more; the utterance takes its cluster's, or a new one where its cluster is new: labels already written never change, and a
    voice keeps its label for the run."""

    def __init__(self, embed: Callable[[np.ndarray], np.ndarray | None], options: SpeakerOptions):
        self.embed, self.options = embed, options
        self.vectors: deque[np.ndarray] = deque(maxlen=HISTORY)
        self.seconds: deque[float] = deque(maxlen=HISTORY)
        self.labels: deque[int] = deque(maxlen=HISTORY)  # the label each kept utterance was given
        self.speakers = 0  # labels handed out
        self.last: int | None = None

    def label(self, samples: np.ndarray, segments: list[Segment]) -> list[Segment]:
        if not segments:
            return segments
        speaker = self._speaker_of(self.embed(samples), samples.size / SAMPLE_RATE)
        name = self._name(speaker)
        return [replace(s, speaker=name, words=[replace(w, speaker=name) for w in s.words]) for s in segments]

    def _speaker_of(self, vector: np.ndarray | None, seconds: float) -> int:
        if vector is None:  # too little voice to tell: the one heard last (S1 at first)
            return self.last or 0
        self.vectors.append(vector)
        self.seconds.append(seconds)
        if len(self.vectors) < MIN_CLUSTERED:  # too few voices to cluster: the nearest, if near enough
            speaker = self._nearest_label(vector, NEW_SPEAKER_DISTANCE) if self.labels else None
        else:
            clusters = cluster(np.stack(self.vectors), np.array(self.seconds), self.options.count)
            speaker = self._labels_of(clusters).get(int(clusters[-1]))
        if speaker is None:
            if self.options.count is None or self.speakers < self.options.count:
                speaker, self.speakers = self.speakers, self.speakers + 1
            else:
                speaker = self._nearest_label(vector)
        self.labels.append(speaker)
        self.last = speaker
        return speaker

    def _labels_of(self, clusters: np.ndarray) -> dict[int, int]:
        """Clusters -> labels: each cluster the label most of its earlier utterances had, unless a larger
        share of another cluster has that label (a voice split off from a speaker's utterances: a new
        speaker)."""
        shared = Counter(zip(clusters[:-1].tolist(), self.labels))
        sizes = Counter(clusters[:-1].tolist())
        taken: dict[int, int] = {}
        for group in sizes:
            label, count = max(((l, c) for (g, l), c in shared.items() if g == group), key=lambda lc: lc[1])
            claim = (count / sizes[group], sizes[group], -group)  # ties: the larger cluster, then the first
            if all((c / sizes[g], sizes[g], -g) < claim for (g, l), c in shared.items() if l == label and g != group):
                taken[group] = label
        return taken

    def _nearest_label(self, vector: np.ndarray, within: float = 2.0) -> int | None:
        """The label whose utterances' mean voice is nearest, if within `within` (cosine distance)."""
        kept = np.stack(list(self.vectors)[: len(self.labels)])
        labels = np.array(self.labels)
        known = sorted(set(self.labels))
        means = np.stack([_unit(kept[labels == label].mean(axis=0)) for label in known])
        distances = 1.0 - means @ vector
        nearest = int(np.argmin(distances))
        return known[nearest] if distances[nearest] <= within else None

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


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)
