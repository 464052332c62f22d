"""Browser-test helpers: the embedded service for the page, and a thin page driver."""

from __future__ import annotations

import os
import re
from pathlib import Path

try:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # the `driver` fixture then skips (or fails under CI) with the reason
    By = WebDriverWait = None

from tests.support import REPO
from tests.support.service import Client, Processes, free_port

ARTIFACTS = REPO / "artifacts" / "browser"
CHROMIUM = Path(os.environ.get("RRR_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("RRR_CHROMEDRIVER", "/usr/bin/chromedriver"))
UPLOAD_LIMIT_MB = 8
DOCS_SHOTS = REPO / "docs" / "screenshots"
JOB_URL = re.compile(r"/jobs/([0-9a-f]{32})$")


def start_embedded_service(tmp: Path, **env: str) -> tuple[Processes, Client]:
    """`rrr up` (API + two workers) on a free port with its own var/ directory."""
    # A small upload limit lets the too-large test stay small (the shared videos are under 5 MB).
    procs = Processes(
        {"RRR_VAR_DIR": str(tmp / "var"), "RRR_MAX_UPLOAD_MB": str(UPLOAD_LIMIT_MB), **env}, tmp
    )
    port = free_port()
    procs.start("up", "--port", str(port))
    api = Client(f"http://127.0.0.1:{port}")
    try:
        api.wait_ready(timeout=180)
    except BaseException:
        print(procs.logs())
        procs.stop()
        raise
    return procs, api


def save_logs(procs: Processes, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{name}.log").write_text(procs.logs())


def wait(driver, predicate, timeout: float = 60, message: str = ""):
    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(predicate, message)


def js(driver, script: str, *args):
    return driver.execute_script(script, *args)


def save_shot(driver, artifacts: Path, name: str, element=None, docs: bool = False) -> Path:
    """A PNG under artifacts/browser/. docs=True also writes the README's copy under
    docs/screenshots/, but only when it is missing or RRR_UPDATE_SCREENSHOTS=1, so that a test
    run does not rewrite committed files."""
    path = artifacts / f"{name}.png"
    if element is not None:
        driver.execute_script("arguments[0].scrollIntoView()", element)
        element.screenshot(str(path))  # just that part of the page, however long the page is
    else:
        driver.save_screenshot(str(path))
    target = DOCS_SHOTS / f"{name}.png"
    if docs and (os.environ.get("RRR_UPDATE_SCREENSHOTS") == "1" or not target.exists()):
        from PIL import Image

        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        # A 256-colour palette keeps a page screenshot well under the README's 300 KB budget.
        with Image.open(path) as image:
            image.convert("RGB").quantize(256, dither=Image.Dither.NONE).save(target, optimize=True)
        assert target.stat().st_size < 300_000, f"{target} is {target.stat().st_size} bytes"
    return path


class Page:
    def __init__(self, driver, api) -> None:
        self.driver, self.api = driver, api

    def open(self, path: str = "/") -> None:
        self.driver.get(self.api.base + path)
        wait(self.driver, lambda d: js(d, "return document.readyState") == "complete")

    def upload(self, *paths: Path) -> None:
        # The visually hidden <input type=file> behind the drop zone takes paths directly.
        self.driver.find_element(By.ID, "media").send_keys("\n".join(str(p) for p in paths))

    def job_id(self) -> str:
        wait(self.driver, lambda d: JOB_URL.search(d.current_url), 60, "no job URL after upload")
        return JOB_URL.search(self.driver.current_url).group(1)

    def wait_finished(self, timeout: float = 120) -> str:
        done = ("Finished.", "Canceled.", "The analysis failed.")
        wait(
            self.driver,
            lambda d: self.text("status").startswith(done),
            timeout,
            f"job did not finish; status: {self.text('status')!r}",
        )
        return next(d for d in done if self.text("status").startswith(d))

    def text(self, element_id: str) -> str:
        return js(
            self.driver, "return document.getElementById(arguments[0]).textContent", element_id
        )

    def job(self, job_id: str) -> dict:
        return self.api.get(f"/v1/jobs/{job_id}").json()

    def analysed(self, *paths: Path) -> dict:
        """Open a fresh page, upload ``paths``, wait until the page says it finished; the job."""
        self.open()
        self.upload(*paths)
        job_id = self.job_id()
        assert self.wait_finished() == "Finished."
        return self.job(job_id)
