"""Debian's Chromium under Playwright for the widget's browser tests, and screenshots on failure."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

F = TypeVar("F", bound=Callable[..., None])


def screenshot_on_failure(test: F) -> F:
    """Saves tests/artifacts/<test>.png when the test fails, for a look at what the user saw."""
    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            test(*args, **kwargs)
        except BaseException:
            page: Page | None = kwargs.get("page")
            if page is not None and not page.is_closed():
                ARTIFACTS.mkdir(exist_ok=True)
                try:
                    page.screenshot(path=str(ARTIFACTS / f"{test.__name__}.png"), full_page=True)
                except Exception:  # noqa: BLE001 - the test's own failure matters more
                    pass
            raise
    return wrapper  # type: ignore[return-value]


@contextmanager
def chromium(*, missing: Callable[[str], Any] = pytest.fail) -> Iterator[Browser]:
    """Headless Chromium; ``missing`` (pytest.fail or pytest.skip) when it is not installed."""
    if not Path(CHROMIUM).exists():
        missing(f"no Chromium at {CHROMIUM}: apt-get install chromium fonts-noto-cjk")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()
