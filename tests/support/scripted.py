"""An engine that answers like the model would, from the phrases a test recording holds."""

from moss_cli.engine.base import Answer
from support.fake_server import phrases_in


class ScriptedEngine:
    """Answers like the model would, from the phrases it hears; overflows on audio longer than `fits`."""

    name = "scripted"
    parallelism = 4
    thinking = False  # the rest of the engine contract (engine/base.py Engine)
    max_request_seconds = None
    where = None

    def ask_many(self, requests):
        self.rounds.append(len(requests))
        return [self.ask(r.audio, r.question, r.options, r.guard) for r in requests]

    def __init__(self, fits=1e9, timed=True):
        self.rounds = []
        self.fits = fits
        self.timed = timed
        self.calls = []

    def ask(self, audio, question, options, guard=None):
        seconds = audio.size / 16_000
        self.calls.append((seconds, options.max_new_tokens))
        heard = phrases_in(audio)
        if seconds > self.fits:
            return Answer("[0.00]la la la la" * 50, "", "", [], "length", 0)
        if not self.timed:
            return Answer(" ".join(f"phrase {p.index}." for p in heard), "", "", [], "stop", 0)
        text = "".join(f"[{p.start:.2f}]phrase {p.index}.[{p.end:.2f}]" for p in heard)
        if "sound events" in question:
            text = "\n".join(f"{p.start:.2f} - {p.end:.2f}: p{p.index}" for p in heard)
        return Answer(text, "", text, [], "stop", 0)

    def ask_text(self, question, options, guard=None):
        return Answer("combined", "", "combined", [], "stop", 0)

    def counts(self):
        return None

    def close(self):
        pass
