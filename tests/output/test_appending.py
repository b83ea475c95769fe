"""Live outputs: valid after every utterance, numbered on across utterances, gaps marked in each."""

from __future__ import annotations

import json
import re

import srt

from moss_cli.output.appending import AppendingOutputs
from moss_cli.output.writers import SrtWriter
from moss_cli.results import Event, Result, Segment

VTT_CUE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}\n[^\n]+(\n[^\n]+)*$")


def utterance(first: float, texts: list[str]) -> Result:
    segments = [Segment(first + 2 * i, first + 2 * i + 1.5, text, id=i) for i, text in enumerate(texts)]
    return Result("transcribe", "stdin", first + 10, "m", " ".join(texts), segments)


def check_valid(paths: dict) -> tuple[list, list[str], list[dict]]:
    """Each file as a reader finds it now: SRT cues, VTT cue blocks, JSON lines."""
    cues = list(srt.parse(paths["srt"].read_text(), ignore_errors=False))
    assert [c.index for c in cues] == list(range(1, len(cues) + 1))
    vtt = paths["vtt"].read_text()
    assert vtt.startswith("WEBVTT\n\n") and (vtt == "WEBVTT\n\n" or vtt.endswith("\n\n"))
    blocks = [b for b in vtt[len("WEBVTT\n\n"):].split("\n\n") if b]
    assert all(VTT_CUE.match(b) for b in blocks), blocks
    lines = [json.loads(line) for line in paths["jsonl"].read_text().splitlines()]
    return cues, blocks, lines


def test_every_utterance_leaves_every_file_valid_and_complete(tmp_path):
    outputs = AppendingOutputs(tmp_path / "out", "talk.live")
    paths = {p.suffix[1:]: p for p in outputs.paths}
    assert check_valid(paths) == ([], [], [])  # valid before the first cue too
    outputs.add(utterance(1.0, ["Hello there.", "How are you?"]), {"start": 0.8, "end": 5.0})
    cues, blocks, lines = check_valid(paths)  # flushed: readable while the file is still open
    assert [c.content for c in cues] == ["Hello there.", "How are you?"] and len(blocks) == 2
    outputs.skipped(6.0, 20.0, "the model fell behind", {})
    outputs.add(utterance(21.0, ["Fine."]), {"start": 20.5, "end": 23.0})
    cues, blocks, lines = check_valid(paths)
    assert [c.content for c in cues] == ["Hello there.", "How are you?", "[skipped: the model fell behind]", "Fine."]
    assert cues[2].start.total_seconds() == 6.0 and cues[2].end.total_seconds() == 20.0
    assert "[skipped: the model fell behind]" in blocks[2]
    assert lines[1] == {"skipped": [6.0, 20.0], "reason": "the model fell behind"}
    assert lines[2]["segments"][0]["text"] == "Fine." and lines[2]["start"] == 20.5
    assert paths["txt"].read_text() == ("Hello there.\nHow are you?\n[skipped 6.00 - 20.00 s: the model fell behind]\n"
                                        "Fine.\n")
    outputs.close()


def test_an_utterances_cues_are_the_file_writers_cues(tmp_path):
    outputs = AppendingOutputs(tmp_path, "x", formats=("srt",))
    spoken = utterance(3.0, ["A sentence long enough that the layout has to break it over two lines or more, "
                             "and maybe into two cues since it is this long."])
    outputs.add(spoken, {})
    outputs.close()
    alone = tmp_path / "file.srt"
    with open(alone, "w") as file:
        SrtWriter().write(spoken, file)
    assert (tmp_path / "x.srt").read_text() == alone.read_text()


def test_events_are_appended_as_events(tmp_path):
    outputs = AppendingOutputs(tmp_path, "street.events", formats=("jsonl", "txt"))
    result = Result("events", "stdin", 9.0, "m", "4.00 - 5.00: a door slams", events=[Event(4.0, 5.0, "a door slams")])
    outputs.add(result, {"start": 3.5, "end": 5.5})
    outputs.close()
    assert json.loads((tmp_path / "street.events.jsonl").read_text())["events"] == [
        {"start": 4.0, "end": 5.0, "description": "a door slams"}]
    assert (tmp_path / "street.events.txt").read_text() == "4.00 - 5.00: a door slams\n"
