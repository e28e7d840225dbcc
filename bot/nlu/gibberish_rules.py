"""Is a message keyboard noise ("asdkjh", "qwerty", "jfjfjf")? Pure Python, stdlib only.

The detection logic behind ``bot/nlu/gibberish.py`` (the Rasa component), kept free of Rasa so
it can be tested anywhere. DIET always answers with *some* intent, and for a string of random
letters its character n-grams most resemble short social messages (``thx``, ``ty``, ``xx``), so
noise was read as ``thank`` — which also reset the "two fallbacks, then a human" count. A
classifier trained on real messages cannot be taught every mash, but the shape of a mash is
easy to describe: letters that are no word, with an improbable spelling, in keyboard runs.

The detector is deliberately conservative; it is a veto of last resort, not a classifier. A
message is noise only when **all** of this holds:

* it has no CJK, kana or hangul character, no digit (order numbers, amounts, models like
  ``X200``), no emoji or other symbol, and no letter outside ASCII (é, ü, Cyrillic…);
* it has at least one Latin token, and **every** Latin token is noise. Tokens of one or two
  letters never are (``ok``, ``kk``, ``hi``, ``yo``, ``kf``, ``qs``, ``xx``); nor is a token
  the vocabulary knows (the built-in list below plus, once trained, every Latin token of the
  NLU training data and the product lookup), also after squeezing stretched letters
  (``thxxxx``, ``pleeease``), nor a laugh (``hahaha``, ``hhhh``, ``lolol``, ``xd``).

An unknown token of three or more letters is noise when it shows a *strong* mark of a keyboard:
one letter repeated (``aaaa``); as the whole of a three-letter token, three neighbouring keys of
one row (``asd``, ``jkl``); five or more such keys in order anywhere (``asdfg``, ``zxcvbnm``),
or four when they are the whole token (``asdf``, ``qwer``, ``hjkl``, ``fdsa``) or the
spelling is improbable ("strewn" has "trew" and is a word); a short unit repeated whose letters
are vowel-less (``jkjk``, ``sdfsdf``) or a row run (``qweqwe``, ``asasas``). Failing that,
*weak* marks must come together: an improbable spelling (a character-trigram model of the
vocabulary gives it a low likelihood per letter) **and** an unpronounceable shape — a run of
five consonants, no vowel at all, or letters that all sit on one keyboard row (a very
improbable spelling already with a run of four). A weak token is still spared when it is one
typo from a known word (``recieve``, ``shippment``) or a known word with its vowels dropped
(``thnks``, ``rfnd``). Some mashes pass (``woeiru``, ``plmokn``: pronounceable, or typed down
a column); the ``out_of_scope`` training data covers them, and DIET learns them there.

Training (``GibberishDetector.learn``) only adds to the vocabulary and the trigram counts; the
built-in list keeps the detector useful untrained and covers words customers use that the
training data does not. Examples labelled ``out_of_scope`` contribute only tokens the detector
would not call noise, so keyboard-mash training examples never teach it that "asdkjh" is a word.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from typing import Any

# --- the vocabulary every detector starts with ----------------------------------------------
# Common English words, chat shorthand and its vowel-less forms, laughs and interjections,
# brands and platforms customers name, and pinyin (whole words and the usual initials).
BUILTIN_WORDS = frozenset("""
a about above across actually add added address addresses after again against ago agent ah ahh
all almost alone along already also although always am amazing amount an and angry another
answer any anybody anyone anything anyway anywhere app apple apply are area around arrive
arrived arrives as ask asked at available away awesome awful back bad bag bank bar be beach
because bed been before being believe below best better between big bill birthday bit black
blue board body book both bottle bought box boy brand break bring broke broken brother brown
buy buying by call called came can cancel cannot cant car card care careful case cash cat
cause change changed charge charged cheap check chat child choose city class clean clear close
cloth clothes coat code cold color colour come comes coming company complain complete cool
correct cost could couldnt country couple course courier cover crazy cup customer cut dad
damaged dark date day days dead deal dear decide deliver delivered delivery did didnt
different dinner do does doesnt dog doing done dont door down dress drink drive during each
early easy eat else email empty end enough even evening ever every everything exactly example
expensive explain eye face fact fail failed fall family far fast father fee feel few fine
finish first fix food for forget forgot found free friend from front full fun funny game gave
get gets getting gift girl give given glad go goes going gone good got great green group guess
guy had hair half hand happen happened happy hard has hate have havent he head hear hello help
her here hey hi high him his hold home hope hot hour hours house how however huh i idea if im
important in info information inside instead into is isnt issue it item items its just keep
kid kind know known large last late later least leave left less let letter life light like
line list little live long look looking lost lot love low made mail make man many may maybe me
mean message might mind minute miss missing mistake moment money month more morning most
mother move much must my name need needed never new news next nice night no nobody none not
nothing now number of off office often oh ok okay old on once one online only open or order
ordered orders other our out over own package page paid parcel part pay payment people
perhaps person phone pick picture place plan play please point possible post pretty price
probably problem product products question quick quickly quite rain rather read ready real
really reason receive received red refund remember reply return returned right room run said
same saw say says school second see seem seen sell send sent service set she ship shipped
shipping shop short should show side since sir size small so some someone something sometimes
soon sorry sound speak start still stop store story sure take talk tell than thank thanks that
the their them then there these they thing things think this those though thought through
time to today together told tomorrow too took top track tracking tried true try trying turn
two under understand until up update us use used very wait waiting want wanted was way we week
well went were what whatever when where which while white who whole why will wish with within
without woman won wont word work working world would wrong yeah year yes yesterday yet you
young your yours

thx thnx thnks thnk thks tks tnx tx ty tysm tyvm thanx thanku thankyou ta pls plz plss plzz
pleas plez sry srry sorry soz np nvm idk idc ikr imo imho tbh btw fyi asap brb bbl gtg g2g ttyl
lmk hmu omg omfg wtf wth ffs smh fml rn bc cuz coz cos tho thru u ur r y yo ya yah yea yeh yep
yup nah naw nope yass yas ok okk okie okey okay kay kk k mk mkay hmm hmmm hm mhm uh uhh um umm
er erm eh ehh ah ahh oh ohh ooh oops whoa wow yay meh ugh argh grr bruh bro sis dude fam sup
wassup wsp wyd hbu gm gn gg ez xoxo xo hugs msg pkg pckg rcvd rply dlvry shpd shppd ordr rfnd
cncl hlp addr acct info pic pics pls thx lol lolz lmao lmfao rofl xd xdd haha hahaha hehe hihi
hoho hah heh jk jaja jeje kek kekw wkwk wkwkwk hhh hhhh xixi hiahia lel ded rip sus fr ngl

amazon taobao tmall jd jingdong pinduoduo pdd douyin tiktok kuaishou xiaohongshu weibo wechat
weixin alipay zhifubao huabei jiebei unionpay paypal visa mastercard amex applepay shunfeng sf
ems zto yto sto yunda jtexpress cainiao dhl fedex ups usps apple iphone ipad macbook airpods
samsung huawei xiaomi redmi oppo vivo oneplus honor lenovo sony bose jbl anker ugreen baseus
logitech razer dyson philips midea haier gree nike adidas uniqlo zara lego nintendo switch xbox
playstation android ios windows mac google gmail youtube netflix spotify instagram facebook
whatsapp telegram twitter qq

nihao ninhao zaima zaibuzai zaime xiexie xiexieni duoxie haode haoba haodi shide dui bushi
buyao meiyou keyi kefu rengong zhuanrengong tuikuan tuihuo fahuo kuaidi wuliu dingdan qin
qinqin baobei mai dongxi shenme shihou zenme weishenme duoshao qian pianyi gui laoban zaijian
baibai bye byebye kf qs zrg rg tk th fh wl kd yyds xswl awsl nsdd dbq bhys plmm zqsg cpdd mm
bb xx jj dd hh
""".split())

# Letters that count as vowels for consonant runs (y too: "rhythm", "gym", "shy").
VOWELS = frozenset("aeiouy")
KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_ROW_OF = {ch: r for r, row in enumerate(KEYBOARD_ROWS) for ch in row}
_COL_OF = {ch: c for row in KEYBOARD_ROWS for c, ch in enumerate(row)}
# Three neighbouring keys of one row, either direction: the whole of a 3-letter mash.
ROW_TRIPLES = frozenset(
    s for row in KEYBOARD_ROWS for i in range(len(row) - 2) for s in (row[i:i + 3], row[i:i + 3][::-1])
)
# Laughs and drawn-out interjections in Latin letters (Chinese "hhhh", Spanish "jajaja",
# Indonesian "wkwk", Korean-style "kkkk", "lolol", "xdd", "zzz", "hmmm", "ahhh", "ohhh").
LAUGH = re.compile(
    r"(?:(?:ha|he|hi|ho|hu|ja|je|ji|ka|ke|wk|xi|hia)+h?|h{2,}|k{2,}|l(?:o+l)+z?|lm+f?a+o+"
    r"|ro+f+l+|x+d+|z{3,}|w{3,}|h?m{2,}|hm+|u+[hm]+|a+h+|o+h+|e+h+|w+o+w+|y+a+y+|m+h+m+|g+r+)"
)

CJK_OR_KANA_OR_HANGUL = re.compile(
    "[\u2e80-\u2fdf\u3040-\u30ff\u3100-\u312f\u3190-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f]"
)
LATIN_TOKEN = re.compile(r"[a-z]+")
_STRETCH = re.compile(r"(.)\1{2,}")


def _squeezed(token: str) -> set[str]:
    """``token`` with stretched letters (3+) cut to two and to one: "pleeease" -> please."""
    if not _STRETCH.search(token):
        return set()
    return {_STRETCH.sub(r"\1\1", token), _STRETCH.sub(r"\1", token)}


def _skeleton(word: str) -> str:
    """First letter, then the word without vowels and doubled letters: thanks -> thnks."""
    rest = "".join(ch for ch in word[1:] if ch not in "aeiou")
    out = word[:1]
    for ch in rest:
        if ch != out[-1:]:
            out += ch
    return out


def longest_row_run(token: str) -> int:
    """Longest stretch of keys that are neighbours on one keyboard row, in one direction."""
    best = run = 1 if token else 0
    step = 0
    for a, b in zip(token, token[1:]):
        same_row = a in _ROW_OF and b in _ROW_OF and _ROW_OF[a] == _ROW_OF[b]
        d = _COL_OF.get(b, 99) - _COL_OF.get(a, -99) if same_row else 0
        if same_row and abs(d) == 1 and (run == 1 or d == step):
            run, step = run + 1, d
        elif same_row and abs(d) == 1:
            run, step = 2, d
        else:
            run, step = 1, 0
        best = max(best, run)
    return best


def longest_consonant_run(token: str) -> int:
    best = run = 0
    for ch in token:
        run = 0 if ch in VOWELS else run + 1
        best = max(best, run)
    return best


def repeated_unit(token: str) -> str | None:
    """The unit of 2-4 letters that ``token`` repeats at least twice ("jkjk" -> "jk"), if any."""
    for size in range(2, 5):
        if len(token) >= 2 * size:
            unit = token[:size]
            if (unit * (len(token) // size + 1)).startswith(token):
                return unit
    return None


def _one_row(token: str) -> bool:
    return len({_ROW_OF.get(ch) for ch in token}) == 1


class GibberishDetector:
    """Keyboard-noise detector: a vocabulary plus a character-trigram plausibility model.

    ``improbable`` and ``very_improbable`` are mean log-probabilities per letter
    (``plausibility``): English words, their typos, brands and pinyin score about -1.5 to
    -3.5 with the built-in list and the training data; mashes such as "sdkfj" or "kjsdhf" -4
    to -6. An improbable token is noise with a consonant run of ``min_consonant_run`` + 1, no
    vowel, or all its letters on one keyboard row; a very improbable one already with a run of
    ``min_consonant_run``. A four-key row run ("asdf") needs a spelling below
    ``row_run_plausible`` ("strewn" has "trew" but is a word); five keys in a row do not.
    """

    def __init__(self, improbable: float = -4.0, very_improbable: float = -4.5,
                 min_consonant_run: int = 4, row_run_plausible: float = -3.3,
                 noise_intents: Iterable[str] = ("out_of_scope", "nlu_fallback")) -> None:
        self.improbable = improbable
        self.very_improbable = very_improbable
        self.min_consonant_run = min_consonant_run
        self.row_run_plausible = row_run_plausible
        self.noise_intents = frozenset(noise_intents)
        self.vocabulary: set[str] = set()
        self.trigrams: Counter[str] = Counter()
        self.bigrams: Counter[str] = Counter()
        self.unigrams: Counter[str] = Counter()
        self._skeletons: set[str] = set()
        self._by_length: dict[int, set[str]] = {}
        self._add_words(BUILTIN_WORDS)

    # --- learning ---------------------------------------------------------------------------
    def _add_words(self, words: Iterable[str]) -> None:
        for word in words:
            word = word.lower()
            if not word.isascii() or not word.isalpha() or word in self.vocabulary:
                continue
            self.vocabulary.add(word)
            padded = f"^{word}$"
            self.unigrams.update(padded)
            self.bigrams.update(padded[i:i + 2] for i in range(len(padded) - 1))
            self.trigrams.update(padded[i:i + 3] for i in range(len(padded) - 2))
            if len(word) >= 4:
                self._skeletons.add(_skeleton(word))
            self._by_length.setdefault(len(word), set()).add(word)

    def learn(self, examples: Iterable[tuple[str, str | None]]) -> "GibberishDetector":
        """Add the Latin tokens of (text, intent) training examples to the vocabulary.

        Examples of a noise intent (out_of_scope) add only the tokens that are not noise now,
        so keyboard-mash training examples stay mashes.
        """
        plain, noisy = [], []
        for text, intent in examples:
            (noisy if intent in self.noise_intents else plain).append(text)
        self._add_words(tok for text in plain for tok in latin_tokens(text))
        self._add_words(tok for text in noisy for tok in latin_tokens(text) if not self.token_is_noise(tok))
        return self

    def learn_words(self, words: Iterable[str]) -> "GibberishDetector":
        """Add names (e.g. a product lookup table): each Latin token of each entry."""
        self._add_words(tok for w in words for tok in latin_tokens(w))
        return self

    # --- persistence --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The learned part (the vocabulary beyond the built-in list) and the settings."""
        return {"settings": self.settings(), "learned_words": sorted(self.vocabulary - BUILTIN_WORDS)}

    def settings(self) -> dict[str, Any]:
        return {"improbable": self.improbable, "very_improbable": self.very_improbable,
                "min_consonant_run": self.min_consonant_run,
                "row_run_plausible": self.row_run_plausible,
                "noise_intents": sorted(self.noise_intents)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GibberishDetector":
        detector = cls(**data.get("settings", {}))
        detector._add_words(data.get("learned_words", ()))
        return detector

    # --- scoring -------------------------------------------------------------------------------
    def plausibility(self, token: str) -> float:
        """Mean log-probability per letter of the token's spelling under a character-trigram
        model of the vocabulary (each word counted once; trigram, bigram and letter estimates
        interpolated 0.6 / 0.3 / 0.1, so an unseen trigram costs but is never impossible)."""
        padded = f"^{token}$"
        letters = sum(self.unigrams.values()) or 1
        total = 0.0
        for i in range(len(padded) - 2):
            ab, bc, b, c = padded[i:i + 2], padded[i + 1:i + 3], padded[i + 1], padded[i + 2]
            p3 = self.trigrams[padded[i:i + 3]] / self.bigrams[ab] if self.bigrams[ab] else 0.0
            p2 = self.bigrams[bc] / self.unigrams[b] if self.unigrams[b] else 0.0
            p1 = (self.unigrams[c] + 1) / (letters + 28)
            total += math.log(0.6 * p3 + 0.3 * p2 + 0.1 * p1)
        return total / max(1, len(padded) - 2)

    def is_known(self, token: str) -> bool:
        return token in self.vocabulary or any(s in self.vocabulary for s in _squeezed(token))

    def _near_known(self, token: str) -> bool:
        """One typo from a known word (of 4+ letters), or a known word without its vowels."""
        if len(token) >= 3 and _skeleton(token) == token and token in self._skeletons:
            return True
        if len(token) < 4:
            return False
        for size in (len(token) - 1, len(token), len(token) + 1):
            for word in self._by_length.get(size, ()):
                if len(word) >= 4 and _one_edit(token, word):
                    return True
        return False

    def token_is_noise(self, token: str) -> bool:
        """Is this lowercase ASCII token keyboard noise? (see the module docstring)."""
        if len(token) <= 2 or token in self.vocabulary or LAUGH.fullmatch(token):
            return False
        # strong marks: a keyboard did this
        if len(set(token)) == 1:
            return True
        if self.is_known(token):
            return False
        if len(token) == 3:
            return token in ROW_TRIPLES
        row_run = longest_row_run(token)
        if row_run >= 5 or row_run == len(token) or (
                row_run == 4 and self.plausibility(token) < self.row_run_plausible):
            return True
        unit = repeated_unit(token)
        if unit and (not set(unit) & VOWELS or unit in ROW_TRIPLES
                     or (len(token) >= 3 * len(unit) and longest_row_run(unit) == len(unit))):
            return True
        # weak marks: an improbable spelling together with an unpronounceable shape
        score = self.plausibility(token)
        if score >= self.improbable:
            return False
        consonants = longest_consonant_run(token)
        shape = (consonants > self.min_consonant_run or not set(token) & VOWELS or _one_row(token)
                 or (score < self.very_improbable and consonants >= self.min_consonant_run))
        return shape and not self._near_known(token)

    def is_gibberish(self, text: str) -> bool:
        """Is the whole message keyboard noise? (see the module docstring)."""
        return bool(self.noise_tokens(text))

    def noise_tokens(self, text: str) -> list[str]:
        """The message's Latin tokens when the message is noise, else an empty list."""
        normal = unicodedata.normalize("NFKC", text or "").lower()
        if CJK_OR_KANA_OR_HANGUL.search(normal) or any(ch.isdigit() for ch in normal):
            return []
        for ch in normal:
            if ch.isalpha() and not ch.isascii():
                return []
            if unicodedata.category(ch) in ("So", "Sk", "Cs", "Co") or ord(ch) >= 0x1F000:
                return []
        tokens = LATIN_TOKEN.findall(normal)
        if tokens and all(self.token_is_noise(t) for t in tokens):
            return tokens
        return []


def _one_edit(a: str, b: str) -> bool:
    """Are ``a`` and ``b`` one insertion, deletion, substitution or swap of neighbours apart?"""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    if la > lb:
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1:]


def latin_tokens(text: str) -> list[str]:
    """Lowercase runs of ASCII letters (after NFKC, so full-width letters count)."""
    return LATIN_TOKEN.findall(unicodedata.normalize("NFKC", text or "").lower())


_DEFAULT: GibberishDetector | None = None


def is_gibberish(text: str) -> bool:
    """The untrained detector (built-in vocabulary only): is ``text`` keyboard noise?"""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = GibberishDetector()
    return _DEFAULT.is_gibberish(text)
