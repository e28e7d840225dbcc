"""Times and waits as customers read them (ticketing.core.local_time)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ticketing.core.local_time import duration_words


@pytest.mark.parametrize(("span", "en", "zh"), [
    (timedelta(hours=1), "1 hour", "1小时"),
    (timedelta(hours=2), "2 hours", "2小时"),
    (timedelta(hours=24), "24 hours", "24小时"),
    (timedelta(minutes=90), "1.5 hours", "1.5小时"),
    (timedelta(minutes=45), "45 minutes", "45分钟"),
    (timedelta(minutes=1), "1 minute", "1分钟"),
    (timedelta(seconds=10), "1 minute", "1分钟"),
])
def test_a_promised_wait_reads_naturally(span: timedelta, en: str, zh: str) -> None:
    assert duration_words(span, language="en") == en
    assert duration_words(span, language="zh-CN") == zh
