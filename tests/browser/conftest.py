"""The web page in a real headless Chromium (Debian's chromium + chromium-driver, installed by
scripts/install-browser.sh) against a real embedded service (`rrr up`: API + two workers).

Without the browser the tests skip, or fail when CI=true. Screenshots go to artifacts/browser/."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import (
    ARTIFACTS,
    CHROMEDRIVER,
    CHROMIUM,
    save_logs,
    start_embedded_service,
)
from tests.support.service import Client

# Run as root, offline, quietly: no sandbox (root), no GPU, no network chatter of its own.
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1100,1400",
    "--force-device-scale-factor=1",
    "--lang=en-US",
]


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is missing; run scripts/install-browser.sh"
    return None


@pytest.fixture(scope="session")
def browser_available() -> None:
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def service(tmp_path_factory, browser_available) -> Iterator[Client]:
    """The embedded service, open (no API keys), for the whole test module."""
    procs, api = start_embedded_service(tmp_path_factory.mktemp("browser-service"))
    try:
        yield api
    finally:
        procs.stop()
        save_logs(procs, "service")


@pytest.fixture(scope="module")
def driver(browser_available):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="rrr-chromium-")  # a fresh profile: no state between runs
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    browser.set_page_load_timeout(30)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failed browser test, keep a screenshot and the page's console for the post-mortem."""
    outcome = yield
    report = outcome.get_result()
    browser = item.funcargs.get("driver") if hasattr(item, "funcargs") else None
    if report.when != "call" or not report.failed or browser is None:
        return
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    stem = ARTIFACTS / f"FAILED-{item.name}"
    try:
        browser.save_screenshot(str(stem.with_suffix(".png")))
        console = "\n".join(str(entry) for entry in browser.get_log("browser"))
        stem.with_suffix(".console.txt").write_text(console)
    except Exception as exc:  # a dead browser must not hide the test's own failure
        report.sections.append(("browser artifacts", f"could not save: {exc}"))
