"""API keys, per-key visibility, limits (429 + Retry-After), headers and CORS; no pickle."""

from __future__ import annotations

import io
import pickle

import pytest
import torch

from detection.network import DeepFakeImageDetector, load_checkpoint
from shared.queue import celery_app
from tests.support import media

KEY_A, KEY_B = "key-alpha-0123456789", "key-bravo-9876543210"


def _submit(client, headers=None):
    return client.post(
        "/v1/jobs",
        headers=headers or {},
        data={"file": (io.BytesIO(media.image_bytes()), "x.png")},
        content_type="multipart/form-data",
    )


@pytest.fixture()
def keyed(override_settings):
    override_settings(RRR_API_KEYS=f"{KEY_A},{KEY_B}")


def test_open_when_no_keys_are_configured(client):
    assert _submit(client).status_code == 202


def test_keys_required_on_api_routes_only(client, keyed):
    for response in (_submit(client), client.get("/v1/jobs")):
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthorized"
    prototype = client.post("/predict")  # the prototype's error shape
    assert prototype.status_code == 401 and prototype.get_json()["code"] == "unauthorized"
    wrong = _submit(client, {"X-API-Key": "guess"})
    assert wrong.status_code == 401 and "not valid" in wrong.get_json()["error"]["message"]
    assert client.get("/healthz").status_code == 200
    assert client.get("/").status_code == 200
    assert _submit(client, {"X-API-Key": KEY_A}).status_code == 202
    assert _submit(client, {"Authorization": f"Bearer {KEY_B}"}).status_code == 202


def test_a_job_is_visible_only_to_its_key(client, keyed):
    job = _submit(client, {"X-API-Key": KEY_A}).get_json()
    a, b = {"X-API-Key": KEY_A}, {"X-API-Key": KEY_B}
    assert client.get(f"/v1/jobs/{job['id']}", headers=a).status_code == 200
    assert client.get(f"/v1/jobs/{job['id']}", headers=b).status_code == 404
    assert client.get(f"/v1/jobs/{job['id']}/frames", headers=b).status_code == 404
    assert client.delete(f"/v1/jobs/{job['id']}", headers=b).status_code == 404
    listed_b = client.get("/v1/jobs?limit=100", headers=b).get_json()["jobs"]
    assert job["id"] not in {j["id"] for j in listed_b}
    listed_a = client.get("/v1/jobs?limit=100", headers=a).get_json()["jobs"]
    assert job["id"] in {j["id"] for j in listed_a}


def test_rate_limit_answers_429_with_retry_after(client, override_settings):
    override_settings(RRR_API_KEYS="rate-key", RRR_RATE_LIMIT_PER_MINUTE="2")
    headers = {"X-API-Key": "rate-key"}
    assert [_submit(client, headers).status_code for _ in range(2)] == [202, 202]
    limited = _submit(client, headers)
    assert limited.status_code == 429
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 61


def test_queue_quota_per_key_and_global_queue_cap(client, override_settings):
    override_settings(RRR_API_KEYS="quota-key", RRR_MAX_ACTIVE_JOBS_PER_KEY="1")
    headers = {"X-API-Key": "quota-key"}
    assert _submit(client, headers).status_code == 202
    second = _submit(client, headers)
    assert second.status_code == 429 and second.get_json()["error"]["code"] == "quota_exceeded"
    assert "Retry-After" in second.headers
    override_settings(RRR_API_KEYS="", RRR_MAX_QUEUED_JOBS="0")
    full = _submit(client)
    assert full.status_code == 429 and full.get_json()["error"]["code"] == "queue_full"


def test_security_headers_on_page_and_api(client):
    for response in (client.get("/"), client.get("/v1/jobs")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def test_cors_off_by_default_and_configurable(client, override_settings):
    origin = {"Origin": "https://newsroom.example"}
    assert "Access-Control-Allow-Origin" not in client.get("/v1/jobs", headers=origin).headers
    override_settings(RRR_CORS_ORIGINS="https://newsroom.example")
    allowed = client.options("/v1/jobs", headers=origin)
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://newsroom.example"
    other = client.get("/v1/jobs", headers={"Origin": "https://elsewhere.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_checkpoints_are_loaded_without_unpickling_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": DeepFakeImageDetector().state_dict(), "x": _Payload()}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(path)


def test_broker_accepts_json_only():
    assert celery_app.conf.accept_content == ["json"]
    assert celery_app.conf.task_serializer == "json"
