"""Webhooks end to end: real `rrr api` and `rrr worker` processes on PostgreSQL and Redis post a
job's events to a receiver this test runs on 127.0.0.1 (allowed by the test's own setting)."""

from __future__ import annotations

from datetime import datetime

import pytest
from standardwebhooks.webhooks import Webhook

from rrr.client import Client
from tests.shared.test_webhooks import new_secret
from tests.support.receiver import Receiver
from tests.support.service import Processes, start_service

pytestmark = pytest.mark.integration


def test_events_are_signed_retried_and_shown_on_the_job(
    processes: Processes, postgres_url, redis_url, face_crops, video_paths
):
    secret = new_secret()
    processes.env.update(
        RRR_DATABASE_URL=postgres_url,
        RRR_BROKER_URL=redis_url,
        RRR_WEBHOOK_SECRET=secret,
        RRR_WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
        RRR_WEBHOOK_RETRY_BASE_S="1",
        RRR_WEBHOOK_PROGRESS_INTERVAL_S="1",
    )
    api = start_service(processes, workers=1)
    video = next(p for p in video_paths if p.name == "abofeumbvv.mp4")
    # the receiver fails the first delivery it gets: the service must try it again
    with Receiver(statuses=[500]) as receiver, Receiver() as image_receiver:
        submitted = api.submit(
            [video],
            sample_fps="4",
            webhook=receiver.url,
            webhook_events="start,progress,completed",
        )
        assert submitted.status_code == 202, submitted.text
        image = Client(api.base).submit(
            [face_crops["fake"][0]], webhook=image_receiver.url, webhook_events=["completed"]
        )
        assert image["webhook"]["events"] == ["completed"]
        job_id = submitted.json()["id"]
        job = api.wait_job(job_id)
        assert job["status"] == "succeeded", job
        receiver.wait_for(lambda r: any(e["type"] == "job.completed" for e in r.events()))
        receiver.wait_for(lambda r: len(_sent(r, r.received[0][0]["webhook-id"])) == 2)
        image_receiver.wait_for(lambda r: len(r.received) == 1)

    verifier = Webhook(secret)
    events = [verifier.verify(body, headers) for headers, body in receiver.received]
    assert {e["type"] for e in events} >= {"job.start", "job.progress", "job.completed"}
    assert all(e["data"]["id"] == job_id for e in events)
    # the failed first delivery came again, unchanged, under the same webhook-id
    first_headers, first_body = receiver.received[0]
    assert _sent(receiver, first_headers["webhook-id"]) == [first_body, first_body]
    completed = next(e for e in events if e["type"] == "job.completed")
    assert completed["data"]["status"] == "succeeded"
    assert completed["data"]["result"]["prediction"] == job["result"]["prediction"]
    # progress events: rising, at most one per RRR_WEBHOOK_PROGRESS_INTERVAL_S
    progress = sorted(
        (e for e in events if e["type"] == "job.progress"), key=lambda e: e["timestamp"]
    )
    stamps = [datetime.fromisoformat(e["timestamp"]) for e in progress]
    assert all((b - a).total_seconds() >= 0.99 for a, b in zip(stamps, stamps[1:], strict=False))
    done = [e["data"]["progress"]["done"] for e in progress]
    assert done == sorted(done)

    shown = api.get(f"/v1/jobs/{job_id}").json()["webhook"]
    assert shown["url"] == receiver.url
    assert shown["events"] == ["start", "progress", "completed"]
    first = [d for d in shown["deliveries"] if d["id"] == first_headers["webhook-id"]]
    assert [(d["attempt"], d["status_code"]) for d in first] == [(1, 500), (2, 204)]
    assert first[-1]["status"] == "delivered"

    [(headers, body)] = image_receiver.received
    event = verifier.verify(body, headers)
    assert event["type"] == "job.completed" and event["data"]["id"] == image["id"]


def _sent(receiver: Receiver, message_id: str) -> list[bytes]:
    """The bodies the receiver got under one webhook-id."""
    return [body for headers, body in receiver.received if headers["webhook-id"] == message_id]
