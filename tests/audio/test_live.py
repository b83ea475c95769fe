"""Live inputs: stdin streams told by their signature, bare PCM, URLs, followed files and the microphone,
each giving the samples the file path reads from the same audio."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from support.fake_server import phrase_recording
from support.live import StandInMicrophone, StreamingServer, feed_in_real_time

from moss_cli.audio.live import (
    ByteStreamSource,
    FollowedFile,
    MicrophoneSource,
    PcmFormat,
    UrlSource,
    container_of,
    open_live,
    sounddevice_module,
)
from moss_cli.audio.sources import open_audio
from moss_cli.errors import AudioError, UsageError

RATE = 16_000


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """Eight seconds of phrases (16 kHz PCM16 WAV) and the same audio as FLAC, OGG and 44.1 kHz stereo MP3."""
    folder = tmp_path_factory.mktemp("live")
    audio, _ = phrase_recording(8, seed=3, gaps=(1.0, 2.0))
    wav = folder / "speech.wav"
    sf.write(wav, audio, RATE, subtype="PCM_16")
    files = {"wav": wav}
    for container, extra in (("flac", []), ("ogg", []), ("mp3", ["-ar", "44100", "-ac", "2"])):
        target = folder / f"speech.{container}"
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), *extra, str(target)], check=True)
        files[container] = target
    return files


def pipe_fed(data: bytes, seconds: float):
    """A pipe's read end, its other end written at a pace that takes `seconds` (real time)."""
    read_fd, write_fd = os.pipe()
    writer = os.fdopen(write_fd, "wb", buffering=0)
    feed_in_real_time(data, writer.write, len(data) / seconds, close=writer.close)
    return os.fdopen(read_fd, "rb")


def taken(source) -> np.ndarray:
    return np.concatenate(list(source.blocks()))


@pytest.mark.parametrize("container", ["wav", "flac", "ogg", "mp3"])
def test_a_stream_on_stdin_is_told_by_its_signature_and_decoded_as_the_file_is(speech, container):
    path = speech[container]
    data = path.read_bytes()
    assert container_of(data[:12]) == container
    seconds = 1.5 if container == "wav" else 0.3  # one fed at real time; the rest faster, to keep the suite quick
    with pipe_fed(data, seconds) as pipe:
        live = taken(ByteStreamSource("stdin", pipe, PcmFormat()))
    with open_audio(path) as source:
        whole = source.read()
    if container == "mp3":  # no seeking on a pipe: FFmpeg cannot trim the encoder's padding at the end
        assert abs(live.size - whole.size) < 1152 and np.abs(live[: whole.size] - whole[: live.size]).max() < 1e-5
    else:
        np.testing.assert_array_equal(live, whole)


@pytest.mark.parametrize("muxer, container", [("adts", "aac"), ("webm", "matroska")])
def test_an_aac_or_webm_stream_is_decoded_not_taken_for_mp3_or_bare_pcm(speech, muxer, container):
    """ADTS shares the first 11 bits of MP3's frame sync; WebM (Opus) is what browsers record."""
    data = subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(speech["wav"]), "-f", muxer, "-"],
                          check=True, capture_output=True).stdout
    assert container_of(data[:12]) == container
    with pipe_fed(data, 0.3) as pipe:
        live = taken(ByteStreamSource("stdin", pipe, PcmFormat()))
    with open_audio(speech["wav"]) as source:
        whole = source.read()
    assert abs(live.size - whole.size) < 0.1 * RATE  # the whole stream, at its rate (codec delay aside)
    assert 0.5 < np.sqrt(np.mean(live**2) / np.mean(whole**2)) < 2  # the sound, not bytes read as samples


def test_an_mp3_frame_header_is_told_from_adts():
    assert container_of(b"\xff\xfb\x90\x64" + bytes(8)) == "mp3"  # MPEG-1 layer III
    assert container_of(b"\xff\xf3\x48\xc4" + bytes(8)) == "mp3"  # MPEG-2 layer III
    assert container_of(b"\xff\xf1\x50\x80\x2e\x7f\xfc" + bytes(5)) == "aac"  # ADTS: layer bits 00, 371 bytes


@pytest.mark.parametrize("first_samples", [[-1, 0, 3], [-1, -1, -2], [-3841, 5, 0], [-1, 12, -7], [-1, 100, 3], [-1, -3000, 40]])
def test_bare_pcm_starting_with_a_small_negative_sample_is_not_taken_for_mp3_or_aac(first_samples):
    """-1 is bytes FF FF: the first bits of a frame sync; a microphone's noise starts so every so often."""
    samples = np.concatenate([np.array(first_samples, np.int16), np.zeros(RATE // 2, np.int16)])
    data = samples.astype("<i2").tobytes()
    assert container_of(data[:12]) is None
    with pipe_fed(data, 0.1) as pipe:
        live = taken(ByteStreamSource("stdin", pipe, PcmFormat()))
    np.testing.assert_array_equal(live, samples.astype(np.float32) / 32768)


def test_bare_pcm_takes_its_rate_and_channels_from_the_options(speech, tmp_path):
    stereo48 = tmp_path / "s48.wav"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(speech["wav"]), "-ar", "48000", "-ac", "2",
                    "-c:a", "pcm_s16le", str(stereo48)], check=True)
    raw = subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(stereo48), "-f", "s16le", "-"],
                         check=True, capture_output=True).stdout
    assert container_of(raw[:12]) is None
    with pipe_fed(raw, 0.5) as pipe:
        live = taken(ByteStreamSource("stdin", pipe, PcmFormat(48_000, 2)))
    with open_audio(stereo48) as source:
        np.testing.assert_allclose(live, source.read(), atol=1e-6)


def test_a_url_is_read_as_it_streams(speech):
    data = speech["wav"].read_bytes()
    with StreamingServer(speech["wav"], bytes_per_second=len(data) / 2.0) as server:
        started = time.monotonic()
        live = taken(UrlSource(server.url))
        assert time.monotonic() - started >= 1.5  # it came at the server's pace, not all at once
    with open_audio(speech["wav"]) as source:
        np.testing.assert_array_equal(live, source.read())


def test_a_url_that_cannot_be_opened_is_one_plain_line():
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Missing(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_error(404)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Missing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/radio"
    try:
        with pytest.raises(AudioError) as raised:
            list(UrlSource(url).blocks())
    finally:
        server.shutdown()
    # FFmpeg's own words, without its error number or the URL said twice
    assert str(raised.value) == f"{url}: cannot open the stream (Server returned 404 Not Found)"


def test_a_followed_file_is_read_as_it_grows_until_stopped(speech, tmp_path):
    growing = tmp_path / "growing.wav"
    data = speech["wav"].read_bytes()
    out = open(growing, "wb", buffering=0)
    feeder = feed_in_real_time(data, out.write, len(data) / 1.0, head=44, close=out.close)
    source = FollowedFile(growing, PcmFormat())
    blocks: list[np.ndarray] = []
    reader = threading.Thread(target=lambda: blocks.extend(source.blocks()))
    reader.start()
    feeder.join()
    time.sleep(0.5)
    assert reader.is_alive()  # the end of what is written so far is not the end: it waits for more
    source.stop()
    reader.join(5)
    assert not reader.is_alive()
    with open_audio(speech["wav"]) as whole:
        np.testing.assert_array_equal(np.concatenate(blocks), whole.read())


def follow_in_thread(path) -> tuple[FollowedFile, list, list, threading.Thread]:
    """A followed file read in a thread: its blocks and the error it ended with, if any."""
    source, blocks, errors = FollowedFile(path, PcmFormat()), [], []

    def read() -> None:
        try:
            blocks.extend(source.blocks())
        except Exception as exc:  # noqa: BLE001 - whatever ends the reading is what the test looks at
            errors.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return source, blocks, errors, reader


def test_a_followed_file_that_is_deleted_ends_the_stream(speech, tmp_path):
    followed = tmp_path / "deleted.wav"
    followed.write_bytes(speech["wav"].read_bytes())
    _, blocks, errors, reader = follow_in_thread(followed)
    time.sleep(0.5)
    followed.unlink()  # nothing can add to it now: waiting on would wait for ever
    reader.join(5)
    assert not reader.is_alive() and not errors
    with open_audio(speech["wav"]) as whole:
        np.testing.assert_array_equal(np.concatenate(blocks), whole.read())


def test_a_followed_file_that_is_truncated_ends_the_run_saying_so(speech, tmp_path):
    followed = tmp_path / "truncated.wav"
    data = speech["wav"].read_bytes()
    followed.write_bytes(data)
    _, blocks, errors, reader = follow_in_thread(followed)
    time.sleep(0.5)
    followed.write_bytes(data[:1000])  # a recorder started over: what follows is another recording
    reader.join(5)
    assert not reader.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], AudioError)
    assert str(followed) in str(errors[0]) and "truncated" in str(errors[0])
    with open_audio(speech["wav"]) as whole:
        np.testing.assert_array_equal(np.concatenate(blocks), whole.read())  # what came before is kept


def test_the_microphone_gives_its_blocks_as_they_come():
    audio, _ = phrase_recording(2, seed=4, gaps=(0.2, 0.5))
    mic = StandInMicrophone(audio)
    source = MicrophoneSource("USB", backend=mic)
    got: list[np.ndarray] = []
    for block in source.blocks():
        got.append(block)
        if sum(b.size for b in got) >= audio.size:
            source.stop()
    assert mic.opened[0]["samplerate"] == RATE and mic.opened[0]["device"] == "USB" and mic.closed
    np.testing.assert_array_equal(np.concatenate(got)[: audio.size], audio)


def test_a_microphone_that_cannot_be_opened_is_one_usage_line():
    mic = StandInMicrophone(np.zeros(10, np.float32), fail=ValueError("No input device matching 'USB'\nmore"))
    with pytest.raises(UsageError, match=r"^microphone USB: cannot be opened \(No input device matching 'USB'\)$"):
        next(MicrophoneSource("USB", backend=mic).blocks())


def test_without_sounddevice_the_error_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails as when it is not installed
    with pytest.raises(UsageError, match=r"pip install 'moss-cli\[live\]'"):
        sounddevice_module()


def test_the_command_line_names_a_source_that_fits_its_options(tmp_path, monkeypatch):
    existing = tmp_path / "a.wav"
    existing.write_bytes(b"")
    monkeypatch.setitem(sys.modules, "sounddevice", StandInMicrophone(np.zeros(10, np.float32)))
    assert isinstance(open_live(None), MicrophoneSource)
    assert isinstance(open_live("rtsp://camera/stream"), UrlSource)
    assert isinstance(open_live(str(existing), follow=True), FollowedFile)
    for args, message in (((str(existing),), "--follow"), ((str(tmp_path / "none.wav"), PcmFormat(), True), "no such file"),
                          (("-", PcmFormat(), True), "not stdin"), (("-", PcmFormat(), False, "USB"), "--device-name")):
        with pytest.raises(UsageError, match=message):
            open_live(*args)
    with pytest.raises(UsageError, match="--rate 1:"):
        PcmFormat(rate=1)


def test_stdin_left_at_the_terminal_is_a_usage_error_not_a_silent_wait(monkeypatch):
    class Terminal:
        buffer = None

        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdin", Terminal())
    with pytest.raises(UsageError, match="stdin is a terminal"):
        open_live("-")
