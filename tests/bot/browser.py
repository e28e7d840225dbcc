"""Debian's Chromium under Playwright for the widget's browser tests, and screenshots on failure."""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

# The same check and the same line as scripts/system_packages.sh (which `make test` runs first).
MISSING = ("error: the browser tests need Chromium and CJK fonts: run "
           "'sudo apt-get install chromium fonts-noto-cjk' (Debian/Ubuntu)")
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


def chromium_path() -> str | None:
    """Debian's Chromium: ``chromium`` on PATH, else /usr/bin/chromium; None when neither."""
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium; a missing browser fails the test (never a skip) with what to install."""
    executable = chromium_path()
    if executable is None:
        pytest.fail(MISSING, pytrace=False)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True,
                                     args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()
