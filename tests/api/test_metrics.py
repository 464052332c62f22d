"""/metrics in the Prometheus text format, fed by the worker code through SQL."""

from __future__ import annotations

import io

from prometheus_client.parser import text_string_to_metric_families

from tests.support import media
from tests.support.jobs import run_job_here


def _scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _run(client, data: bytes, name: str) -> str:
    job = client.post(
        "/v1/jobs", data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data"
    ).get_json()
    run_job_here(job["id"])
    return job["id"]


def test_metrics_count_jobs_failures_latency_and_queue(client, face_crops):
    before = _scrape(client)
    _run(client, face_crops["real"][0].read_bytes(), "face.jpg")
    _run(client, media.image_bytes(fmt="JPEG", size=(300, 200))[:600], "cut.jpg")
    after = _scrape(client)

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert after[("rrr_jobs", (("kind", "image"), ("status", "succeeded")))] >= 1
    assert delta("rrr_job_failures_total", code="image_corrupt") == 1
    assert delta("rrr_stage_seconds_count", stage="image_infer") == 1
    # only the job that succeeded records stage timings
    assert delta("rrr_stage_seconds_bucket", stage="job_image", le="+Inf") == 1
    assert ("rrr_queue_depth", (("queue", "images"),)) in after
    assert ("rrr_queue_depth", (("queue", "videos"),)) in after
