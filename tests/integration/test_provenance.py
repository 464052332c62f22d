"""Provenance with real processes: `rrr api` and `rrr worker` on PostgreSQL and Redis, files
signed in the test with a throwaway chain whose root the workers are configured to trust."""

from __future__ import annotations

import pytest

from tests.support import media
from tests.support import provenance as cc
from tests.support.service import Processes, start_service

pytestmark = pytest.mark.integration


def test_provenance_through_real_workers(
    processes: Processes, redis_url, postgres_url, face_crops, tmp_path
):
    chain = cc.make_chain()
    anchors = tmp_path / "anchors.pem"
    anchors.write_text(chain.root_pem)
    processes.env.update(
        RRR_DATABASE_URL=postgres_url,
        RRR_BROKER_URL=redis_url,
        RRR_C2PA_TRUST_ANCHORS=str(anchors),
        RRR_SEGMENT_SECONDS="1",
    )
    api = start_service(processes)

    ai = cc.manifest("trainedAlgorithmicMedia", agent="RRR Test Generator")
    signed = tmp_path / "generated.jpg"
    signed.write_bytes(cc.sign(face_crops["real"][0].read_bytes(), "image/jpeg", chain, ai))
    plain = face_crops["fake"][0]
    other = cc.make_chain()  # a signer the workers do not trust
    untrusted = tmp_path / "untrusted.jpg"
    untrusted.write_bytes(cc.sign(cc.picture(), "image/jpeg", other, cc.manifest()))
    clip = media.write_video(tmp_path / "clip.mp4", frames=30, fps=10)
    video = tmp_path / "signed.mp4"
    video.write_bytes(cc.sign(clip.read_bytes(), "video/mp4", chain, ai))

    image = api.submit([signed]).json()
    batch = api.submit([signed, plain, untrusted], field="files").json()
    clip_job = api.submit([video], sample_fps="2").json()

    job = api.wait_job(image["id"])
    assert job["status"] == "succeeded", job
    result = job["result"]
    p = result["provenance"]
    assert p["c2pa"]["state"] == "trusted" and p["verified"] is True and p["trusted"] is True
    assert p["declared_ai_generated"] is True and p["declaration_evidence"] == "signed"
    assert result["prediction"] in ("FAKE", "REAL", "UNCERTAIN")  # the model's own verdict
    assert result["timings_ms"]["provenance"] >= 0

    job = api.wait_job(batch["id"])
    assert job["status"] == "succeeded", job
    first, second, third = (item["provenance"] for item in job["result"]["items"])
    assert first["trusted"] is True and first["declared_ai_generated"] is True
    assert second["status"] == "none" and second["declared_ai_generated"] is None
    assert third["verified"] is True and third["trusted"] is False
    assert third["c2pa"]["state"] == "valid"

    job = api.wait_job(clip_job["id"])
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["segments"]["count"] >= 3
    p = result["provenance"]
    assert p["trusted"] is True and p["declared_ai_generated"] is True
    assert "elapsed_ms" not in p and result["timings_ms"]["provenance"] >= 0
