"""The webhook fields of POST /v1/jobs: what is refused, with which 400, and what a job shows."""

from __future__ import annotations

import io

import pytest

from tests.shared.test_webhooks import new_secret
from tests.support import media


def _submit(client, headers=None, **fields):
    data = {"file": (io.BytesIO(media.image_bytes()), "a.png"), **fields}
    return client.post(
        "/v1/jobs", data=data, headers=headers or {}, content_type="multipart/form-data"
    )


@pytest.fixture()
def webhooks_on(override_settings):
    override_settings(RRR_WEBHOOK_SECRET=new_secret(), RRR_WEBHOOK_ALLOWED_HOSTS="127.0.0.1")


@pytest.fixture()
def webhooks_by_default(override_settings):
    override_settings(RRR_WEBHOOK_SECRET=new_secret(), RRR_WEBHOOK_ALLOWED_HOSTS="")


def test_without_a_secret_webhooks_are_refused(client, override_settings):
    override_settings(RRR_WEBHOOK_SECRET="")
    response = _submit(client, webhook="https://hooks.example.com/x")
    assert response.status_code == 400
    assert response.json["error"]["code"] == "webhooks_disabled"
    assert "RRR_WEBHOOK_SECRET" in response.json["error"]["message"]


@pytest.mark.parametrize(
    ("fields", "code", "words"),
    [
        ({"webhook": "http://10.0.0.1/x"}, "invalid_webhook", "https"),
        ({"webhook": "https://169.254.169.254/latest"}, "invalid_webhook", "link-local"),
        ({"webhook": "https://localhost/x"}, "invalid_webhook", "loopback"),
        ({"webhook": "javascript:alert(1)"}, "invalid_webhook", "http:// or https://"),
        ({"webhook": "https://" + "a" * 2050}, "invalid_webhook", "longer than"),
        ({"webhook": "http://127.0.0.1:1/x", "webhook_events": "done"}, "invalid_field", "start"),
        ({"webhook_events": "completed"}, "invalid_field", "needs a webhook"),
        ({"webhook": ""}, "invalid_webhook", "empty"),
        ({"webhook": "http://127.0.0.1:1/x", "webhook_events": ""}, "invalid_field", "got ''"),
        (
            {"webhook": "http://127.0.0.1:1/x", "webhook_events": "start, completed"},
            "invalid_field",
            "comma-separated",
        ),
        ({"callback_url": "http://127.0.0.1:1/x"}, "unknown_field", "webhook"),
    ],
)
def test_bad_webhook_values_are_clear_400s(client, webhooks_by_default, fields, code, words):
    response = _submit(client, **fields)
    assert response.status_code == 400, response.json
    assert response.json["error"]["code"] == code
    assert words in response.json["error"]["message"]


def test_a_job_shows_its_webhook(client, webhooks_on):
    response = _submit(client, webhook="http://127.0.0.1:9/x", webhook_events="progress,start")
    assert response.status_code == 202, response.json
    hook = response.json["webhook"]
    assert hook == {
        "url": "http://127.0.0.1:9/x",
        "events": ["start", "progress"],
        "deliveries": [],
    }
    read = client.get(response.headers["Location"]).json
    assert read["webhook"]["events"] == ["start", "progress"]
    listed = client.get("/v1/jobs").json["jobs"][0]
    assert listed["id"] == read["id"] and "deliveries" not in listed["webhook"]
    default = _submit(client, webhook="http://127.0.0.1:9/x").json["webhook"]
    assert default["events"] == ["completed"]
    assert _submit(client).json["webhook"] is None


def test_the_webhook_is_part_of_the_idempotent_request(client, webhooks_on):
    key = {"Idempotency-Key": "hooked-1"}
    first = _submit(client, key, webhook="http://127.0.0.1:9/a")
    assert first.status_code == 202
    assert _submit(client, key, webhook="http://127.0.0.1:9/a").json["id"] == first.json["id"]
    other = _submit(client, key, webhook="http://127.0.0.1:9/b")
    assert other.status_code == 409 and other.json["error"]["code"] == "idempotency_conflict"
