"""SharedBatches: requests from several files at once fill the engine's batches, each caller gets its own answers."""

import threading
import time

import numpy as np
import pytest

from moss_cli.engine.base import Answer, Engine, Request
from moss_cli.engine.shared import SharedBatches
from moss_cli.errors import QuestionError


class EchoEngine:
    """Answers each request with its question; records the size of every batch it is given."""

    name, thinking, max_request_seconds, where = "echo", False, None, None

    def __init__(self, parallelism=8, fail_on=None):
        self.parallelism = parallelism
        self.batches = []
        self.fail_on = fail_on

    def ask_many(self, requests):
        self.batches.append([r.question for r in requests])
        if self.fail_on in [r.question for r in requests]:
            raise RuntimeError("the model fell over")
        return [Answer(r.question, "", r.question, [], "stop", 0) for r in requests]

    def ask(self, audio, question, options=None, guard=None):
        return self.ask_many([Request(audio, question)])[0]

    def ask_questions(self, audio, questions, options=None, guard=None):
        return [Answer(q, "", q, [], "stop", 0) for q in questions]

    def ask_text(self, question, options=None, guard=None):
        return Answer(question, "", question, [], "stop", 0)

    def counts(self):
        return None

    def close(self):
        pass


def members_ask(shared, questions_per_member):
    """Each member in its own thread, as the runner's files are: its answers, by member."""
    answers, errors = {}, {}
    ready = threading.Barrier(len(questions_per_member))

    def member(index, questions):
        with shared.member():
            ready.wait()
            try:
                answers[index] = [a.text for a in shared.ask_many([Request(None, q) for q in questions])]
            except Exception as exc:  # noqa: BLE001 - what each member heard
                errors[index] = str(exc)

    threads = [threading.Thread(target=member, args=pair) for pair in enumerate(questions_per_member)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return answers, errors


def test_eight_files_asking_at_once_decode_in_one_batch():
    engine = EchoEngine(parallelism=8)
    shared = SharedBatches(engine)
    answers, _ = members_ask(shared, [[f"file {i}"] for i in range(8)])
    assert answers == {i: [f"file {i}"] for i in range(8)}
    assert [len(batch) for batch in engine.batches] == [8]
    assert isinstance(shared, Engine)  # the whole contract, passed through


def test_a_long_call_is_cut_into_full_batches_and_answered_in_its_order():
    engine = EchoEngine(parallelism=4)
    answers, _ = members_ask(SharedBatches(engine), [[f"a{i}" for i in range(6)], ["b0", "b1", "b2"]])
    assert answers[0] == [f"a{i}" for i in range(6)] and answers[1] == ["b0", "b1", "b2"]
    assert sorted(len(batch) for batch in engine.batches) == [1, 4, 4]
    assert all(len(batch) <= 4 for batch in engine.batches)


def test_a_batch_waits_for_a_member_still_working_then_goes():
    engine = EchoEngine(parallelism=8)
    shared = SharedBatches(engine)
    with shared.member():  # a second file, still decoding its audio
        asked = threading.Thread(target=lambda: shared.ask_many([Request(None, "early")]))
        with shared.member():
            asked.start()
            asked.join(0.5)
            assert asked.is_alive() and engine.batches == []  # waiting for the other member
        asked.join(5)  # the other member left without asking: the batch goes
    assert engine.batches == [["early"]]


def test_without_members_a_call_goes_at_once():
    engine = EchoEngine(parallelism=8)
    assert SharedBatches(engine).ask("audio", "alone").text == "alone"
    assert engine.batches == [["alone"]]


def test_an_error_reaches_every_caller_in_that_batch_and_no_other():
    engine = EchoEngine(parallelism=2, fail_on="bad")
    answers, errors = members_ask(SharedBatches(engine), [["bad"], ["x"], ["y"], ["z"]])
    failed = set(errors)
    assert errors and all(message == "the model fell over" for message in errors.values())
    assert set(answers) == {0, 1, 2, 3} - failed and all(answers[i] == [q] for i, q in
                                                        zip(range(1, 4), "xyz") if i in answers)
    assert 0 in failed and len(failed) == 2  # "bad" and the one that shared its batch


def test_a_failed_batch_leaves_the_calls_queued_behind_it_to_go_on():
    # Calls are found in the queue by identity: compared field by field, the failed call was compared
    # with the one queued behind it, and so their audio arrays, which numpy refuses ("the truth value
    # of an array ... is ambiguous"): the caller got that error and the queue stopped.
    engine = HeldEngine(parallelism=1, fail_on="bad")
    shared = SharedBatches(engine)
    heard = {}

    def ask(question):
        try:
            heard[question] = shared.ask(np.zeros(1600, dtype=np.float32), question).text
        except Exception as exc:  # noqa: BLE001 - what the caller heard
            heard[question] = str(exc)

    failing = threading.Thread(target=ask, args=("bad",))
    failing.start()
    assert engine.holding.wait(5)  # "bad" is being decoded
    behind = threading.Thread(target=ask, args=("next",))
    behind.start()
    time.sleep(0.2)  # "next" waits in the queue
    engine.release.set()
    failing.join(5), behind.join(5)
    assert heard == {"bad": "the model fell over", "next": "next"}


class HeldEngine(EchoEngine):
    """EchoEngine that holds each batch until `release` is set."""

    def __init__(self, parallelism=8, fail_on=None):
        super().__init__(parallelism, fail_on)
        self.holding, self.release = threading.Event(), threading.Event()

    def ask_many(self, requests):
        self.holding.set()
        assert self.release.wait(5)
        return super().ask_many(requests)


class RefusingEngine(EchoEngine):
    """Refuses a batch holding the question "bad" with an error about that input alone, as the local
    engine refuses a question that spells the audio placeholder, before decoding anything."""

    def ask_many(self, requests):
        if "bad" in [r.question for r in requests]:
            self.batches.append([r.question for r in requests])
            raise QuestionError("the question holds '<|vision_pad|>'")
        return super().ask_many(requests)


def test_an_error_about_one_input_reaches_only_the_caller_it_is_about():
    engine = RefusingEngine(parallelism=4)
    answers, errors = members_ask(SharedBatches(engine), [["bad"], ["x"], ["y", "z"]])
    assert errors == {0: "the question holds '<|vision_pad|>'"}
    assert answers == {1: ["x"], 2: ["y", "z"]}


@pytest.mark.parametrize("width", [1, 3])
def test_parallelism_is_the_batch_width(width):
    assert SharedBatches(EchoEngine(parallelism=width)).parallelism == width


class RowsEngine(EchoEngine):
    """Decodes continuously, as the local engine does: `parallelism` rows; a request "name:n" takes n steps
    and the question "bad:1" is refused on its own. Records the questions of the rows at each step."""

    def __init__(self, parallelism=2, step_seconds=0.0):
        super().__init__(parallelism)
        self.steps, self.step_seconds = [], step_seconds

    def decode_continuously(self, next_requests, deliver):
        rows = {}  # key -> [request, steps left]
        while True:
            for key, request in next_requests(self.parallelism - len(rows)) if len(rows) < self.parallelism else []:
                if request.question.startswith("bad"):
                    deliver(key, QuestionError("the question holds '<|vision_pad|>'"))
                else:
                    rows[key] = [request, int(request.question.split(":")[1])]
            if not rows:
                return
            self.steps.append(sorted(request.question for request, _ in rows.values()))
            time.sleep(self.step_seconds)
            for key in list(rows):
                rows[key][1] -= 1
                if rows[key][1] == 0:
                    question = rows.pop(key)[0].question
                    deliver(key, Answer(question, "", question, [], "stop", 0))

    def ask_questions(self, audio, questions, options=None, guard=None):
        self.steps.append(["questions"])
        return super().ask_questions(audio, questions, options, guard)


def test_a_finished_row_takes_the_next_request_of_any_file():
    engine = RowsEngine(parallelism=2)
    calls = [["a1:5", "a2:1", "a3:1"], ["b1:5", "b2:1", "b3:1"]]
    answers, _ = members_ask(SharedBatches(engine, rows=4), calls)  # 4: both files ask before the rows start
    assert answers == {0: calls[0], 1: calls[1]}
    # Whole batches of two would take 5 + 5 + 1 steps; here the short requests fill the rows beside the
    # long ones, and the second file's long request starts as soon as the first file's short ones end.
    assert len(engine.steps) == 7 and all(len(step) <= 2 for step in engine.steps)
    assert any({q[0] for q in step} == {"a", "b"} for step in engine.steps)


def test_continuous_rows_wait_for_a_member_still_working_then_go():
    engine = RowsEngine(parallelism=8)
    shared = SharedBatches(engine)
    with shared.member():
        asked = threading.Thread(target=lambda: shared.ask_many([Request(None, "early:1")]))
        with shared.member():
            asked.start()
            asked.join(0.5)
            assert asked.is_alive() and engine.steps == []  # the first file does not decode alone
        asked.join(5)
    assert engine.steps == [["early:1"]]


def test_text_questions_join_running_rows_and_several_questions_run_between_steps():
    engine = RowsEngine(parallelism=2, step_seconds=0.05)
    shared = SharedBatches(engine)
    audio = threading.Thread(target=lambda: shared.ask_many([Request("clip.wav", "long:12")]))
    audio.start()
    while not engine.steps:
        time.sleep(0.01)
    assert shared.ask_text("text:1").text == "text:1"
    assert [a.text for a in shared.ask_questions("clip.wav", ["q1", "q2"])] == ["q1", "q2"]
    audio.join(5)
    assert ["long:12", "text:1"] in engine.steps  # a row beside the audio request, not after it
    at = engine.steps.index(["questions"])
    assert engine.steps[at - 1] == engine.steps[at + 1] == ["long:12"]  # between two of its steps


def test_a_continuous_error_about_one_input_reaches_only_its_caller():
    answers, errors = members_ask(SharedBatches(RowsEngine(parallelism=4)), [["bad:1"], ["x:1"], ["y:2", "z:1"]])
    assert errors == {0: "the question holds '<|vision_pad|>'"}
    assert answers == {1: ["x:1"], 2: ["y:2", "z:1"]}


class FailingRowsEngine(RowsEngine):
    def decode_continuously(self, next_requests, deliver):
        next_requests(self.parallelism)
        raise RuntimeError("the model fell over")


def test_a_failing_model_reaches_every_request_it_was_decoding():
    answers, errors = members_ask(SharedBatches(FailingRowsEngine(parallelism=8)), [["x:1"], ["y:1", "z:1"]])
    assert answers == {} and errors == {0: "the model fell over", 1: "the model fell over"}


def test_local_rows_are_shared_across_files_with_the_answers_they_get_alone(tiny_engine, monkeypatch):
    from support.recordings import synthetic_speechlike

    from moss_cli import DecodingOptions
    from moss_cli.engine.local.rows import RunningRows

    def request(seconds, seed, budget):
        return Request(synthetic_speechlike(seconds, seed=seed), "Describe the audio.", DecodingOptions(max_new_tokens=budget))

    calls = [[request(1.3, 0, 12), request(2.2, 1, 3)], [request(4.0, 2, 4), request(1.0, 3, 6)]]
    alone = [[tiny_engine.ask_many([r])[0].token_ids for r in call] for call in calls]
    monkeypatch.setattr(tiny_engine, "batch_size", 2)
    joined = []  # rows that joined a batch still decoding
    original = RunningRows.rebuild

    def rebuild(self, keep, joining=None, joining_rows=(), *rest):
        joined.extend(joining_rows if keep else [])
        return original(self, keep, joining, joining_rows, *rest)

    monkeypatch.setattr(RunningRows, "rebuild", rebuild)
    shared = SharedBatches(tiny_engine, rows=4)
    results = {}

    def member(index):
        with shared.member():
            results[index] = [a.token_ids for a in shared.ask_many(calls[index])]

    with shared.member():  # both files ask before the rows start
        threads = [threading.Thread(target=member, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
    for thread in threads:
        thread.join(60)
    assert results == {0: alone[0], 1: alone[1]}
    assert joined  # a finished row took the next request while the other row decoded on


class LingeringRowsEngine(RowsEngine):
    """Still busy for a moment after its last answer, as a decoding thread is with its last tensors."""

    def __init__(self):
        super().__init__(parallelism=2)
        self.finished = threading.Event()

    def decode_continuously(self, next_requests, deliver):
        super().decode_continuously(next_requests, deliver)
        time.sleep(0.3)
        self.finished.set()


def test_the_exit_waits_for_the_decoding_thread_and_it_takes_no_more_work():
    from moss_cli import interrupts

    engine = LingeringRowsEngine()
    shared = SharedBatches(engine)
    assert [a.text for a in shared.ask_many([Request(None, "a:2"), Request(None, "b:1")])] == ["a:2", "b:1"]
    assert not engine.finished.is_set()  # the answers are in; the decoding thread is not done yet
    interrupts._stop_background_work()  # what the interpreter's exit runs
    assert engine.finished.is_set()  # waited for: no thread inside the engine while the process ends
    assert shared._stopping.is_set() and shared._pull(2) == []
