"""The page against a service that requires API keys (RRR_API_KEYS): the key typed once in
Settings is sent on every request (uploads, polling, frames, heatmaps, history)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

try:
    from selenium.webdriver.common.by import By
except ImportError:  # the `driver` fixture then skips (or fails under CI) with the reason
    By = None

from tests.support.browser import Page, js, save_logs, save_shot, start_embedded_service, wait
from tests.support.service import Client

pytestmark = pytest.mark.browser

KEY = "browser-test-key-0123456789"


@pytest.fixture(scope="module")
def keyed_service(tmp_path_factory, browser_available) -> Iterator[Client]:
    procs, api = start_embedded_service(tmp_path_factory.mktemp("keyed-service"), RRR_API_KEYS=KEY)
    try:
        yield api
    finally:
        procs.stop()
        save_logs(procs, "keyed-service")


def test_page_asks_for_the_key_then_works_with_it(driver, keyed_service, face_crops, artifacts):
    page = Page(driver, keyed_service)
    driver.set_window_size(1100, 1400)
    page.open()
    js(driver, "localStorage.removeItem('rrr.apiKey')")
    page.open()

    # No key: the history says what to do and the settings are opened; an upload is refused
    # in words.
    wait(driver, lambda d: d.find_element(By.ID, "history-empty").is_displayed(), 10)
    assert "API key" in page.text("history-empty")
    assert driver.find_element(By.ID, "settings").get_attribute("open") is not None
    page.upload(face_crops["fake"][2])
    wait(driver, lambda d: d.find_element(By.ID, "error").is_displayed(), 30)
    assert "API key" in page.text("error") and "{" not in page.text("error")
    save_shot(driver, artifacts, "api-key-needed")

    # With the key saved, the same upload goes through, and so do the heatmap and the history.
    field = driver.find_element(By.ID, "api-key")
    field.send_keys(KEY)
    driver.find_element(By.CSS_SELECTOR, "#settings-form button[type=submit]").click()
    wait(driver, lambda d: "Saved" in page.text("settings-status"), 5)
    page.upload(face_crops["fake"][2])
    job_id = page.job_id()
    assert page.wait_finished() == "Finished."
    driver.find_element(By.CSS_SELECTOR, "label[for=heatmap-toggle]").click()
    wait(
        driver,
        lambda d: js(
            d,
            "const h = document.querySelector('.stage .heat');"
            "return !h.hidden && h.complete && h.naturalWidth > 0",
        ),
        30,
    )
    listed = f"#history li[data-job='{job_id}']"
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, listed), 10)
    js(driver, "localStorage.removeItem('rrr.apiKey')")
