"""Conversations with known turns, spoken by espeak-ng voices, for the speaker tests.

Each sentence is one turn: a voice, its text and the exact span of its samples in the file.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

RATE = 16_000
VOICES = ("en-us+m3", "en-gb+f2", "en-us+m7")  # three voices a listener tells apart at once
SENTENCES = (
    "The weather was lovely this morning.", "Did you finish the report yesterday?",
    "I think we should leave early tomorrow.", "That sounds like a reasonable plan to me.",
    "Nobody expected the meeting to last so long.", "Please send me the numbers by Friday.",
    "The train was delayed by almost an hour.", "We could try the new restaurant downtown.",
    "My sister is visiting us next week.", "Can you remind me what the budget was?",
    "The garden needs water every other day.", "I will call the office after lunch.",
    "Their new album is surprisingly good.", "Let us start with the second question.",
    "He forgot his keys again this morning.", "The children played in the park until dark.",
    "Our flight leaves at half past seven.", "Which printer did you use for the posters?",
    "The museum opens later on Sundays.", "I have never seen so much snow in April.",
    "Could you pass me the blue folder, please?", "The bakery on the corner closed last year.",
    "She plays the violin in a small orchestra.", "We ran out of coffee before noon.",
    "Remember to lock the back door tonight.", "The bridge will be repaired in the spring.",
    "His answer surprised everyone in the room.", "Maybe we should ask the neighbours first.",
    "The library has a new section for maps.", "I prefer tea with a little honey.",
    "Twelve people signed up for the course.", "The storm knocked down two old trees.",
)


@dataclass(frozen=True)
class Turn:
    start: float  # seconds, first sample of the sentence
    end: float
    voice: int  # index into the conversation's voices
    text: str


@dataclass(frozen=True)
class Conversation:
    samples: np.ndarray  # 16 kHz mono float32
    turns: tuple[Turn, ...]

    @property
    def voices(self) -> int:
        return len({t.voice for t in self.turns})


def require_espeak() -> str:
    """The espeak-ng binary; CI installs it (.ci/run), so there a missing one is a failure."""
    found = shutil.which("espeak-ng")
    if found is None:
        message = "espeak-ng is not installed (apt-get install espeak-ng)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    return found


def speak(text: str, voice: str) -> np.ndarray:
    """One sentence at 16 kHz, trimmed to its first and last audible sample."""
    from moss_cli.audio.features import to_model_rate

    wav = subprocess.run([require_espeak(), "-v", voice, "--stdout", text], capture_output=True, check=True).stdout
    samples, rate = sf.read(io.BytesIO(wav), dtype="float32")
    samples = to_model_rate(samples, rate)
    loud = np.flatnonzero(np.abs(samples) > 1e-3)
    return samples[loud[0] : loud[-1] + 1]


def conversation(voices: tuple[str, ...], sentences: int, seed: int = 0, gaps=(0.3, 0.8),
                 peaks: bool = False) -> Conversation:
    """Sentences in turn, the voice changing at random (never the same twice in a row with several).

    peaks=True scales sentence i to a peak of (100 + i) / 1000 and leaves over a second of exact
    silence between sentences, so that tests/fake_server.py can tell the sentences apart.
    """
    rng = np.random.default_rng(seed)
    pieces, turns, position = [np.zeros(RATE // 2, np.float32)], [], RATE // 2
    for index in range(sentences):
        voice = 0 if index == 0 else int(rng.integers(len(voices)))
        if turns and len(voices) > 1 and voice == turns[-1].voice:
            voice = (voice + 1 + int(rng.integers(len(voices) - 1))) % len(voices)
        text = SENTENCES[index % len(SENTENCES)]
        audio = speak(text, voices[voice])
        if peaks:
            audio = (audio / np.abs(audio).max() * (100 + index) / 1000).astype(np.float32)
        gap = int(rng.uniform(*((1.2, 1.6) if peaks else gaps)) * RATE)
        turns.append(Turn(position / RATE, (position + audio.size) / RATE, voice, text))
        pieces += [audio, np.zeros(gap, np.float32)]
        position += audio.size + gap
    return Conversation(np.concatenate(pieces), tuple(turns))


def two_voice_dialogue(folder: Path, sentences: int) -> tuple[Path, Conversation]:
    """Two voices in turn, sentence i at peak (100 + i)/1000 so the stand-in server hears which, written
    to folder/dialogue.wav (16 kHz PCM)."""
    conv = conversation(VOICES[:2], sentences, seed=4, peaks=True)
    path = folder / "dialogue.wav"
    sf.write(path, conv.samples, RATE, subtype="PCM_16")
    return path, conv


def best_mapping_accuracy(predicted: list, truth: list[int]) -> float:
    """Share of items whose label is right under the best one-to-one renaming of labels."""
    from scipy.optimize import linear_sum_assignment

    names = sorted(set(predicted), key=str)
    counts = np.zeros((len(names), max(truth) + 1))
    for label, voice in zip(predicted, truth):
        counts[names.index(label), voice] += 1
    rows, cols = linear_sum_assignment(-counts)
    return counts[rows, cols].sum() / len(truth)
