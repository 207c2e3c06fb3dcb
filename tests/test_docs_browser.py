"""/docs in a real browser: Authorize, then Try it out, gets through the API keys.

Debian's Chromium and chromedriver (apt: chromium, chromium-driver), driven
by Selenium, headless, against the real Procfile command with keys on.
Before: no operation declared `security`, so Swagger UI never sent the key
and Try it out got 401 even after Authorize.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser import chromium, chromium_available

KEY = "docs-test-key-0123456789abcdef"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(not chromium_available(), reason="needs chromium and chromium-driver (apt)"),
]


@pytest.fixture
def browser() -> Iterator[object]:
    """The shared headless Chromium of the browser tests (tests/browser.py)."""
    with chromium(width=1400) as driver:
        driver.set_page_load_timeout(60)
        yield driver


def _execute_score(driver, wait) -> str:
    """Open POST /v1/score, Try it out with its example, Execute; the status code shown."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    operation = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".opblock-post")))
    if "is-open" not in operation.get_attribute("class"):
        operation.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    try_out = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".opblock-post .try-out__btn")))
    if try_out.text.strip().lower() == "try it out":
        try_out.click()
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".opblock-post .execute"))).click()
    status = wait.until(
        ec.visibility_of_element_located(
            (By.CSS_SELECTOR, ".opblock-post .live-responses-table .response .response-col_status")
        )
    )
    text = status.text.strip().split()[0]
    # Clear, so the next Execute shows its own answer.
    driver.find_element(By.CSS_SELECTOR, ".opblock-post .btn-clear").click()
    wait.until(ec.invisibility_of_element_located((By.CSS_SELECTOR, ".opblock-post .live-responses-table")))
    return text


def test_docs_authorize_then_try_it_out_sends_the_key(gunicorn, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    env = {"DISCOURSE_API_KEYS": f"docs:{KEY}", "DISCOURSE_RATE_LIMIT_ENABLED": "false"}
    with gunicorn(workers=1, env=env) as server:
        driver = browser
        wait = WebDriverWait(driver, 30)
        driver.get(server.base_url + "/docs")

        # Without a key: refused (this is what the page got before, even after Authorize).
        assert _execute_score(driver, wait) == "401"

        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".auth-wrapper .authorize"))).click()
        modal = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".modal-ux")))
        first_scheme = modal.find_elements(By.CSS_SELECTOR, ".auth-container")[0]
        assert "bearer" in first_scheme.text
        first_scheme.find_element(By.CSS_SELECTOR, "input").send_keys(KEY)
        first_scheme.find_element(By.CSS_SELECTOR, "button.authorize").click()
        wait.until(lambda d: "Logout" in first_scheme.text)
        modal.find_element(By.CSS_SELECTOR, "button.btn-done, button.close-modal").click()

        assert _execute_score(driver, wait) == "200"
        log = server.log()
    # The request carried the key: the log line names the key id.
    assert '"api_key_id": "docs"' in log
