"""The words of the desk's admin screens, in Chinese and English (merged into texts.UI)."""

from __future__ import annotations

from ticketing.core.i18n import Text

UI: dict[str, Text] = {
}
