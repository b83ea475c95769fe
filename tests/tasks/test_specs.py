"""What a task knows of itself: whether its audio is scanned for speech, how a long file's answers combine."""

from moss_cli.tasks.specs import ASK, CAPTION, EVENTS, MUSIC, SPEECH_CAPTION, TRANSCRIBE_SENTENCES, TRANSCRIBE_WORDS


def test_timed_tasks_scan_for_speech():
    scans = [task.scans_for_speech for task in (TRANSCRIBE_SENTENCES, TRANSCRIBE_WORDS, EVENTS, CAPTION, MUSIC, ASK)]
    assert scans == [True, True, True, False, False, False]


def test_described_tasks_say_how_their_windows_combine_whatever_the_prompt():
    assert all(task.combine_instruction.startswith("Combine these") for task in (CAPTION, SPEECH_CAPTION, MUSIC))
    assert "JSON object with the same fields" in SPEECH_CAPTION.combine_instruction
    assert CAPTION.with_prompt("Other.").combine_instruction == CAPTION.combine_instruction
