"""The batch reports through its observer and never prints: the CLI's observer is the one that does."""

import io
from contextlib import contextmanager

import numpy as np
import soundfile as sf

from moss_cli.batch.inputs import expand_inputs
from moss_cli.batch.observer import BatchObserver
from moss_cli.batch.outputs import OutputSpec
from moss_cli.batch.runner import BatchPolicy, run_batch
from moss_cli.results import Result


class Recorder(BatchObserver):
    def __init__(self):
        self.events = []

    @contextmanager
    def files(self, paths):
        self.events.append(("files", [p.name for p in paths]))
        yield
        self.events.append(("files over",))

    @contextmanager
    def file(self, title, seconds):
        self.events.append(("file", title, round(seconds, 1)))
        yield self

    def advance(self, seconds):
        self.events.append(("advance", round(seconds, 1)))

    def begin(self, label, total_seconds):
        pass

    def file_done(self, index):
        self.events.append(("done", index))

    def warning(self, text):
        self.events.append(("warning", text))

    def failure(self, text):
        self.events.append(("failure", text))

    def finished(self, summary, n_inputs, seconds, notes):
        self.events.append(("finished", summary.done, len(summary.failures), n_inputs, notes))


def work(recording, progress):
    progress.advance(recording.duration)
    result = Result("caption", recording.name, recording.duration, "double", text="hello")
    result.warnings.append("one chunk came back without timestamps")
    return result


def test_the_batch_tells_its_observer_and_prints_nothing(tmp_path, capsys):
    for name, seconds in (("a", 1.0), ("c", 2.0)):
        sf.write(tmp_path / f"{name}.wav", np.zeros(int(16_000 * seconds), np.float32), 16_000)
    (tmp_path / "b.wav").write_bytes(b"not audio at all")
    inputs = expand_inputs([str(tmp_path / f"{n}.wav") for n in "abc"])
    observer = Recorder()
    policy = BatchPolicy(notes=lambda: ["2 requests"])
    code = run_batch(inputs, work, OutputSpec(("txt",), tmp_path / "out"), policy, "testing", observer)
    assert code == 1
    events = observer.events
    assert events[0] == ("files", ["a.wav", "b.wav", "c.wav"])
    assert ("file", "testing a.wav", 1.0) in events and ("file", "testing c.wav", 2.0) in events
    assert [e for e in events if e[0] == "done"] == [("done", 0), ("done", 1), ("done", 2)]
    [failure] = [e[1] for e in events if e[0] == "failure"]
    assert failure.startswith(str(tmp_path / "b.wav"))
    assert ("warning", f"{tmp_path / 'a.wav'}: one chunk came back without timestamps") in events
    assert events[-1] == ("finished", 2, 1, 3, ["2 requests"])
    assert (tmp_path / "out" / "a.txt").read_text() == "hello\n"
    assert capsys.readouterr() == ("", "")  # nothing on stdout or stderr


def test_results_without_a_folder_go_to_the_stream_given(tmp_path, capsys):
    sf.write(tmp_path / "a.wav", np.zeros(16_000, np.float32), 16_000)
    stream = io.StringIO()
    code = run_batch(expand_inputs([str(tmp_path / "a.wav")]), work, OutputSpec(("txt",)), BatchPolicy(),
                     "testing", stream=stream)
    assert code == 0 and stream.getvalue() == "hello\n"
    assert capsys.readouterr() == ("", "")
