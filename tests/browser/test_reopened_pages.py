"""Finished jobs opened by URL in a fresh browser, as when a link is shared: the page has no
local copy of any upload, so every picture it shows comes from what the service kept. Every
thumbnail and frame picture loads, the heatmap toggle works, and the console stays clean."""

from __future__ import annotations

import pytest

try:
    from selenium.webdriver.common.by import By
except ImportError:  # the `driver` fixture then skips (or fails under CI) with the reason
    By = None

from tests.support.browser import Page, js, save_shot, wait

pytestmark = pytest.mark.browser

VIDEO = "knqhpwoigk.mp4"

# every <img> matching the selector has finished loading a real picture
ALL_LOADED = """
const imgs = [...document.querySelectorAll(arguments[0])];
return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
"""


@pytest.fixture(scope="module")
def finished(service, face_crops, video_paths) -> dict[str, dict]:
    """An image, a batch and a video job, submitted through the API (not through this browser)
    and finished."""
    clip = next(p for p in video_paths if p.name == VIDEO)
    submitted = {
        "image": service.submit([face_crops["fake"][0]]),
        "batch": service.submit(
            [face_crops["real"][0], face_crops["fake"][1], face_crops["real"][2]], field="files"
        ),
        "video": service.submit([clip], sample_fps="1"),
    }
    jobs = {}
    for kind, response in submitted.items():
        assert response.status_code == 202, response.text
        jobs[kind] = service.wait_job(response.json()["id"])
        assert jobs[kind]["status"] == "succeeded", jobs[kind]
    return jobs


@pytest.fixture()
def page(driver, service) -> Page:
    driver.get_log("browser")  # start each test with an empty console
    return Page(driver, service)


def console_errors(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def frame_title(frame: dict) -> str:
    """How the frame panel names a frame (its number in the video)."""
    number = frame["frame_number"] if frame.get("frame_number") is not None else frame["index"]
    return f"(frame {number})"


def loaded(driver, selector: str, timeout: float = 30) -> None:
    wait(driver, lambda d: js(d, ALL_LOADED, selector), timeout, f"{selector} did not all load")


def test_image_job_by_url_shows_its_picture_and_heatmap(page, finished, artifacts):
    job = finished["image"]
    result = job["result"]
    assert result["thumbnail"] and result["faces"]
    page.open(f"/jobs/{job['id']}")
    assert page.wait_finished() == "Finished."
    driver = page.driver
    loaded(driver, ".stage .base")
    assert js(driver, "return document.querySelector('.stage .base').src").startswith("blob:")
    boxes = driver.find_elements(By.CSS_SELECTOR, ".stage .face-box")
    assert len(boxes) == len(result["faces"])
    assert all(box.size["width"] > 10 for box in boxes)

    toggle = driver.find_element(By.ID, "heatmap-toggle")
    assert not driver.find_element(By.CSS_SELECTOR, ".stage .heat").is_displayed()
    driver.find_element(By.CSS_SELECTOR, "label[for=heatmap-toggle]").click()
    loaded(driver, ".stage .heat", 90)  # on-demand heatmaps may take a moment (202 first)
    heat = driver.find_element(By.CSS_SELECTOR, ".stage .heat")
    assert heat.is_displayed() and toggle.is_selected()
    base = driver.find_element(By.CSS_SELECTOR, ".stage .base")
    # the overlay covers the picture exactly
    assert abs(heat.size["width"] - base.size["width"]) <= 1
    assert abs(heat.size["height"] - base.size["height"]) <= 1
    save_shot(driver, artifacts, "reopened-image-heatmap", driver.find_element(By.ID, "result"))
    driver.find_element(By.CSS_SELECTOR, "label[for=heatmap-toggle]").click()
    assert not heat.is_displayed()
    assert console_errors(driver) == []


def test_batch_job_by_url_shows_every_thumbnail(page, finished, artifacts):
    job = finished["batch"]
    items = job["result"]["items"]
    assert all(item["thumbnail"] for item in items)
    page.open(f"/jobs/{job['id']}")
    assert page.wait_finished() == "Finished."
    driver = page.driver
    loaded(driver, ".grid .card img.thumb")
    assert len(driver.find_elements(By.CSS_SELECTOR, ".grid .card img.thumb")) == len(items)
    assert driver.find_elements(By.CSS_SELECTOR, ".grid .filecard") == []
    save_shot(driver, artifacts, "reopened-batch", driver.find_element(By.ID, "result"))
    assert console_errors(driver) == []


def test_video_job_by_url_shows_its_frames(page, finished, artifacts):
    job = finished["video"]
    result = job["result"]
    assert result["frame_images"] and result["frames_analyzed"] > 0
    frames = page.api.get(f"/v1/jobs/{job['id']}/frames", params={"limit": 1000}).json()["frames"]
    page.open(f"/jobs/{job['id']}")
    assert page.wait_finished() == "Finished."
    driver = page.driver
    # the strip across the video, and the most suspicious frame opened in the panel
    loaded(driver, ".filmstrip img.film")
    assert len(driver.find_elements(By.CSS_SELECTOR, ".filmstrip img.film")) == min(8, len(frames))
    loaded(driver, ".frame-detail img.frame-image")
    scored = [f for f in frames if f["probability_fake"] is not None]
    if scored:
        top = max(scored, key=lambda f: f["probability_fake"])
        title = driver.find_element(By.CSS_SELECTOR, ".frame-detail h4").text
        assert frame_title(top) in title
        # a frame with faces offers its heatmap, drawn by a worker on request (202 first)
        driver.find_element(By.CSS_SELECTOR, ".frame-detail label.toggle").click()
        loaded(driver, ".frame-detail img.frame-heat", 90)
        assert not driver.find_element(
            By.CSS_SELECTOR, ".frame-detail img.frame-image"
        ).is_displayed()
        save_shot(driver, artifacts, "reopened-video-heatmap", driver.find_element(By.ID, "result"))
        driver.find_element(By.CSS_SELECTOR, ".frame-detail label.toggle").click()
        assert driver.find_element(By.CSS_SELECTOR, ".frame-detail img.frame-image").is_displayed()

    # another point on the timeline shows that frame's picture
    points = driver.find_elements(By.CSS_SELECTOR, "svg.timeline .point")
    assert len(points) == len(frames)
    points[0].click()
    wait(
        driver,
        lambda d: (
            frame_title(frames[0]) in d.find_element(By.CSS_SELECTOR, ".frame-detail h4").text
        ),
        10,
    )
    loaded(driver, ".frame-detail img.frame-image")
    # and a picture in the strip does the same
    driver.find_elements(By.CSS_SELECTOR, ".filmstrip button")[-1].click()
    loaded(driver, ".frame-detail img.frame-image")
    save_shot(driver, artifacts, "reopened-video", driver.find_element(By.ID, "result"))
    assert console_errors(driver) == []


def test_history_pages_filters_and_says_how_videos_were_sampled(page, finished, video_paths):
    """After the reopened pages: it adds jobs of its own."""
    import io

    import requests
    from PIL import Image
    from selenium.webdriver.support.ui import Select

    clip = next(p for p in video_paths if p.name == VIDEO)
    fast = page.api.submit([clip], sample_fps="0.5", sampling="keyframes").json()
    sky = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 140, 200)).save(sky, "PNG")
    for n in range(20):  # more than one page of history (20 rows)
        files = {"file": (f"sky{n}.png", sky.getvalue(), "image/png")}
        response = requests.post(f"{page.api.base}/v1/jobs", files=files, timeout=30)
        assert response.status_code == 202, response.text
    fast = page.api.wait_job(fast["id"])
    listed = page.api.get("/v1/jobs", params={"limit": 100}).json()["jobs"]
    assert len(listed) > 20

    driver = page.driver
    page.open("/")
    rows = "#history > li"
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, rows)) == 20, 20)
    more = driver.find_element(By.ID, "history-more")
    assert more.is_displayed()
    more.click()
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, rows)) == len(listed), 20)
    shown = [li.get_attribute("data-job") for li in driver.find_elements(By.CSS_SELECTOR, rows)]
    assert shown == [job["id"] for job in listed]  # newest first, no gap, no repeat
    assert not more.is_displayed()

    Select(driver.find_element(By.ID, "filter-kind")).select_by_value("video")
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, rows)) == 2, 20)
    sampling = {
        li.get_attribute("data-job"): li.find_element(By.CLASS_NAME, "sampling").text
        for li in driver.find_elements(By.CSS_SELECTOR, rows)
    }
    assert sampling == {
        fast["id"]: "keyframes, 0.5 per second",
        finished["video"]["id"]: "exact frames, 1 per second",
    }
    Select(driver.find_element(By.ID, "filter-kind")).select_by_value("batch")
    Select(driver.find_element(By.ID, "filter-status")).select_by_value("failed")
    wait(driver, lambda d: page.text("history-empty") == "No jobs match these filters.", 20)
    assert driver.find_elements(By.CSS_SELECTOR, rows) == []
    Select(driver.find_element(By.ID, "filter-status")).select_by_value("succeeded")
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, rows)) == 1, 20)
    assert (
        driver.find_element(By.CSS_SELECTOR, rows).get_attribute("data-job")
        == (finished["batch"]["id"])
    )

    # a reopened video job shows the settings it was analysed with
    page.open(f"/jobs/{fast['id']}")
    page.wait_finished()
    assert js(driver, "return document.getElementById('sampling').value") == "keyframes"
    assert float(js(driver, "return document.getElementById('sample-fps').value")) == 0.5
    page.open(f"/jobs/{finished['video']['id']}")
    page.wait_finished()
    assert js(driver, "return document.getElementById('sampling').value") == "exact"
    assert float(js(driver, "return document.getElementById('sample-fps').value")) == 1.0
    assert console_errors(driver) == []


def test_a_running_video_shows_its_latest_frame(page, video_paths):
    clip = next(p for p in video_paths if p.name == VIDEO)
    page.open("/")
    driver = page.driver
    driver.find_element(By.ID, "sample-fps").clear()
    driver.find_element(By.ID, "sample-fps").send_keys("10")  # 100 frames: long enough to watch
    page.upload(clip)
    job_id = page.job_id()
    loaded(driver, "#live-frame img", 90)
    assert driver.find_element(By.ID, "live-frame").is_displayed()
    assert "Latest frame analysed" in page.text("live-frame")
    assert page.job(job_id)["status"] == "running"
    driver.find_element(By.ID, "cancel").click()
    assert page.wait_finished(timeout=60) == "Canceled."
    assert not driver.find_element(By.ID, "live-frame").is_displayed()
    assert console_errors(driver) == []
