"""A real browser: Debian's Chromium, driven through its own ChromeDriver by Selenium.

Both come from the OS packages (``chromium``, ``chromium-driver``; ``.ci/run``
installs them): Selenium is told where they are, so it never downloads a browser.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """A fresh headless Chromium per test (its own profile: no cookie crosses tests)."""
    if not (Path(CHROMIUM).exists() and shutil.which("chromedriver")):
        pytest.fail(
            "the browser tests need Debian's chromium and chromium-driver packages: "
            "apt-get install chromium chromium-driver (.ci/run does this)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=900,900",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
