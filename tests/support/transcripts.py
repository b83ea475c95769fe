"""Long synthetic transcripts with word times, in English and Chinese, for the subtitle rules.

Speech is made at a natural pace (English about 14 characters a second, Chinese about 4.5), with
sentences from one word to forty, commas, short pauses inside sentences and longer ones between
them, and now and then a one-word reply right before the next sentence.
"""

from __future__ import annotations

import numpy as np

from moss_cli.results import Result, Segment, Word
from moss_cli.tasks.answers import group_words
from moss_cli.text import join_words

ENGLISH = (
    "the weather is nice today and it will stay like this for the rest of the week they say on radio "
    "we went to market because our friends wanted fresh bread but nobody remembered money so walked "
    "back home through park where children were playing with an old football near lake I think that "
    "this story about small town shows how people help each other when times get difficult however "
    "nobody expected council would finally agree after months of discussion extraordinary information "
    "international communication responsibility"
).split()
REPLIES = ["Yes.", "No.", "Okay.", "Right.", "Thanks!", "Really?"]
CHINESE = "今天天气很好我们一起去公园散步看到很多孩子在湖边玩耍大家都说这个城市变化非常快人们互相帮助生活越来越方便"
CHINESE_WORDS = ["今天", "天气", "很好", "我们", "一起", "去", "公园", "散步", "看到", "很多", "孩子", "在", "湖边",
                 "玩耍", "大家", "都", "说", "这个", "城市", "变化", "非常", "快", "人们", "互相", "帮助", "生活"]
CHINESE_REPLIES = ["好。", "对。", "是的！", "真的吗？"]


def english_words(seconds: float, seed: int = 0) -> list[Word]:
    rng = np.random.default_rng(seed)
    return _speak(rng, seconds, lambda: _english_sentence(rng), lambda w: 0.09 + 0.055 * len(w))


def chinese_words(seconds: float, seed: int = 0, words: bool = True) -> list[Word]:
    """Chinese words (or, with words=False, single characters) with times; punctuation inside words."""
    rng = np.random.default_rng(seed)
    return _speak(rng, seconds, lambda: _chinese_sentence(rng, words), lambda w: 0.22 * len(w.rstrip("，。！？")))


def _speak(rng, seconds: float, sentence, duration) -> list[Word]:
    words, now = [], 0.5
    while True:
        said = sentence()
        if now + sum(duration(w) for w in said) + 2 > seconds:
            return words
        for index, text in enumerate(said):
            if index and rng.random() < 0.06:
                now += rng.uniform(0.25, 0.6)  # a pause inside the sentence
            length = duration(text) * rng.uniform(0.8, 1.2)
            words.append(Word(text, round(now, 3), round(now + length, 3)))
            now += length + rng.uniform(0.0, 0.04)
        now += rng.uniform(0.15, 0.3) if len(said) == 1 else rng.uniform(0.1, 1.6)


def _english_sentence(rng) -> list[str]:
    if rng.random() < 0.1:
        return [str(rng.choice(REPLIES))]
    count = int(rng.choice([rng.integers(2, 8), rng.integers(8, 20), rng.integers(20, 41)], p=[0.3, 0.5, 0.2]))
    words = [str(rng.choice(ENGLISH)) for _ in range(count)]
    for index in range(2, count - 2):
        if rng.random() < 0.08:
            words[index] += ","
    words[0] = words[0].capitalize()
    words[-1] += str(rng.choice([".", ".", ".", "?", "!"]))
    return words


def _chinese_sentence(rng, words: bool) -> list[str]:
    if rng.random() < 0.1:
        return [str(rng.choice(CHINESE_REPLIES))]
    count = int(rng.integers(3, 25))
    said = [str(rng.choice(CHINESE_WORDS)) for _ in range(count)]
    for index in range(2, count - 2):
        if rng.random() < 0.12:
            said[index] += str(rng.choice(["，", "，", "、"]))
    said[-1] += str(rng.choice(["。", "。", "？", "！"]))
    if not words:  # one "word" per character, punctuation kept on the character before it
        chars = []
        for word in said:
            for char in word:
                if char in "，、。？！":
                    chars[-1] += char
                else:
                    chars.append(char)
        said = chars
    return said


def word_result(words: list[Word], duration: float, name: str = "long.wav") -> Result:
    """What `transcribe --words` makes: words grouped into segments by the pipeline's own rule."""
    segments = group_words(words)
    for index, segment in enumerate(segments):
        segment.id = index
    return Result("transcribe", name, duration, "synthetic", text=join_words([s.text for s in segments]),
                  segments=segments)


def sentence_result(words: list[Word], duration: float, name: str = "long.wav") -> Result:
    """What `transcribe` makes: sentences with times but no word times."""
    segments = [Segment(s.start, s.end, s.text, id=s.id) for s in word_result(words, duration).segments]
    return Result("transcribe", name, duration, "synthetic", text=join_words([s.text for s in segments]),
                  segments=segments)
