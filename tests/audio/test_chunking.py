from moss_cli.audio.chunking import Chunk, ChunkPolicy, plan_chunks, split_chunk
from moss_cli.audio.constants import SAMPLE_RATE

S = SAMPLE_RATE


def regions(*spans):
    return [(int(a * S), int(b * S)) for a, b in spans]


def test_cuts_in_the_middle_of_the_silence_nearest_the_target():
    speech = regions((0, 55), (58, 115), (117, 170))  # silences 55-58 and 115-117
    chunks = plan_chunks(170 * S, speech, ChunkPolicy(60, 120))
    assert [c.start for c in chunks] == [0, int(56.5 * S), 116 * S]
    assert chunks[-1].end == 170 * S
    assert all(a.end == b.start for a, b in zip(chunks, chunks[1:]))  # exact tiling


def test_hard_cut_when_there_is_no_silence():
    chunks = plan_chunks(200 * S, regions((0, 200)), ChunkPolicy(60, 120))
    assert [(c.start // S, c.end // S) for c in chunks] == [(0, 60), (60, 120), (120, 180), (180, 200)]
    assert all(c.duration <= 120 for c in chunks)


def test_short_tail_joins_the_previous_chunk():
    chunks = plan_chunks(int(62.5 * S), regions((0, 62.5)), ChunkPolicy(50, 120, min_tail_seconds=5))
    assert len(chunks) == 1 and chunks[0].end == int(62.5 * S)
    chunks = plan_chunks(int(130 * S), regions((0, 130)), ChunkPolicy(60, 120, min_tail_seconds=5))
    assert chunks[-1].duration >= 5


def test_offsets_are_exact_samples():
    speech = [(12_345, 400_001), (500_003, 1_700_017)]
    chunks = plan_chunks(1_800_000, speech, ChunkPolicy(30, 120, skip_silence=True))
    assert chunks[0].start == 12_345  # trimmed to the first speech sample
    assert chunks[-1].end == 1_700_017
    for chunk in chunks:
        assert chunk.offset == chunk.start / SAMPLE_RATE
        assert chunk.to_file_time(1.25) == chunk.start / SAMPLE_RATE + 1.25


def test_chunks_without_speech_are_marked():
    speech = regions((2, 10), (200, 205))
    chunks = plan_chunks(300 * S, speech, ChunkPolicy(60, 120, skip_silence=True))
    assert [c.speech for c in chunks].count(True) == 2
    silent = [c for c in chunks if not c.speech]
    assert silent and all(not any(a < c.end and b > c.start for a, b in speech) for c in silent)


def test_to_file_time_stays_inside_the_chunk():
    chunk = Chunk(16_000, 48_000)
    assert chunk.to_file_time(-3) == 1.0
    assert chunk.to_file_time(99) == 3.0


def test_split_for_retry_cuts_in_silence():
    speech = regions((0, 9), (11, 20))
    parts = split_chunk(Chunk(0, 20 * S), speech, skip_silence=False)
    assert [(p.start, p.end) for p in parts] == [(0, 10 * S), (10 * S, 20 * S)]


def test_never_over_the_maximum():
    speech = regions(*[(i * 7, i * 7 + 6.8) for i in range(100)])
    for policy in (ChunkPolicy(30, 45), ChunkPolicy(60, 120), ChunkPolicy(110, 120)):
        chunks = plan_chunks(700 * S, speech, policy)
        assert all(c.duration <= policy.max_seconds for c in chunks)
        assert chunks[0].start == 0 and chunks[-1].end == 700 * S


def test_energy_fallback_finds_loud_stretches():
    import numpy as np

    from moss_cli.audio.vad import energy_regions

    samples = np.zeros(10 * S, np.float32)
    samples[2 * S : 3 * S] = 0.3 * np.sin(np.arange(S) * 0.1)
    samples[7 * S : 8 * S] = 0.2 * np.sin(np.arange(S) * 0.2)
    regions = energy_regions(samples)
    assert len(regions) == 2
    (a, b), (c, d) = regions
    assert a <= 2 * S < 3 * S <= b and c <= 7 * S < 8 * S <= d  # padded, never clipped
    assert b < 5 * S < c


def random_speech(rng, n_samples: int) -> list[tuple[int, int]]:
    """Speech and silences of random lengths (0.1-40 s speech, 0.05-6 s silence), merged and sorted."""
    spans, pos = [], int(rng.uniform(0, 3) * S)
    while pos < n_samples:
        stop = min(n_samples, pos + int(rng.uniform(0.1, 40) * S))
        spans.append((pos, stop))
        pos = stop + int(rng.uniform(0.05, 6) * S)
    return spans


def test_planning_as_speech_is_found_gives_the_whole_files_plan():
    """Whatever the scan has found so far (exact before its frontier, anything after it), the chunks the
    planner gives are the whole-speech plan's, in order, and at the end all of them."""
    import random

    from moss_cli.audio.chunking import ChunkPlanner

    rng = random.Random(7)
    for trial in range(150):
        n = int(rng.uniform(1, 900) * S)
        speech = random_speech(rng, n)
        policy = ChunkPolicy(rng.choice([20, 30, 60]), rng.choice([60, 120]), min_tail_seconds=5,
                             skip_silence=rng.random() < 0.5)
        expected = plan_chunks(n, speech, policy)
        planner, got = ChunkPlanner(n, policy), []
        frontier = 0
        while frontier < n:
            frontier = min(n, frontier + int(rng.uniform(0.5, 90) * S))
            found = [(a, min(b, frontier)) for a, b in speech if a < frontier]
            if frontier < n and rng.random() < 0.5:  # after the frontier the scan's view may still change
                found.append((frontier + int(rng.uniform(0, 5) * S), frontier + int(rng.uniform(6, 60) * S)))
            got += planner.advance(found, frontier if frontier < n else n)
            assert got == expected[: len(got)], f"trial {trial}"
        assert got == expected, f"trial {trial}"
        assert planner.advance(speech, n) == []


def test_chunks_are_given_before_the_scan_ends():
    from moss_cli.audio.chunking import ChunkPlanner

    speech = [(i * 10 * S, (i * 10 + 8) * S) for i in range(60)]  # 8 s speech, 2 s pauses, 600 s
    planner = ChunkPlanner(600 * S, ChunkPolicy(60, 120))
    first = planner.advance([r for r in speech if r[0] < 200 * S], 200 * S)
    assert first and first[-1].end < 200 * S  # settled within what is known
    assert first == plan_chunks(600 * S, speech, ChunkPolicy(60, 120))[: len(first)]
