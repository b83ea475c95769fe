"""Inputs are opened once, as files: never read as an FFmpeg address, never re-opened by name."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from support.recordings import synthetic_speechlike

from moss_cli.audio.sources import open_audio
from moss_cli.errors import AudioError


def _wav_bytes(seconds: float, rate: int = 16_000) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, synthetic_speechlike(seconds, rate=rate), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _read_as_itself_or_refused(name: Path, own: bytes) -> None:
    """`name` holds `own`: opening it gives its own audio, or an error naming it; never another file's."""
    name.parent.mkdir(parents=True, exist_ok=True)
    name.write_bytes(own)
    try:
        with open_audio(name) as source:
            assert source.n_samples == 16_000  # its own second, not the other file's three
    except AudioError as exc:
        assert str(name) in str(exc) and "\n" not in str(exc)


@pytest.mark.parametrize("template", ["concat:{other}|x.mp3", "file:{other}", "subfile,,start,0,end,0,,:{other}",
                                      "async:file:{other}", "cache:{other}"])
@pytest.mark.parametrize("own", ["audio", "garbage"])
def test_a_name_is_never_an_address(template, own, tmp_path, monkeypatch):
    other = tmp_path / "other.mp3"  # three seconds of audio the name points at, were it an address
    other.write_bytes(_wav_bytes(3.0))
    monkeypatch.chdir(tmp_path)
    name = Path(template.format(other=other))  # relative: folders named "concat:" and so on, as needed
    _read_as_itself_or_refused(name, _wav_bytes(1.0) if own == "audio" else b"not audio at all, " * 100)


def test_a_file_s_contents_name_no_other_file(tmp_path, monkeypatch):
    (tmp_path / "other.wav").write_bytes(_wav_bytes(3.0))
    monkeypatch.chdir(tmp_path)
    for name, text in [("list.mp3", "ffconcat version 1.0\nfile other.wav\n"),
                       ("list.m4a", f"ffconcat version 1.0\nfile {tmp_path}/other.wav\n"),
                       ("play.mp3", f"#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXTINF:3.0,\nfile:{tmp_path}/other.wav\n"
                                    "#EXT-X-ENDLIST\n")]:
        (tmp_path / name).write_text(text)
        with pytest.raises(AudioError, match=f"^{name}: "):
            open_audio(name)


@pytest.mark.parametrize("name", ["pipe:0.mp3", "pipe:.mp3", "fd:0.mp3", "fd:.mp3"])
def test_a_name_never_reads_stdin(name, tmp_path):
    """Were the name read as an address, FFmpeg would wait on moss's stdin (held open here) for ever."""
    (tmp_path / name).write_bytes(b"not audio at all, " * 100)
    code = f"from moss_cli.audio.sources import open_audio\ntry: open_audio({name!r})\nexcept Exception as e: print(e)"
    with subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True, env={**os.environ, "PYTHONPATH": os.getcwd()}) as child:
        try:
            out, _ = child.communicate(timeout=30)
        finally:
            child.kill()
    assert out.startswith(f"{name}: ")


def test_a_file_swapped_for_a_fifo_mid_run_is_still_read(tmp_path):
    """A 16 kHz mono WAV is read in place, block by block; its name then turning into a FIFO (or another
    file) changes nothing: the descriptor opened first is the one read."""
    path = tmp_path / "clip.wav"
    samples = synthetic_speechlike(3.0)
    sf.write(path, samples, 16_000, subtype="FLOAT")
    with open_audio(path) as source:
        first = source.read(0, 16_000)
        path.rename(tmp_path / "moved.wav")
        os.mkfifo(path)  # an open of it by name would block until a writer came
        rest = source.read(16_000)
    assert np.array_equal(np.concatenate([first, rest]), samples.astype(np.float32))


def test_a_fifo_in_a_file_s_place_is_refused_without_blocking(tmp_path):
    path = tmp_path / "clip.wav"
    os.mkfifo(path)
    with pytest.raises(AudioError, match="FIFO"):
        open_audio(path)


# ---- absurd headers --------------------------------------------------------------------------------
@pytest.mark.parametrize("rate, reason", [(1, "outside what moss reads"), (999, "outside what moss reads"),
                                          (1_000_000, "outside what moss reads"), (767_999, "resampling filter")])
def test_absurd_sample_rates_are_refused_at_once(rate, reason, tmp_path):
    """A 64 KB WAV saying 1 Hz would become 8.9 hours at 16 kHz (gigabytes of memory and disk)."""
    path = tmp_path / "odd.wav"
    sf.write(path, np.zeros(32_000, np.int16), rate, subtype="PCM_16")
    with pytest.raises(AudioError) as caught:
        open_audio(path, tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{path}: sample rate {rate} Hz") and reason in message and "\n" not in message
    assert list(tmp_path.iterdir()) == [path]  # no converted file begun


def test_resampling_memory_is_bounded_by_the_block_whatever_the_ratio():
    """At the lowest rate taken (16 times up) each push gives out at most 16 times what came in, plus
    the filter's history: never the whole file's worth."""
    from moss_cli.audio.resample import Resampler
    from moss_cli.audio.sources import MIN_SAMPLE_RATE

    resampler, block = Resampler(MIN_SAMPLE_RATE, 16_000), MIN_SAMPLE_RATE * 10
    largest = max(resampler.push(np.zeros(block, np.float32)).size for _ in range(30))
    assert 0 < largest <= 16 * (block + 2 * resampler._history_steps)
