"""Debian's Chromium driven by Selenium, headless, for the page's browser tests and screenshots.

Nothing is downloaded: the browser and its driver come from the system's packages
(``apt-get install chromium chromium-driver``; scripts/check.sh installs them when missing).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def chromium_available() -> bool:
    """Whether the system's Chromium and its driver are installed."""
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


@contextmanager
def chromium(
    download_dir: Path | None = None, width: int = 1280, height: int = 1000, javascript: bool = True
) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with a fresh profile (deleted afterwards); the console log is readable."""
    profile = Path(tempfile.mkdtemp(prefix="discourse-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-default-apps",
        "--disable-extensions",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    prefs: dict = {"download.prompt_for_download": False}
    if download_dir is not None:
        prefs["download.default_directory"] = str(download_dir)
    if not javascript:
        prefs["profile.managed_default_content_settings.javascript"] = 2
    options.add_experimental_option("prefs", prefs)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        if download_dir is not None:
            driver.execute_cdp_cmd(
                "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)}
            )
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
