"""SharedBatches: requests from several files at once fill the engine's batches, each caller gets its own answers."""

import threading

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
