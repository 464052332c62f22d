"""The web page as a user drives it: pick files, watch progress, read results, reopen history.

One embedded service and one browser serve the whole module (start-up is the slow part)."""

from __future__ import annotations

import re

import pytest

try:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # the `driver` fixture then skips (or fails under CI) with the reason
    By = Keys = Select = WebDriverWait = None

from tests.support.browser import JOB_URL, UPLOAD_LIMIT_MB, Page, js, save_shot, wait

pytestmark = pytest.mark.browser

IMAGE = "mglevosjfn.jpg"  # a well-lit DFDC fake crop (it also makes the README screenshot)
VIDEO = "knqhpwoigk.mp4"  # a real DFDC sample, ~10 s: 10 frames at 1 fps

# what the page calls each verdict (api/static/render.js)
VERDICT_WORDS = {"FAKE": "Likely manipulated", "REAL": "Looks real", "UNCERTAIN": "Unsure"}


@pytest.fixture(scope="module")
def page(driver, service) -> Page:
    driver.set_window_size(1100, 1400)
    return Page(driver, service)


@pytest.fixture(scope="module")
def created() -> dict[str, str]:
    """Job ids the tests made, by kind, for the history test."""
    return {}


def percents(text: str, before: str = "") -> list[float]:
    """The percentages shown in text (optionally only those followed by `before`)."""
    return [float(m) for m in re.findall(r"(\d+(?:\.\d+)?)%" + re.escape(before), text)]


def shows(text: str, p: float, before: str = "") -> bool:
    """text shows probability p as a percentage, however the page rounded it."""
    return any(abs(v - 100 * p) <= 0.5 for v in percents(text, before))


def test_image_result_boxes_heatmap_and_reopen(page, face_crops, artifacts, created):
    image = next(p for p in face_crops["fake"] if p.name == IMAGE)
    job = page.analysed(image)
    job_id, result = job["id"], job["result"]
    created["image"] = job_id
    assert job["status"] == "succeeded" and result["faces"], "the shared fake crop has a face"

    verdict, explanation = page.text("verdict"), page.text("explanation")
    assert verdict.startswith(VERDICT_WORDS[result["prediction"]] + ":")
    assert shows(verdict, result["probability_fake"], " manipulation score")
    assert shows(explanation, result["threshold"], " and above")
    assert "a low score is not proof that a face is real" in explanation

    driver = page.driver
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".stage .face-box")) > 0)
    boxes = driver.find_elements(By.CSS_SELECTOR, ".stage .face-box")
    assert len(boxes) == len(result["faces"])
    for box, face in zip(boxes, result["faces"], strict=True):
        assert face["prediction"] in box.get_attribute("class").split()
        assert box.size["width"] > 10 and box.size["height"] > 10  # scaled, not collapsed
        assert shows(box.text, face["probability_fake"])
    # the image shown is the local file, not something fetched
    assert js(driver, "return document.querySelector('.stage .base').src").startswith("blob:")

    assert not driver.find_element(By.CSS_SELECTOR, ".stage .heat").is_displayed()
    save_shot(driver, artifacts, "image-result", driver.find_element(By.ID, "result"), docs=True)

    driver.find_element(By.CSS_SELECTOR, "label[for=heatmap-toggle]").click()
    wait(
        driver,
        lambda d: js(
            d,
            "const h = document.querySelector('.stage .heat');"
            "return !h.hidden && h.complete && h.naturalWidth > 0",
        ),
        30,
        "heatmap image did not load",
    )
    heat_size = js(
        driver,
        "const h = document.querySelector('.stage .heat');return [h.naturalWidth, h.naturalHeight]",
    )
    if "width" in result:
        assert heat_size == [result["width"], result["height"]]
    save_shot(driver, artifacts, "image-heatmap", driver.find_element(By.ID, "result"))

    # Reopened by URL the upload is not served back: the kept copy is shown, with the same boxes.
    page.open(f"/jobs/{job_id}")
    page.wait_finished()
    wait(
        driver,
        lambda d: js(
            d,
            "const b = document.querySelector('.stage .base');"
            "return !!b && b.complete && b.naturalWidth > 0",
        ),
        30,
    )
    assert len(driver.find_elements(By.CSS_SELECTOR, ".stage .face-box")) == len(result["faces"])
    assert page.text("verdict").startswith(VERDICT_WORDS[result["prediction"]] + ":")
    save_shot(driver, artifacts, "image-reopened")


def test_video_timeline(page, video_paths, artifacts, created):
    video = next(p for p in video_paths if p.name == VIDEO)
    page.open()
    page.upload(video)
    job_id = page.job_id()
    assert page.wait_finished(timeout=150) == "Finished."
    job = page.job(job_id)
    result = job["result"]
    created["video"] = job_id
    assert job["status"] == "succeeded"

    driver = page.driver
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "svg.timeline .point"), 30)
    points = driver.find_elements(By.CSS_SELECTOR, "svg.timeline .point")
    assert len(points) == result["frames_analyzed"] > 0
    assert len(driver.find_elements(By.CSS_SELECTOR, "svg.timeline .threshold")) == 1
    segments = driver.find_elements(By.CSS_SELECTOR, "svg.timeline .segment")
    assert len(segments) == len(result["suspicious_segments"])
    if result["prediction"] == "NO_FACE":
        assert page.text("verdict") == "No face found"
    else:
        assert page.text("verdict").startswith(VERDICT_WORDS[result["prediction"]] + ":")
        assert shows(page.text("verdict"), result["probability_fake"], " manipulation score")
    body = page.text("result-body")
    rule = "average, over sampled frames that contain a face, of each frame's most suspicious face"
    assert rule in body
    assert f"{result['frames_analyzed']} frames analysed" in body

    # Clicking a point with a face shows that frame's faces as boxes and as text.
    frames = page.api.get(f"/v1/jobs/{job_id}/frames", params={"limit": 1000}).json()["frames"]
    index = next(i for i, f in enumerate(frames) if f["faces"])
    points[index].click()
    detail = driver.find_element(By.CSS_SELECTOR, ".frame-detail")
    wait(driver, lambda d: "Face 1" in detail.text, 10)
    assert len(detail.find_elements(By.CSS_SELECTOR, ".faces li")) == len(frames[index]["faces"])
    wait(
        driver,
        lambda d: js(
            d,
            "const i = document.querySelector('.frame-detail img.frame-image');"
            "return !!i && i.complete && i.naturalWidth > 0",
        ),
        30,
        "the frame's picture did not load",
    )
    assert shows(detail.text, frames[index]["faces"][0]["probability_fake"], " manipulation score")
    save_shot(driver, artifacts, "video-timeline", driver.find_element(By.ID, "result"), docs=True)


def test_batch_counts_and_sorting(page, face_crops, artifacts, created):
    job = page.analysed(face_crops["real"][0], face_crops["fake"][1])
    created["batch"] = job["id"]
    summary = job["result"]["summary"]
    assert summary["total"] == 2

    driver = page.driver
    shown = {
        el.get_attribute("data-count"): int(el.find_element(By.CLASS_NAME, "number").text)
        for el in driver.find_elements(By.CSS_SELECTOR, ".counts .count")
    }
    assert shown == {k: summary[k] for k in ("fake", "real", "uncertain", "no_face", "failed")}
    cards = driver.find_elements(By.CSS_SELECTOR, ".grid .card")
    assert len(cards) == 2
    assert len(driver.find_elements(By.CSS_SELECTOR, ".grid .card img.thumb")) == 2  # local files

    Select(driver.find_element(By.ID, "batch-sort")).select_by_value("desc")
    cards = driver.find_elements(By.CSS_SELECTOR, ".grid .card")
    order = [int(c.get_attribute("data-index")) for c in cards]
    scored = sorted(
        (i for i in job["result"]["items"] if i.get("probability_fake") is not None),
        key=lambda i: -i["probability_fake"],
    )
    assert order[: len(scored)] == [i["index"] for i in scored]
    save_shot(driver, artifacts, "batch-result", driver.find_element(By.ID, "result"))


def test_unsupported_file_gets_a_human_message(page, tmp_path, artifacts):
    text_file = tmp_path / "notes.txt"
    text_file.write_text("this is not an image\n" * 20)
    page.open()
    page.upload(text_file)
    wait(page.driver, lambda d: d.find_element(By.ID, "error").is_displayed(), 30)
    message = page.text("error")
    assert "file type is not supported" in message
    assert "{" not in message and "unsupported_media_type" not in message
    assert JOB_URL.search(page.driver.current_url) is None
    save_shot(page.driver, artifacts, "unsupported-file")


def test_too_large_upload_gets_a_human_message(page, tmp_path, artifacts):
    big = tmp_path / "big.jpg"
    with open(big, "wb") as fh:
        fh.write(b"\xff\xd8\xff\xe0" + bytes((UPLOAD_LIMIT_MB + 1) * 1024 * 1024))
    page.open()
    page.upload(big)
    wait(page.driver, lambda d: d.find_element(By.ID, "error").is_displayed(), 60)
    message = page.text("error")
    # The service answers 413 from Content-Length; if the browser sees the connection close
    # first, the page still says in words what probably happened.
    assert "too large" in message or "larger than the service accepts" in message, message
    assert "{" not in message and "upload_too_large" not in message
    save_shot(page.driver, artifacts, "too-large")


DROP_FILE = """
    const [name, type, b64] = arguments;
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const data = new DataTransfer();
    data.items.add(new File([bytes], name, { type }));
    const zone = document.getElementById("dropzone");
    for (const kind of ["dragenter", "dragover", "drop"]) {
        const init = { dataTransfer: data, bubbles: true, cancelable: true };
        zone.dispatchEvent(new DragEvent(kind, init));
    }
"""


def test_dropped_image_without_a_face_says_so(page, tmp_path):
    import base64
    import io

    from PIL import Image

    blank = io.BytesIO()
    Image.new("RGB", (320, 240), (90, 140, 200)).save(blank, "PNG")  # sky: nothing to find
    page.open()
    js(page.driver, DROP_FILE, "sky.png", "image/png", base64.b64encode(blank.getvalue()).decode())
    job_id = page.job_id()
    assert page.wait_finished() == "Finished."
    assert page.job(job_id)["result"]["prediction"] == "NO_FACE"
    assert page.text("verdict") == "No face found"
    assert page.driver.find_elements(By.CSS_SELECTOR, ".face-box, #heatmap-toggle") == []


def test_faces_too_small_to_judge_are_said_so(page, face_crops, tmp_path, artifacts):
    """A face under the service's minimum size (RRR_MIN_FACE_PX, 40 by default) is named as too
    small in its sentence, and a picture holding only such faces reads as unsure for that reason."""
    from PIL import Image

    face = Image.open(face_crops["real"][0]).convert("RGB").resize((36, 36))
    picture = Image.new("RGB", (400, 300), (90, 90, 90))
    picture.paste(face, (100, 100))
    path = tmp_path / "small-face.png"
    picture.save(path)

    result = page.analysed(path)["result"]
    assert [f.get("too_small") for f in result["faces"]] == [True], result
    assert result["prediction"] == "UNCERTAIN" and result["too_small"] is True
    verdict = page.text("verdict")
    assert verdict.startswith(VERDICT_WORDS["UNCERTAIN"] + ":")
    assert verdict.endswith(", the faces are too small to judge")
    [item] = page.driver.find_elements(By.CSS_SELECTOR, "#result .faces li")
    assert item.text.endswith("manipulation score, too small to judge")
    save_shot(page.driver, artifacts, "image-small-face", page.driver.find_element(By.ID, "result"))


def test_a_picture_of_several_faces_says_whose_score_it_shows(page, face_crops, tmp_path):
    from PIL import Image

    picture = Image.new("RGB", (900, 400), (90, 90, 90))
    for i, path in enumerate(face_crops["real"][:3]):
        picture.paste(Image.open(path).convert("RGB").resize((200, 200)), (50 + 280 * i, 100))
    path = tmp_path / "three-faces.png"
    picture.save(path)

    faces = page.analysed(path)["result"]["faces"]
    assert len(faces) == 3, faces
    assert len(page.driver.find_elements(By.CSS_SELECTOR, "#result .faces li")) == 3
    assert "the most suspicious of its 3 faces" in page.text("explanation")

    page.analysed(face_crops["real"][0])  # one face: nothing to say about the others
    assert "most suspicious of its" not in page.text("explanation")


def test_failed_job_shows_its_message(page, tmp_path, artifacts):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 8)  # no image
    page.open()
    page.upload(broken)
    job_id = page.job_id()
    assert page.wait_finished() == "The analysis failed."
    job = page.job(job_id)
    assert job["status"] == "failed"
    message = page.text("error")
    assert job["error"]["message"][1:].rstrip(".") in message  # as a sentence, capitalised
    assert "{" not in message and job["error"]["code"] not in message
    assert page.driver.find_element(By.ID, "result").is_displayed() is False
    save_shot(page.driver, artifacts, "failed-job")


def test_history_lists_and_reopens_jobs(page, created, artifacts):
    assert created, "runs after the tests that create jobs"
    page.open()
    driver = page.driver
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#history li")) >= len(created), 20)
    items = driver.find_elements(By.CSS_SELECTOR, "#history li")
    listed = [li.get_attribute("data-job") for li in items]
    assert set(created.values()) <= set(listed)

    link = driver.find_element(By.CSS_SELECTOR, f"#history a[data-job='{created['batch']}']")
    link.click()  # opens in place (no reload) and the URL can be shared
    wait(driver, lambda d: d.current_url.endswith(f"/jobs/{created['batch']}"), 10)
    page.wait_finished()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".grid .card"), 10)
    save_shot(driver, artifacts, "history")


def test_phone_width_has_no_horizontal_scroll(page, created, artifacts):
    driver = page.driver
    driver.set_window_size(375, 900)
    try:
        for kind in ("image", "video"):
            if kind not in created:
                continue
            page.open(f"/jobs/{created[kind]}")
            page.wait_finished()
            shown = ".stage .face-box, svg.timeline"
            wait(driver, lambda d, shown=shown: d.find_elements(By.CSS_SELECTOR, shown), 20)
            width = js(driver, "return document.documentElement.clientWidth")
            assert js(driver, "return document.documentElement.scrollWidth") <= width
            js(driver, "document.getElementById('result').scrollIntoView()")
            save_shot(driver, artifacts, f"phone-{kind}")
    finally:
        driver.set_window_size(1100, 1400)


RECORD_FETCH_HEADERS = """
    const done = arguments[arguments.length - 1];
    const original = window.fetch;
    const seen = [];
    window.fetch = (url, init = {}) => {
        seen.push((init.headers || {})["X-API-Key"] || null);
        return original(url, init);
    };
    document.querySelector("#settings-form button[type=submit]").click();  // refreshes history
    setTimeout(() => { window.fetch = original; done(seen); }, 1000);
"""


def test_api_key_setting_is_kept_and_sent(page):
    driver = page.driver
    page.open()
    driver.find_element(By.CSS_SELECTOR, "#settings summary").click()
    field = driver.find_element(By.ID, "api-key")
    field.clear()
    field.send_keys("test-key-123")
    seen = driver.execute_async_script(RECORD_FETCH_HEADERS)
    assert seen and set(seen) == {"test-key-123"}
    assert "Saved" in page.text("settings-status")

    page.open()  # kept across visits
    driver.find_element(By.CSS_SELECTOR, "#settings summary").click()
    field = driver.find_element(By.ID, "api-key")
    assert field.get_attribute("value") == "test-key-123"
    field.clear()  # cleared: no header at all
    seen = driver.execute_async_script(RECORD_FETCH_HEADERS)
    assert seen and set(seen) == {None}
    assert js(driver, "return localStorage.getItem('rrr.apiKey')") is None


def test_cancel_a_running_video(page, video_paths):
    video = next(p for p in video_paths if p.name == VIDEO)
    page.open()
    page.driver.find_element(By.ID, "sample-fps").clear()
    page.driver.find_element(By.ID, "sample-fps").send_keys("10")  # long enough to catch running
    page.upload(video)
    job_id = page.job_id()
    cancel = page.driver.find_element(By.ID, "cancel")
    wait(page.driver, lambda d: cancel.is_displayed(), 10)
    cancel.click()
    assert page.wait_finished(timeout=60) == "Canceled."
    assert page.job(job_id)["status"] == "canceled"
    assert not cancel.is_displayed()


def test_keyboard_reaches_the_drop_zone_with_visible_focus(page):
    driver = page.driver
    page.open()
    for _ in range(8):  # skip link, title link, settings, then the file input
        driver.switch_to.active_element.send_keys(Keys.TAB)
        if js(driver, "return document.activeElement.id") == "media":
            break
    assert js(driver, "return document.activeElement.id") == "media"
    style = js(
        driver,
        "const s = getComputedStyle(document.getElementById('dropzone'));"
        "return [s.outlineStyle, s.outlineWidth]",
    )
    assert style == ["solid", "3px"], "the drop zone shows the focused input"


def test_provenance_panel_for_a_signed_ai_declared_image(page, face_crops, tmp_path, artifacts):
    from tests.support import provenance as cc

    signed = tmp_path / "generated.jpg"
    definition = cc.manifest("trainedAlgorithmicMedia", agent="RRR Test Generator")
    signed.write_bytes(
        cc.sign(face_crops["real"][0].read_bytes(), "image/jpeg", cc.make_chain(), definition)
    )
    provenance = page.analysed(signed)["result"]["provenance"]
    assert provenance["declared_ai_generated"] is True

    panel = page.driver.find_element(By.CSS_SELECTOR, "#result-body .provenance")
    text = panel.text
    assert "Content Credentials: valid" in text
    assert "Signed by RRR Test Signer, issued by RRR Test Signing" in text
    assert "not a signer this service is set to trust" in text
    assert "Declares AI-generated (trainedAlgorithmicMedia): signed metadata." in text
    assert "proves nothing" in text
    # the model's verdict stays where it was, its own words
    assert page.text("verdict").split(":")[0] in VERDICT_WORDS.values()
    save_shot(page.driver, artifacts, "image-provenance", panel)


def test_no_javascript_errors_in_the_console(page):
    """Last in the module: every page above ran without an uncaught script error. (Refused
    uploads are logged as network errors by the browser itself; those are expected.)"""
    entries = page.driver.get_log("browser")
    errors = [e for e in entries if e["level"] == "SEVERE" and e.get("source") == "javascript"]
    assert errors == []


def test_video_fast_sampling_is_chosen_and_said(page, video_paths):
    video = next(p for p in video_paths if p.name == VIDEO)
    page.open()
    Select(page.driver.find_element(By.ID, "sampling")).select_by_value("keyframes")
    page.upload(video)
    job_id = page.job_id()
    assert page.wait_finished(timeout=150) == "Finished."
    result = page.job(job_id)["result"]
    assert result["sampling"] == "keyframes"
    assert "keyframes only" in page.text("result-body")
