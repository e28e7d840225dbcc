"""The keyboard-noise guard (bot/nlu/gibberish_rules.py; the Rasa wrapper is bot/nlu/gibberish.py).

The rules run without Rasa (the app venv); the wrapper's train/persist/load round trip runs only
where Rasa is importable. Both the untrained detector (built-in vocabulary) and the one trained
on the real NLU training data must flag the mashes and spare the customer messages.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.nlu.gibberish_rules import (
    GibberishDetector,
    is_gibberish,
    latin_tokens,
    longest_row_run,
    repeated_unit,
)

ROOT = Path(__file__).resolve().parents[2]
NLU_DIR = ROOT / "nlu_data" / "nlu"
MARKUP = re.compile(r"\[([^\]]+?)\](?:\([^)]*\)|\{[^}]*\})")

GIBBERISH = [
    "asdkjh", "qwerty", "asdf", "hjkl", "zxcv", "uiop", "fdsa", "asdfghjkl", "zxcvbnm",
    "qwertyuiop", "sdfkjsdf", "kjhkjh", "fdgdfg", "jfjfjf", "ajsdhaksjdh", "aksjdhak",
    "qweqwe", "asdasd", "zxczxc", "ghghgh", "sdgsdg", "poipoi", "dsfdsf", "sdfsdfsdf",
    "asdfjkl", "jkljkl", "hjkhjk", "fghfgh", "kdkdkd", "vjvjvj", "aaaaaa", "ffffffff",
    "kjdfhgkjdfhg", "lakjsdf", "sdkfj", "slkdfj", "gkdjf", "kjsdhf", "fjdksla", "alskdj",
    "asd", "qwe", "jkl", "ASDKJH", "Qwerty!!", "asdf jkl", "sdfsdf sdf", "asdkjh???",
    "qwerty qwerty", "jfjfjf.", "zxcvbnm,./", "ａｓｄｆ", "hgkdj fjfj", "  asdfgh  ",
    "dfgdfgdfg", "xcvbn", "lkjlkj", "djdjdjdj", "oiuoiu", "rtyrty",
]

REAL = [
    # English, with the typos and shorthand customers type
    "where is my order", "wher is my ordr", "thx", "thnks", "plz", "pls help", "ok", "kk",
    "okkkk", "hi", "yo", "lol", "hahaha", "hmm", "idk", "nvm", "brb", "asap", "ty", "tysm",
    "refnd", "cancl my order", "adress wrong", "trackng", "recieved damaged", "helo",
    "pleeease", "thxxx", "yesss", "nope", "bye", "cya", "sup", "u there?", "r u a bot",
    "strengths", "rhythm", "schedule", "umbrella", "mortgage rates", "bitcoin",
    # product names and models, brands, platforms
    "AirPods", "airpods pro", "X200", "K8", "Smart Watch S3", "iPhone", "JBL", "Logitech",
    "roomba", "Huawei", "xiaomi", "paypal", "alipay", "WeChat", "taobao", "sf express",
    # order numbers, amounts, ticket numbers, phone numbers
    "#2026 1125 0000 0123 4567", "6012345678901234567", "T20261120000123", "¥129.5",
    "13812345678", "sdf 1234567890123456",
    # pinyin and its abbreviations
    "kf", "qs", "zrg", "rg", "kf zrg", "nihao", "zaima", "xiexie", "tuikuan", "zhuanrengong",
    "yyds", "xswl", "hhhh", "kkkk", "wkwkwk",
    # Chinese and mixed, emoji, punctuation
    "我的订单到哪了", "退款 refund 多久到账", "asdf 你好", "啊啊啊啊啊", "亲在吗", "好的👌",
    "👍", "😂😂", "???", "...", "!!!", "", "   ",
    # other languages and scripts
    "merci beaucoup", "danke schön", "gracias", "спасибо", "ありがとう", "감사합니다",
    "terima kasih", "jajaja",
]


def _training_examples() -> list[tuple[str, str]]:
    """(text, intent) of every example in nlu_data/nlu/*.yml, entity markup removed."""
    pairs: list[tuple[str, str]] = []
    for path in sorted(NLU_DIR.glob("*.yml")):
        intent = None
        for line in path.read_text(encoding="utf-8").splitlines():
            header = re.match(r"^- (intent|lookup|regex|synonym): *(\S+)", line)
            if header:
                intent = header.group(2) if header.group(1) == "intent" else None
            elif intent and line.strip().startswith("- "):
                pairs.append((MARKUP.sub(r"\1", line.strip()[2:]), intent))
    return pairs


def _lookup_entries() -> list[str]:
    entries: list[str] = []
    for path in sorted(NLU_DIR.glob("*.yml")):
        inside = False
        for line in path.read_text(encoding="utf-8").splitlines():
            if re.match(r"^- \w+:", line):
                inside = line.startswith("- lookup:")
            elif inside and line.strip().startswith("- "):
                entries.append(line.strip()[2:])
    return entries


@pytest.fixture(scope="module")
def trained() -> GibberishDetector:
    examples = _training_examples()
    assert len(examples) > 3000
    return GibberishDetector().learn(examples).learn_words(_lookup_entries())


@pytest.fixture(scope="module", params=["untrained", "trained"])
def detector(request, trained) -> GibberishDetector:
    return GibberishDetector() if request.param == "untrained" else trained


def test_the_lists_are_big_enough() -> None:
    assert len(set(GIBBERISH)) >= 40 and len(set(REAL)) >= 60


@pytest.mark.parametrize("text", GIBBERISH)
def test_keyboard_noise_is_flagged(detector: GibberishDetector, text: str) -> None:
    assert detector.is_gibberish(text), (text, [(t, detector.plausibility(t)) for t in latin_tokens(text)])


@pytest.mark.parametrize("text", REAL)
def test_customer_messages_are_not_flagged(detector: GibberishDetector, text: str) -> None:
    assert not detector.is_gibberish(text), (text, [(t, detector.plausibility(t)) for t in latin_tokens(text)])


def test_no_training_example_outside_out_of_scope_is_flagged(trained: GibberishDetector) -> None:
    flagged = [(intent, text) for text, intent in _training_examples()
               if intent != "out_of_scope" and trained.is_gibberish(text)]
    assert not flagged


def test_keyboard_mash_training_examples_do_not_become_words(trained: GibberishDetector) -> None:
    # out_of_scope may hold mashes; they must not enter the vocabulary
    for token in ("asdkjh", "qwerty", "asdf", "sdfsdf", "jkl"):
        assert token not in trained.vocabulary
    assert "weather" in trained.vocabulary  # out_of_scope words that are words do


def test_the_module_level_shortcut_uses_the_builtin_list() -> None:
    assert is_gibberish("asdkjh") and not is_gibberish("thanks")


def test_one_noisy_token_is_not_enough() -> None:
    d = GibberishDetector()
    assert d.is_gibberish("asdkjh qwerty")
    assert not d.is_gibberish("asdkjh order")
    assert not d.is_gibberish("asdkjh ok")


def test_keyboard_shapes() -> None:
    assert longest_row_run("qwerty") == 6
    assert longest_row_run("lkjh") == 4
    assert longest_row_run("strewn") == 4 and not GibberishDetector().is_gibberish("strewn")
    assert longest_row_run("hello") == 1
    assert repeated_unit("jkjkjk") == "jk" and repeated_unit("asdasd") == "asd"
    assert repeated_unit("hello") is None


def test_persisted_vocabulary_round_trips(trained: GibberishDetector) -> None:
    again = GibberishDetector.from_dict(trained.to_dict())
    assert again.vocabulary == trained.vocabulary
    assert again.settings() == trained.settings()
    for text in GIBBERISH + REAL:
        assert again.is_gibberish(text) == trained.is_gibberish(text)


def test_the_rasa_component_sets_the_fallback(tmp_path: Path) -> None:
    pytest.importorskip("rasa")
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    from bot.nlu.gibberish import GibberishGuard

    storage, resource = LocalModelStorage(tmp_path), Resource("gibberish")
    examples = [Message(data={"text": t, "intent": i}) for t, i in _training_examples()]
    examples.append(Message(data={"text": "sdfkjsdf", "intent": "out_of_scope"}))
    guard = GibberishGuard.create({}, storage, resource, None)
    guard.train(TrainingData(training_examples=examples))
    loaded = GibberishGuard.load({}, storage, resource, None)

    diet = {"name": "thank", "confidence": 0.97}
    messages = [Message(data={"text": t, "intent": dict(diet), "intent_ranking": [dict(diet)]})
                for t in ("sdfkjsdf", "asdkjh", "thx", "订单号 5123 4567 8901 2345 到哪了")]
    loaded.process(messages)
    assert [m.get("intent")["name"] for m in messages] == ["nlu_fallback", "nlu_fallback", "thank", "thank"]
    assert messages[0].get("intent")["confidence"] == 1.0
    assert [r["name"] for r in messages[0].get("intent_ranking")] == ["nlu_fallback", "out_of_scope"]
