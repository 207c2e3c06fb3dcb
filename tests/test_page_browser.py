"""The web page in a real browser: Debian's Chromium, headless, driven by Selenium, against the
Procfile's gunicorn on a loopback port. One browser and one server for the module."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.browser import chromium_available
from tests.conftest import run_gunicorn
from tests.page_support import SECOND_REFERENCE_ID, SECOND_REFERENCE_TITLE, seeds_with_second_reference

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(not chromium_available(), reason="needs apt packages chromium and chromium-driver"),
]

if chromium_available():
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from tests.browser import chromium

TEXT = (
    "NATO expansion threatened Russia, and the Euro-Atlantic security order has failed. "
    "Russia and China are right to build a new Eurasian security architecture.\n"
    "Lavrov said in Beijing that talks on the security of Eurasia will start soon."
)
BIKE_TEXT = "The council voted to build protected bike lanes, but shop owners fear losing parking spaces."
HOSTILE = '<script>alert(1)</script><img src=x onerror="window.__owned=1;alert(2)">'

# Reads the highlights of a box: its text, and the [start, end) of each <mark> in code points.
MARKS_JS = """
const box = document.getElementById(arguments[0]);
const spans = [];
let position = 0;
for (const node of box.childNodes) {
  const length = Array.from(node.textContent).length;
  if (node.nodeName === 'MARK') spans.push([position, position + length]);
  position += length;
}
return {text: box.textContent, spans: spans};
"""

# Records each state the progress box goes through (uploading, scoring, done).
STATES_JS = """
window.progressStates = [];
new MutationObserver(() => window.progressStates.push(arguments[0].dataset.state))
  .observe(arguments[0], {attributes: true, attributeFilter: ['data-state']});
"""


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> Path:
    return seeds_with_second_reference(tmp_path_factory.mktemp("seeds"))


@pytest.fixture(scope="module")
def server(tmp_path_factory, seeds: Path):
    env = {"DISCOURSE_RATE_LIMIT_ENABLED": "false", "DISCOURSE_SEEDS_DIR": str(seeds)}
    with run_gunicorn(tmp_path_factory.mktemp("server"), env=env, workers=1) as running:
        yield running


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads: Path) -> Iterator[WebDriver]:
    with chromium(downloads) as driver:
        yield driver


def wait(driver: WebDriver, seconds: float = 20) -> WebDriverWait:
    return WebDriverWait(driver, seconds)


def console_errors(driver: WebDriver) -> list[dict]:
    """Console entries at warning level or above since the last call (reading the log empties it)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]


def open_page(driver: WebDriver, url: str) -> None:
    driver.get(url + "/")
    wait(driver).until(lambda d: d.execute_script("return document.readyState") == "complete")


def score_text(driver: WebDriver, text: str, reference: str | None = None, text_id: str = "") -> None:
    area = driver.find_element(By.ID, "one-text")
    area.clear()
    driver.execute_script("arguments[0].value = arguments[1];", area, text)  # exact text, newlines kept
    driver.find_element(By.ID, "one-id").clear()
    if text_id:
        driver.find_element(By.ID, "one-id").send_keys(text_id)
    if reference is not None:
        Select(driver.find_element(By.ID, "one-reference")).select_by_value(reference)
    old = driver.find_elements(By.CSS_SELECTOR, "#one-result > *")  # the previous result or error
    driver.find_element(By.CSS_SELECTOR, "#one-form button[type=submit]").click()
    if old:
        wait(driver).until(ec.staleness_of(old[0]))
    wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#one-result-article, #one-result .error"))


def merged(spans: list[list[int]]) -> list[list[int]]:
    """Overlapping or touching spans joined: the characters they cover, as runs."""
    runs: list[list[int]] = []
    for start, end in sorted(spans):
        if runs and start <= runs[-1][1]:
            runs[-1][1] = max(runs[-1][1], end)
        else:
            runs.append([start, end])
    return runs


@pytest.mark.skipif(shutil.which("curl") is None, reason="runs the page's curl command")
def test_score_a_text_shows_label_bars_and_exact_highlights(browser: WebDriver, server) -> None:
    open_page(browser, server.base_url)
    score_text(browser, TEXT)
    api = requests.post(
        server.base_url + "/v1/score", json={"texts": [{"text": TEXT}], "explain": True}, timeout=30
    ).json()
    result = api["results"][0]

    stance = browser.find_element(By.ID, "overall-stance")
    assert f"Stance: {result['stance']['label']}" in stance.text
    rows = stance.find_elements(By.CSS_SELECTOR, ".bar-row")
    assert [r.find_element(By.TAG_NAME, "dt").text for r in rows] == list(result["stance"]["scores"])
    for row in rows:
        label = row.find_element(By.TAG_NAME, "dt").text
        meter = row.find_element(By.TAG_NAME, "meter")
        assert float(meter.get_attribute("value")) == pytest.approx(result["stance"]["scores"][label])
        assert row.find_element(By.CSS_SELECTOR, ".value").text == f"{result['stance']['scores'][label]:.2f}"
    gauge = browser.find_element(By.ID, "similarity-gauge")
    assert float(gauge.get_attribute("value")) == pytest.approx(result["similarity"])
    assert "0 (no words in common) to 1" in browser.find_element(By.ID, "similarity-sentence").text
    assert browser.find_element(By.ID, "not-stored").is_displayed()
    assert api["model"]["version"] in browser.find_element(By.ID, "one-result-article").text

    passages = result["evidence"]["passages"]
    assert passages, "the text is about the reference: there must be evidence to show"
    shown = browser.execute_script(MARKS_JS, "evidence-text")
    assert shown["text"] == TEXT
    assert merged(shown["spans"]) == merged([[p["text_start"], p["text_end"]] for p in passages])
    reference_body = requests.get(
        server.base_url + "/v1/references/" + api["reference"]["id"], timeout=10
    ).json()["text"]
    shown = browser.execute_script(MARKS_JS, "evidence-reference")
    assert shown["text"] == reference_body
    assert merged(shown["spans"]) == merged([[p["reference_start"], p["reference_end"]] for p in passages])
    terms = browser.find_element(By.ID, "shared-terms").text
    for term in result["evidence"]["shared_terms"]:
        assert term["term"] in terms

    # The claims table sorts by a column, by keyboard as by mouse.
    header = browser.find_element(By.XPATH, "//table[@id='claims-table']//button[text()='Similarity']")
    header.send_keys("\n")
    values = [
        float(td.get_attribute("data-value"))
        for td in browser.find_elements(By.CSS_SELECTOR, "#claims-table tbody td:nth-child(3)")
    ]
    assert values == sorted(values) and len(values) == len(result["claims"])
    header.click()
    values = [
        float(td.get_attribute("data-value"))
        for td in browser.find_elements(By.CSS_SELECTOR, "#claims-table tbody td:nth-child(3)")
    ]
    assert values == sorted(values, reverse=True)
    assert header.find_element(By.XPATH, "..").get_attribute("aria-sort") == "descending"

    # The curl command, run as a user would paste it, gets the response the page shows.
    command = browser.find_element(By.ID, "one-curl").get_attribute("textContent")
    ran = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(ran.stdout) == api
    # Copy JSON puts the API's response on the clipboard (or selects it for copying).
    browser.find_element(By.CSS_SELECTOR, "button[data-copy='one-json']").click()
    wait(browser).until(lambda d: d.find_element(By.CSS_SELECTOR, ".copy-status").text)
    assert json.loads(browser.find_element(By.ID, "one-json").get_attribute("textContent")) == api
    assert console_errors(browser) == []


def test_change_the_reference(browser: WebDriver, server) -> None:
    open_page(browser, server.base_url)
    options = Select(browser.find_element(By.ID, "one-reference")).options
    assert len(options) == 2
    score_text(browser, BIKE_TEXT, reference=SECOND_REFERENCE_ID)
    article = browser.find_element(By.ID, "one-result-article")
    assert browser.find_element(By.CSS_SELECTOR, ".reference-title").text == SECOND_REFERENCE_TITLE
    claims = [
        tr.get_attribute("data-claim")
        for tr in article.find_elements(By.CSS_SELECTOR, "#claims-table tbody tr")
    ]
    assert claims == ["lanes-approved", "shops-fear-parking-loss"]
    body = requests.get(f"{server.base_url}/v1/references/{SECOND_REFERENCE_ID}", timeout=10).json()["text"]
    assert browser.execute_script(MARKS_JS, "evidence-reference")["text"] == body
    assert browser.execute_script(MARKS_JS, "evidence-reference")["spans"]
    assert console_errors(browser) == []


def write_300_rows(path: Path) -> None:
    templates = [
        "NATO expansion is a threat to Russia, says analyst number {n}.",
        "Recipe {n}: roast the tomatoes with garlic and basil, then blend them.",
        "Russia and China agreed on talks about Eurasian security, report {n} says.",
        "The Euro-Atlantic security order did not fail, according to commentator {n}.",
    ]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        for n in range(300):
            text_id = f'=HYPERLINK("x",{n})' if n == 7 else f"row-{n:03d}"
            writer.writerow([text_id, templates[n % len(templates)].format(n=n)])


def test_upload_300_rows_progress_paging_and_downloads(
    browser: WebDriver, server, seeds: Path, downloads: Path, tmp_path: Path
) -> None:
    source = tmp_path / "three-hundred.csv"
    write_300_rows(source)
    open_page(browser, server.base_url)
    browser.find_element(By.ID, "many-file").send_keys(str(source))
    box = browser.find_element(By.ID, "many-progress-box")
    browser.execute_script(STATES_JS, box)
    browser.find_element(By.CSS_SELECTOR, "#many-form button[type=submit]").click()
    wait(browser, 60).until(lambda d: box.get_attribute("data-state") in ("done", "failed"))
    states = browser.execute_script("return window.progressStates")
    assert states[0] == "uploading" and states[-1] == "done", states
    assert browser.find_element(By.ID, "many-progress").get_attribute("value") == "100"
    assert "300 texts scored" in browser.find_element(By.ID, "many-summary").text

    # Paged: 25 rows a page; the pager moves by keyboard.
    visible = browser.find_elements(By.CSS_SELECTOR, "#many-table tbody:not([hidden]) tr")
    assert len(visible) == 25 and visible[0].find_element(By.CSS_SELECTOR, "td").text == "row-000"
    status = browser.find_element(By.CSS_SELECTOR, ".pager .page-status")
    assert status.text == "Page 1 of 12"
    browser.find_element(By.CSS_SELECTOR, "button[data-page-step='1']").send_keys("\n")
    assert status.text == "Page 2 of 12"
    visible = browser.find_elements(By.CSS_SELECTOR, "#many-table tbody:not([hidden]) tr")
    assert visible[0].find_element(By.CSS_SELECTOR, "td").text == "row-025"

    for kind in ("jsonl", "csv"):
        browser.find_element(By.CSS_SELECTOR, f"button[data-download='{kind}']").click()
    jsonl_file = downloads / "three-hundred-scores.jsonl"
    csv_file = downloads / "three-hundred-scores.csv"
    deadline = time.monotonic() + 20
    while not (jsonl_file.exists() and csv_file.exists()) and time.monotonic() < deadline:
        time.sleep(0.1)

    cli_out = tmp_path / "cli.jsonl"
    command = [
        sys.executable,
        "-m",
        "service.cli",
        "score",
        str(source),
        "--out",
        str(cli_out),
        "--seeds",
        str(seeds),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    cli_lines = [json.loads(line) for line in cli_out.read_text(encoding="utf-8").splitlines()]
    page_lines = [json.loads(line) for line in jsonl_file.read_text(encoding="utf-8").splitlines()]
    assert len(page_lines) == 300
    assert page_lines == cli_lines

    with open(csv_file, encoding="utf-8-sig", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [row["id"] for row in table] == [
        ("'" + r["id"]) if r["id"].startswith("=") else r["id"] for r in cli_lines
    ]
    for row, line in zip(table, cli_lines, strict=True):
        assert row["stance"] == line["stance"]["label"]
        assert float(row["similarity"]) == line["similarity"]
        assert float(row["agree"]) == line["stance"]["scores"]["agree"]
    assert console_errors(browser) == []


def test_hostile_texts_and_ids_show_as_text_and_run_nothing(
    browser: WebDriver, server, downloads: Path, tmp_path: Path
) -> None:
    open_page(browser, server.base_url)
    score_text(browser, f"NATO and Russia {HOSTILE}", text_id=HOSTILE)
    assert HOSTILE in browser.find_element(By.ID, "one-result-title").text
    assert HOSTILE in browser.find_element(By.ID, "evidence-text").text
    hostile_file = tmp_path / "hostile.jsonl"
    rows = [
        {"id": HOSTILE, "text": HOSTILE},
        {"id": "<b>x</b>", "text": "NATO"},
        {"id": "<i>y</i>", "text": " "},  # blank: refused, and listed
    ]
    hostile_file.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    browser.find_element(By.ID, "many-file").send_keys(str(hostile_file))
    browser.find_element(By.CSS_SELECTOR, "#many-form button[type=submit]").click()
    wait(browser).until(lambda d: d.find_elements(By.ID, "many-table"))
    ids = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#many-table td.text-id")]
    assert ids == [HOSTILE, "<b>x</b>"]
    assert "<i>y</i>" in browser.find_element(By.ID, "row-errors").text
    browser.find_element(By.CSS_SELECTOR, "button[data-download='errors']").click()
    errors_file = downloads / "hostile-scores.errors.jsonl"
    wait(browser).until(lambda _: errors_file.exists())
    (error,) = [json.loads(line) for line in errors_file.read_text(encoding="utf-8").splitlines()]
    assert (error["file"], error["line"], error["field"], error["id"]) == (
        "hostile.jsonl",
        3,
        "text",
        "<i>y</i>",
    )
    time.sleep(0.3)  # give an injected handler the time it would need to run
    with pytest.raises(NoAlertPresentException):
        _ = browser.switch_to.alert.text
    assert browser.execute_script("return window.__owned === undefined")
    injected = "#one-result img, #many-result img, #many-result b, #many-result i"
    assert browser.find_elements(By.CSS_SELECTOR, injected) == []
    assert console_errors(browser) == []


def test_keys_asked_refused_then_accepted(browser: WebDriver, tmp_path: Path) -> None:
    env = {"DISCOURSE_RATE_LIMIT_ENABLED": "false", "DISCOURSE_API_KEYS": "desk:open-sesame-desk-key-01"}
    with run_gunicorn(tmp_path, env=env, workers=1) as keyed:
        open_page(browser, keyed.base_url)
        browser.execute_script("sessionStorage.clear()")
        open_page(browser, keyed.base_url)
        status = browser.find_element(By.ID, "key-status")
        assert "enter one" in status.text
        assert browser.find_element(By.ID, "api-key").is_displayed()
        # No key: the page scores nothing and says what to do.
        score_text(browser, TEXT)
        error = browser.find_element(By.CSS_SELECTOR, "#one-result .error")
        assert "Send an API key" in error.text and "Enter a valid API key" in error.text

        key_input = browser.find_element(By.ID, "api-key")
        key_input.send_keys("wrong-key\n")
        wait(browser).until(lambda d: "refused" in d.find_element(By.ID, "key-status").text)
        score_text(browser, TEXT)
        assert "The API key is not valid." in browser.find_element(By.CSS_SELECTOR, "#one-result .error").text

        browser.find_element(By.ID, "api-key").send_keys("open-sesame-desk-key-01\n")
        wait(browser).until(lambda d: "accepted" in d.find_element(By.ID, "key-status").text)
        wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "select#one-reference"))
        score_text(browser, TEXT)
        assert browser.find_elements(By.ID, "one-result-article")
        # Kept in this tab's session storage only: no cookie, nothing in local storage.
        assert (
            browser.execute_script("return sessionStorage.getItem('discourse-api-key')")
            == "open-sesame-desk-key-01"
        )
        assert browser.execute_script("return localStorage.length") == 0
        assert browser.get_cookies() == []
        # A reload keeps the key for the tab.
        open_page(browser, keyed.base_url)
        wait(browser).until(lambda d: "accepted" in d.find_element(By.ID, "key-status").text)
        # The only console entries are the browser's own notes on the refused (401) requests.
        unexpected = [e for e in console_errors(browser) if "status of 401" not in e["message"]]
        assert unexpected == []
        browser.execute_script("sessionStorage.clear()")


def test_one_text_scores_with_javascript_off(server) -> None:
    with chromium(javascript=False) as driver:
        driver.get(server.base_url + "/")
        assert driver.execute_script is not None
        driver.find_element(By.ID, "one-text").send_keys(
            "NATO expansion threatened Russia, says the minister."
        )
        driver.find_element(By.CSS_SELECTOR, "#one-form button[type=submit]").click()
        wait(driver).until(lambda d: d.find_elements(By.ID, "one-result-article"))
        assert driver.current_url.endswith("/page/score")
        assert "Stance:" in driver.find_element(By.ID, "overall-stance").text
        assert driver.find_element(By.ID, "one-text").get_attribute("value").startswith("NATO expansion")


def test_a_file_over_the_limit_is_not_sent(browser: WebDriver, server, tmp_path: Path) -> None:
    source = tmp_path / "big.csv"
    write_300_rows(source)
    open_page(browser, server.base_url)
    file_input = browser.find_element(By.ID, "many-file")
    # The page learns the limit from the service; a small one here stands for a large file.
    browser.execute_script("arguments[0].dataset.maxBytes = '1000'", file_input)
    file_input.send_keys(str(source))
    browser.find_element(By.CSS_SELECTOR, "#many-form button[type=submit]").click()
    box = browser.find_element(By.ID, "many-progress-box")
    wait(browser).until(lambda d: box.get_attribute("data-state") == "failed")
    assert "over the limit of 1,000 bytes" in box.text
    assert browser.find_elements(By.ID, "many-result-article") == []
    assert console_errors(browser) == []
