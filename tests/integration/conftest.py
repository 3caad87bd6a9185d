"""Shared integration fixtures: a headless Chromium driven by Selenium for the report and scorecard tests.

Also makes ``sweep_support.py`` (helpers shared by the sweep and CLI tests) importable as ``sweep_support``:
tests/ is not a package."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

INSTALL = "apt-get install -y chromium chromium-driver"


def _browser_paths() -> tuple[str, str]:
    browser = next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
    )
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        missing = ", ".join(n for n, p in (("chromium", browser), ("chromedriver", driver)) if p is None)
        pytest.skip(f"headless browser test needs {missing}: {INSTALL}")
    return browser, driver


@pytest.fixture
def driver(tmp_path):
    browser, chromedriver = _browser_paths()
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:  # chromium is here, so the test extra is simply missing: fail loudly, do not skip
        pytest.fail(
            "chromium is installed but selenium is not: pip install -e '.[test]' (or pip install selenium)"
        )

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    service = Service(executable_path=chromedriver, log_output=str(tmp_path / "chromedriver.log"))
    drv = webdriver.Chrome(service=service, options=options)
    drv.set_page_load_timeout(60)
    try:
        yield drv
    finally:
        drv.quit()
