"""Bilingual text. Every sentence a customer or agent reads is a :class:`Text` with zh and en.

Modules keep their own texts next to the code that uses them; this module only picks.
"""

from __future__ import annotations

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


def language_of_text(text: str | None) -> str | None:
    """'zh', 'en', or None when the text says nothing about its language (a button payload,
    digits, emoji): then the conversation keeps the language it had."""
    if not text or text.startswith("/"):
        return None
    if any("\u4e00" <= ch <= "\u9fff" for ch in text):
        return "zh"
    if any(ch.isascii() and ch.isalpha() for ch in text):
        return "en"
    return None
