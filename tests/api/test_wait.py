"""``Prefer: wait=N`` (RFC 7240) on submit and on reads: answer when the job ends, at most N s.
The job runs in a thread of this process through the workers' own task function."""

from __future__ import annotations

import io
import threading
import time

import pytest

from api.waiting import preferred_wait
from tests.support.jobs import run_job_here


def _upload(client, data: bytes, **headers):
    return client.post(
        "/v1/jobs",
        data={"file": (io.BytesIO(data), "face.jpg")},
        content_type="multipart/form-data",
        headers=headers,
    )


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("wait=5", 5),
        ("respond-async, wait=10", 10),
        ('wait="3"', 3),
        ("WAIT = 7; x=y", 7),
        ("wait=100000", 60),  # at most RRR_MAX_WAIT_S
        ("return=minimal", None),
        ("wait=-1", None),
        ("wait=soon", None),
        ("", None),
        (None, None),
    ],
)
def test_prefer_header(header, seconds):
    assert preferred_wait(header) == seconds


def test_read_waits_until_the_job_ends(client, face_crops):
    job = _upload(client, face_crops["fake"][2].read_bytes()).get_json()
    runner = threading.Timer(0.5, run_job_here, args=(job["id"],))
    runner.start()
    started = time.monotonic()
    response = client.get(f"/v1/jobs/{job['id']}", headers={"Prefer": "wait=30"})
    elapsed = time.monotonic() - started
    runner.join()
    assert response.status_code == 200
    assert response.get_json()["status"] == "succeeded"
    assert response.headers["Preference-Applied"] == "wait=30"
    assert 0.4 < elapsed < 30  # it answered when the job ended, not at the deadline
    assert "Retry-After" not in response.headers


def test_read_answers_at_the_deadline_when_the_job_runs_on(client, face_crops, override_settings):
    override_settings(RRR_MAX_WAIT_S="1")
    job = _upload(client, face_crops["fake"][3].read_bytes()).get_json()
    started = time.monotonic()
    response = client.get(f"/v1/jobs/{job['id']}", headers={"Prefer": "wait=20"})
    assert 0.9 < time.monotonic() - started < 10
    assert response.get_json()["status"] == "queued"
    assert response.headers["Preference-Applied"] == "wait=1"  # what was honoured
    assert response.headers["Retry-After"]
    # without the preference, no wait and no Preference-Applied
    plain = client.get(f"/v1/jobs/{job['id']}")
    assert "Preference-Applied" not in plain.headers


def test_submit_waits_and_answers_201_with_the_result(client, face_crops, monkeypatch):
    import api.uploads

    publish = api.uploads.publish

    def publish_and_run(job, files):  # a worker taking the job as soon as it is published
        publish(job, files)
        threading.Timer(0.2, run_job_here, args=(job.id,)).start()

    monkeypatch.setattr(api.uploads, "publish", publish_and_run)
    response = _upload(client, face_crops["real"][6].read_bytes(), Prefer="wait=30")
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert body["status"] == "succeeded" and body["result"]["prediction"]
    assert response.headers["Preference-Applied"] == "wait=30"
    assert response.headers["Location"] == f"/v1/jobs/{body['id']}"


def test_no_free_waiting_slot_means_no_wait(client, face_crops, override_settings):
    override_settings(RRR_SYNC_MAX_WAITING="0")
    started = time.monotonic()
    response = _upload(client, face_crops["real"][7].read_bytes(), Prefer="wait=30")
    assert response.status_code == 202 and time.monotonic() - started < 10
    assert "Preference-Applied" not in response.headers
