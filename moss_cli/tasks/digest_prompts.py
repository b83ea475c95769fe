"""What `summarize` asks: notes on each window of audio, notes condensed when there are too many, and
the final text-only request that turns notes and transcript into a digest of a strict JSON shape."""

from __future__ import annotations

KINDS = ("meeting", "podcast", "lecture", "interview")  # --kind; auto lets the model say which (or other)

# What the notes on a window look for, by kind: the model hears tone, laughter and music, not only words.
_LOOK_FOR = {
    "meeting": "decisions taken, and action items: who will do what, and the time it was said",
    "podcast": "the hosts' and guests' main points, stories and opinions",
    "lecture": "the concepts explained, definitions, examples and conclusions",
    "interview": "the questions asked and the main points of each answer",
    "auto": "what kind of recording this is (meeting, podcast, lecture, interview or other); for a meeting, "
            "decisions taken and action items: who will do what, and the time it was said",
}

NOTES_PROMPT = (
    "Listen to this audio and take notes for a summary of it. Note the topics in the order they come, each "
    "with the time it begins as [m:ss]; who speaks and how (tone, emotion, laughter, applause, music, other "
    "sounds); names, facts and numbers; {look_for}. Write short lines, without an introduction."
)

CONDENSE_PROMPT = (
    "Here are notes taken on {parts} consecutive parts of one recording, with times counted from its start."
    "\n\n{notes}\n\nCondense them into one set of notes of at most {words} words: keep the topics with the times "
    "they begin, names, numbers, decisions and action items. Write short lines, without an introduction."
)

DIGEST_SHAPE = """{
  "kind": "meeting, podcast, lecture, interview or other",
  "short_summary": "one or two sentences",
  "summary": "one to three paragraphs",
  "chapters": [{"start": "m:ss", "title": "a few words", "gist": "one sentence"}],
  "key_points": ["one point a string"],
  "action_items": [{"who": "a name, or null", "what": "what is to be done", "when": "m:ss, when it was said"}],
  "decisions": ["one decision a string"]
}"""

DIGEST_PROMPT = (
    "A {kind} recording {duration} long was listened to in parts. Below are the notes taken while listening, "
    "then its transcript: each line starts with the time its sentence begins, counted from the start of the "
    "recording.\n\nNotes:\n{notes}\n\nTranscript:\n{transcript}\n\n"
    "Write a digest of the whole recording as one JSON object of exactly this shape, and nothing else:\n"
    "{shape}\n"
    "Chapters in time order, the first at 0:00, each at least {min_seconds} seconds long, each starting at "
    "the time of a transcript line; every time as m:ss or h:mm:ss, inside the recording. {meeting} "
    "{language}{context}"
)

_MEETING = {
    "meeting": "List every action item and decision.",
    "auto": "action_items and decisions only for a meeting; otherwise empty lists.",
}
NOT_A_MEETING = "action_items and decisions stay empty lists."


def notes_prompt(kind: str, context: str | None) -> str:
    prompt = NOTES_PROMPT.format(look_for=_LOOK_FOR[kind])
    return f"{prompt} {context_sentence(context)}".rstrip()


def context_sentence(context: str | None) -> str:
    context = " ".join((context or "").split()).rstrip(".")
    return f"Context: {context}." if context else ""


def digest_prompt(kind: str, duration: str, notes: str, transcript: str, min_seconds: float,
                  language: str | None, context: str | None) -> str:
    """`language`: the language's English name (--language), or None: the recording's own."""
    written = f"Write the digest in {language}." if language else "Write the digest in the language of the recording."
    extra = context_sentence(context)
    return DIGEST_PROMPT.format(
        kind="" if kind == "auto" else kind, duration=duration, notes=notes or "(none)",
        transcript=transcript or "(no speech)", shape=DIGEST_SHAPE, min_seconds=f"{min_seconds:g}",
        meeting=_MEETING.get(kind, NOT_A_MEETING), language=written, context=f" {extra}" if extra else "",
    ).replace("A  recording", "A recording")
