"""A recording as the tasks see it: a name for messages and results, and its audio read by range."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..audio.chunking import Chunk
from ..audio.sources import AudioSource


@dataclass
class Recording:
    name: str  # how results and messages refer to it (usually the path)
    source: AudioSource  # 16 kHz mono, read by range

    @classmethod
    def from_array(cls, name: str, samples: np.ndarray) -> Recording:
        return cls(name, AudioSource.from_array(name, samples))

    @property
    def n_samples(self) -> int:
        return self.source.n_samples

    @property
    def duration(self) -> float:
        return self.source.duration

    def cut(self, chunk: Chunk) -> np.ndarray:
        return self.source.read(chunk.start, chunk.end)

