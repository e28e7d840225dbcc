"""Two shapes of noise the word-based detector leaves alone (stdlib only).

``gibberish_rules`` judges Latin words and steps back from anything with a digit or a CJK
character (order numbers, models like X200, any Chinese). Two kinds of key-mashing fall in
that gap and were read as social intents ("kkkkkkkkk" → affirm, "啦啦啦啦啦啦啦" → goodbye,
"x9x9x9" → thank):

* one character held down: the message, without spaces and punctuation, is a single
  character repeated at least ``HELD_DOWN`` times — except the ones people do repeat to mean
  something (好好好, 嗯嗯嗯, 对对对, 哈哈哈, 呵呵呵, 嘿嘿嘿, 888);
* letters and digits shuffled: a token of at least three alternating letter and digit runs
  whose letter runs are all short (≤ 3) — "x9x9x9", "123abc456", "a1b2c3" — which no model
  name, tracking or order number looks like ("iPhone13ProMax" has long letter runs, "SF123"
  only two runs).
"""

from __future__ import annotations

import re

HELD_DOWN = 5
MEANINGFUL_REPEATS = frozenset("好嗯对是行哈呵嘿嘻8")
_TOKEN = re.compile(r"[A-Za-z0-9]+")
_RUNS = re.compile(r"[A-Za-z]+|[0-9]+")


def _held_down(text: str) -> bool:
    chars = [ch for ch in text if ch.isalnum()]
    if len(chars) < HELD_DOWN or len(set(ch.lower() for ch in chars)) != 1:
        return False
    if len(chars) != len([ch for ch in text if not ch.isspace()]):
        return False  # something else beside the repeated character: not just a held key
    return chars[0] not in MEANINGFUL_REPEATS


def _shuffled(token: str) -> bool:
    runs = _RUNS.findall(token)
    letters = [r for r in runs if r.isalpha()]
    return len(runs) >= 3 and bool(letters) and all(len(r) <= 3 for r in letters)


def is_noise_shape(text: str) -> bool:
    """True for a held-down key or a message whose every token is shuffled letters/digits."""
    text = (text or "").strip()
    if not text:
        return False
    if _held_down(text):
        return True
    if any(ord(ch) > 0x2E7F for ch in text):  # CJK and beyond: words we do not judge here
        return False
    tokens = _TOKEN.findall(text)
    return bool(tokens) and all(_shuffled(t) for t in tokens)
