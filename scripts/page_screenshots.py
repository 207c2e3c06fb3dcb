"""Regenerate the web page's screenshots in docs/: page-one-text.png and page-many-texts.png.

Starts the Procfile's gunicorn on a free loopback port, drives Debian's headless Chromium
(apt packages chromium and chromium-driver) with Selenium, scores a text and a small file
written here, and saves each section as a PNG.

    .venv/bin/python scripts/page_screenshots.py        (needs the dev extra)
"""

from __future__ import annotations

import csv
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from tests.browser import chromium  # noqa: E402
from tests.conftest import run_gunicorn  # noqa: E402

DOCS = ROOT / "docs"
WIDTH = 1280

# Written for the screenshots: an opinion on the seed reference's subject, in our own words.
ONE_TEXT = (
    "NATO's eastward expansion has left Russia feeling threatened, and the security order built "
    "after the Cold War has failed to include it. Russia and China now say they will talk about a "
    "new security architecture for Eurasia, open to other countries."
)
MANY_TEXTS = [
    "NATO expansion is a threat to Russia's security, the minister said again on Monday.",
    "Russia and China agreed to start talks on the security of Eurasia.",
    "Roast the tomatoes with garlic and basil, then blend them into a sauce.",
    "The Euro-Atlantic security order has not failed; it kept the peace for decades.",
    "There could be a direct military confrontation between Russia and NATO, experts warn.",
    "Local elections: turnout was low in most districts this year.",
]


def write_sample(path: Path) -> None:
    """60 rows, two of which break a rule (a blank text, an id given twice)."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        for n in range(60):
            writer.writerow([f"article-{n:02d}", MANY_TEXTS[n % len(MANY_TEXTS)]])
        writer.writerow(["article-60", "   "])
        writer.writerow(["article-05", "A second row with the id article-05."])


def fit_height(driver, element_id: str) -> None:
    """Make the window tall enough for the whole section, so its screenshot is not cut."""
    height = driver.execute_script(
        "const r = document.getElementById(arguments[0]).getBoundingClientRect();"
        "return Math.ceil(r.bottom + window.scrollY + 40);",
        element_id,
    )
    driver.set_window_size(WIDTH, max(800, height))


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="discourse-screenshots-") as folder:
        tmp = Path(folder)
        sample = tmp / "articles.csv"
        write_sample(sample)
        env = {"DISCOURSE_RATE_LIMIT_ENABLED": "false"}
        with run_gunicorn(tmp, env=env, workers=1) as server, chromium(width=WIDTH, height=1000) as driver:
            driver.get(server.base_url + "/")
            driver.execute_script("document.getElementById('one-text').value = arguments[0];", ONE_TEXT)
            driver.find_element(By.CSS_SELECTOR, "#one-form button[type=submit]").click()
            WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.ID, "one-result-article"))
            driver.execute_script("document.activeElement.blur()")
            fit_height(driver, "one")
            driver.find_element(By.ID, "one").screenshot(str(DOCS / "page-one-text.png"))

            driver.set_window_size(WIDTH, 1000)
            driver.find_element(By.ID, "many-file").send_keys(str(sample))
            driver.find_element(By.CSS_SELECTOR, "#many-form button[type=submit]").click()
            WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.ID, "many-table"))
            driver.execute_script("document.activeElement.blur()")
            fit_height(driver, "many")
            driver.find_element(By.ID, "many").screenshot(str(DOCS / "page-many-texts.png"))
            errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    for name in ("page-one-text.png", "page-many-texts.png"):
        print(f"wrote {DOCS / name}")
    if errors:
        print(f"browser console errors: {errors}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
