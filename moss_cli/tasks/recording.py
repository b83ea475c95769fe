"""A recording as the tasks see it: a name for messages and results, and its audio read by range."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio.chunking import Chunk
from ..audio.sources import AudioSource


@dataclass
class Recording:
    name: str  # how results and messages refer to it (usually the path)
    source: AudioSource  # 16 kHz mono, read by range
    output_stem: Path | None = None  # with -o: where its outputs go, without extension (DIR/a/x)
    sha256: str | None = None  # with -o: its content hash, as the outputs' manifests record it

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

