"""`describe_voices`: each speaker's profile from their own speech, each segment's emotion and tone,
and answers the model gets wrong in shape left out with a warning (the engine is a double that
answers the speech caption from the phrases it hears)."""

import json

from support.fake_server import phrase_recording, phrases_in

from moss_cli.engine.base import Answer
from moss_cli.results import Segment
from moss_cli.tasks import voices
from moss_cli.tasks.recording import Recording
from moss_cli.tasks.specs import SPEECH_CAPTION_PROMPT


class CaptionEngine:
    """Answers the speech caption with fields that say which phrases it heard."""

    name, parallelism, thinking, max_request_seconds, where = "captions", 4, False, None, None

    def __init__(self, broken=()):
        self.requests = []
        self.broken = broken  # phrase indexes whose caption is not JSON

    def ask_many(self, requests):
        self.requests += requests
        return [self._answer(r.audio, r.question) for r in requests]

    def _answer(self, audio, question):
        assert question == SPEECH_CAPTION_PROMPT  # the authors' prompt, as caption --speech asks it
        heard = [p.index for p in phrases_in(audio)]
        if set(heard) & set(self.broken):
            return Answer("a warm voice", "", "", [], "stop", 0)
        said = " ".join(map(str, heard))
        fields = {"Gender": f"g {said}", "age": f"a {said}", "accent": ["x", said], "pitch": f"p {said}",
                  "speed": f"s {said}", "emotion": f"e {said}", "tone": f"t {said}", "volume": "loud"}
        return Answer("```json\n" + json.dumps(fields) + "\n```", "", "", [], "stop", 0)


def dialogue():
    """Six phrases with long silences between: speakers A, B, A, B, A, B."""
    samples, phrases = phrase_recording(40.0, seed=3)
    segments = [Segment(p.start, p.end, f"phrase {p.index}.", id=i, speaker="AB"[i % 2])
                for i, p in enumerate(phrases)]
    return Recording.from_array("talk.wav", samples), segments, phrases


def test_each_speaker_is_described_from_their_own_speech_and_each_segment_on_its_own():
    recording, segments, phrases = dialogue()
    engine = CaptionEngine()
    report = voices.describe_voices(recording, segments, engine)
    assert list(report.profiles) == ["A", "B"] and report.warnings == []
    for name in "AB":
        own = " ".join(str(p.index) for i, p in enumerate(phrases) if "AB"[i % 2] == name)
        assert report.profiles[name] == {"gender": f"g {own}", "age": f"a {own}", "accent": f"x, {own}",
                                         "pitch": f"p {own}", "speed": f"s {own}", "emotion": f"e {own}",
                                         "tone": f"t {own}"}  # the seven fields, keys in any case, as text
    assert [(t["segment"], t["speaker"], t["emotion"], t["tone"]) for t in report.timeline] == [
        (i, "AB"[i % 2], f"e {p.index}", f"t {p.index}") for i, p in enumerate(phrases)]
    assert report.timeline[0]["start"] == round(phrases[0].start, 3)
    assert len(engine.requests) == 2 + len(segments)  # in one batch: profiles, then segments


def test_a_speakers_profile_hears_at_most_a_minute_of_their_longest_segments():
    recording = Recording.from_array("long.wav", phrase_recording(100.0, seed=4)[0])
    long_one = [Segment(0.0, recording.duration, "all", id=0, speaker="A")]
    engine = CaptionEngine()
    voices.describe_voices(recording, long_one, engine)
    profile, segment = engine.requests
    assert profile.audio.size == voices.PROFILE_SECONDS * 16_000
    assert segment.audio.size == voices.SEGMENT_SECONDS * 16_000
    assert profile.options.max_new_tokens == voices.SPEECH_CAPTION.token_budget(voices.PROFILE_SECONDS)


def test_captions_that_are_not_json_are_left_out_with_a_warning():
    recording, segments, phrases = dialogue()
    report = voices.describe_voices(recording, segments, CaptionEngine(broken=(phrases[1].index,)))
    assert "B" not in report.profiles or report.profiles["B"] == {}
    assert report.timeline[1] == {"segment": 1, "start": round(phrases[1].start, 3), "end": round(phrases[1].end, 3),
                                  "speaker": "B"}
    assert report.timeline[0]["emotion"] == f"e {phrases[0].index}"
    assert any("voice of B is not a JSON object" in w for w in report.warnings)
    assert any(f"segment at {phrases[1].start:.2f} s is not a JSON object" in w for w in report.warnings)


def test_unlabelled_segments_have_moods_but_no_profile():
    recording, segments, _ = dialogue()
    unlabelled = [Segment(s.start, s.end, s.text, id=s.id) for s in segments]
    report = voices.describe_voices(recording, unlabelled, CaptionEngine())
    assert report.profiles == {} and len(report.timeline) == len(segments)
    assert voices.describe_voices(recording, [], CaptionEngine()).to_dict() == {"speakers": {}, "timeline": []}
