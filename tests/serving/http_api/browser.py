"""Headless Chromium for the search page's test: Debian's ``chromium`` driven by Selenium through Debian's
``chromedriver`` (both found on PATH, so Selenium never fetches a driver or a browser of its own). Outside CI a
missing browser skips the test with the command that installs it; in CI (``CI`` set, where .ci/run installs it) it
fails."""
from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

INSTALL = "apt-get install -y chromium chromium-driver"
WINDOW = (1100, 760)


def _missing() -> list[str]:
    """What the test lacks, each with the command that installs it."""
    missing = []
    browser = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    if browser:
        missing.append(f"{' and '.join(browser)} ({INSTALL})")
    if importlib.util.find_spec("selenium") is None:
        missing.append('selenium (pip install -e ".[test]")')
    return missing


@contextmanager
def chromium(insecure_certs: bool = False) -> Iterator:
    """A headless Chromium WebDriver, quit at the end; skips (fails in CI) where the browser is not installed.
    ``insecure_certs``: accept any server certificate (a test CA's)."""
    missing = _missing()
    if missing:
        message = f"the search page's browser test needs {' and '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--force-device-scale-factor=1", f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        options.add_argument(flag)
    options.accept_insecure_certs = insecure_certs
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})   # the page's console, for driver.get_log
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()
