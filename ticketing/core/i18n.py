"""Bilingual text. Every sentence a customer or agent reads is a :class:`Text` with zh and en.

Modules keep their own texts next to the code that uses them; this module only picks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple


class Text(NamedTuple):
    zh: str
    en: str

    def get(self, language: str | None, **values: object) -> str:
        """The text in ``language`` ('zh…' → Chinese, anything else → English), formatted."""
        template = self.zh if normalize_language(language) == "zh" else self.en
        return template.format(**values) if values else template


def normalize_language(language: str | None) -> str:
    """'zh-CN', 'zh_Hans', 'zh' → 'zh'; everything else → 'en'. Default Chinese."""
    if language is None:
        return "zh"
    return "zh" if language.lower().startswith("zh") else "en"


# Words that only a sentence in English has: pronouns, auxiliaries, prepositions, question
# words, negations and the verbs of asking. A product name, a brand or a model ("iPhone 15 Pro")
# is Latin letters in a Chinese sentence too, so letters outside this list count for little.
_ENGLISH_WORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being
below between both but by can cannot could did do does doing don't down during each few for
from further had has have having he her here hers herself him himself his how i i'm i've if in
into is isn't it it's its itself just let me more most my myself no nor not now of off on once
only or other our ours out over own same she should so some such than that that's the their
theirs them then there these they this those through to too under until up very was wasn't we
were what when where which while who whom why will with won't would you your yours yourself
yet still already got get give want wanted need needs please thank thanks would've can't
didn't doesn't haven't hasn't i'd i'll you're we're they're there's what's where's how's
is there much many long late since ago yesterday today tomorrow week day days hour hours
order orders parcel package delivery deliver delivered arrive arrived ship shipped shipping
refund refunds return returned cancel cancelled change address item items price stock size
color colour buy bought paid pay payment money back wrong broken damaged missing received
""".split())
# Greetings and fillers say little about the sentence around them ("hi客服" is Chinese).
_FILLERS = frozenset("hi hello hey ok okay ok thx ty lol yes yeah yep no nope hmm ah oh".split())
_LATIN_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
# order numbers, amounts and model numbers ("6012…", "¥59.9", "A123", "iPhone13"): a run of
# these characters with a digit in it. Runs are matched whole and their digits looked for
# after, in linear time: ``[…]*\d[…]*`` backtracked through every start of a long run without
# a digit (64 KiB of letters: ~18 s of a gateway's event loop).
_TOKEN_RUN = re.compile(r"[\w#¥$￥.,:/+-]+", re.ASCII)
_DIGIT = re.compile(r"\d", re.ASCII)


def _blank_numbers(text: str) -> str:
    return _TOKEN_RUN.sub(lambda run: " " if _DIGIT.search(run.group()) else run.group(), text)


def language_of_text(text: str | None, *, names: Iterable[str] = ()) -> str | None:
    """'zh', 'en', or None when the text says nothing about its language (a button payload,
    digits, emoji, or as much of one as of the other): then the conversation keeps the language
    it had.

    The language of the sentence, not of every word in it: a mostly English message naming a
    Chinese product is English, a Chinese one naming an English brand is Chinese. Ideographs
    weigh as words (about 1.5 characters a word); English sentence words count in full, other
    Latin words (names, models, brands) and greetings for little; digits, amounts and order
    numbers not at all. ``names`` (product names the caller knows) are taken out first."""
    if not text or text.startswith("/"):
        return None
    lowered = text.lower()
    for name in sorted((n for n in names if n), key=len, reverse=True):
        lowered = lowered.replace(name.lower(), " ")
    lowered = _blank_numbers(lowered)
    han = sum(1 for ch in lowered if "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf")
    english = 0.0
    for word in _LATIN_WORD.findall(lowered):
        if word in _ENGLISH_WORDS:
            english += 1.0
        elif word in _FILLERS or len(word) > 1 or word in ("a", "i"):
            english += 0.4
    chinese = han / 1.5
    if chinese == english:
        return None
    return "zh" if chinese > english else "en"
