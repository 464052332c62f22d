"""The HTTP contract of /v1 (no worker needed: jobs stay queued)."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import pytest

from shared import jobs
from shared.config import settings
from shared.db import session_scope
from tests.support import media
from tests.support.jobs import run_job_here


def _upload(client, data: bytes, name: str = "face.jpg", field: str = "file", **form):
    return client.post(
        "/v1/jobs",
        data={field: (io.BytesIO(data), name), **form},
        content_type="multipart/form-data",
    )


def _error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    body = response.get_json()
    assert set(body["error"]) >= {"code", "message"} and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    return body


def _stored_job_dirs() -> set[str]:
    root = settings.storage_dir
    return {p.name for p in root.iterdir()} if root.exists() else set()


def test_submit_image_answers_202_with_location(client, face_crops):
    response = _upload(client, face_crops["real"][0].read_bytes())
    assert response.status_code == 202
    job = response.get_json()
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["kind"] == "image" and job["status"] == "queued"
    assert set(job) >= {
        "id",
        "kind",
        "status",
        "progress",
        "created_at",
        "started_at",
        "finished_at",
        "error",
        "result",
    }
    assert job["created_at"].endswith("+00:00")
    again = client.get(job["links"]["self"]).get_json()
    assert again["id"] == job["id"] and again["status"] == "queued"


def test_submit_batch_and_video(client, face_crops, video_paths):
    files = [(io.BytesIO(p.read_bytes()), p.name) for p in face_crops["fake"][:3]]
    batch = client.post("/v1/jobs", data={"files": files}, content_type="multipart/form-data")
    assert batch.status_code == 202
    assert batch.get_json()["kind"] == "batch"
    assert batch.get_json()["progress"]["total"] == 3
    video = _upload(client, video_paths[0].read_bytes(), name="clip.mp4", sample_fps="2")
    assert video.status_code == 202
    body = video.get_json()
    assert body["kind"] == "video" and body["params"]["sample_fps"] == 2.0
    assert body["links"]["frames"] == f"/v1/jobs/{body['id']}/frames"


def test_video_sampling_mode_is_validated_and_kept(client, video_paths):
    data = video_paths[0].read_bytes()
    default = _upload(client, data, name="clip.mp4").get_json()
    assert default["params"]["sampling"] == "exact"
    fast = _upload(client, data, name="clip.mp4", sampling="keyframes")
    assert fast.status_code == 202 and fast.get_json()["params"]["sampling"] == "keyframes"
    body = _error(_upload(client, data, name="clip.mp4", sampling="bogus"), 400, "invalid_field")
    assert "exact" in body["error"]["message"] and "keyframes" in body["error"]["message"]


def test_media_type_comes_from_content_not_name(client, face_crops):
    response = _upload(client, face_crops["real"][0].read_bytes(), name="looks_like.mp4")
    assert response.get_json()["kind"] == "image"
    _error(_upload(client, b"<html>hello</html>", name="photo.jpg"), 415, "unsupported_media_type")


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"data": b""}, 400, "empty_file"),
        ({"data": b"just some text\n" * 10, "name": "notes.jpg"}, 415, "unsupported_media_type"),
        ({"data": media.image_bytes(), "sample_fps": "fast"}, 400, "invalid_field"),
        ({"data": media.image_bytes(), "sample_fps": "0"}, 400, "invalid_field"),
        ({"data": media.image_bytes(), "threshold": "1.5"}, 400, "invalid_field"),
        ({"data": media.image_bytes(), "max_frames": "-3"}, 400, "invalid_field"),
        ({"data": media.image_bytes(), "sampling": "fastest"}, 400, "invalid_field"),
        ({"data": media.image_bytes(), "sampling": "KEYFRAMES"}, 400, "invalid_field"),
    ],
)
def test_bad_uploads_get_json_errors_and_store_nothing(client, kwargs, status, code):
    before = _stored_job_dirs()
    _error(_upload(client, **kwargs), status, code)
    assert _stored_job_dirs() == before


def test_missing_and_duplicated_fields(client):
    _error(client.post("/v1/jobs", data={"other": "x"}), 400, "missing_field")
    _error(client.post("/v1/jobs"), 400, "missing_field")
    two = [(io.BytesIO(media.image_bytes()), "a.png"), (io.BytesIO(media.image_bytes()), "b.png")]
    _error(client.post("/v1/jobs", data={"file": two}, content_type="multipart/form-data"), 400)
    both = {
        "file": (io.BytesIO(media.image_bytes()), "a.png"),
        "files": (io.BytesIO(media.image_bytes()), "b.png"),
    }
    _error(client.post("/v1/jobs", data=both, content_type="multipart/form-data"), 400)


def test_too_large_is_413_before_storing(app, face_crops):
    app.config["MAX_CONTENT_LENGTH"] = 1000
    before = _stored_job_dirs()
    response = _upload(app.test_client(), face_crops["real"][0].read_bytes())
    _error(response, 413, "upload_too_large")
    assert _stored_job_dirs() == before


def test_batch_with_some_bad_files_is_accepted(client, face_crops):
    files = [
        (io.BytesIO(face_crops["real"][0].read_bytes()), "good.jpg"),
        (io.BytesIO(b"not an image at all"), "bad.jpg"),
    ]
    response = client.post("/v1/jobs", data={"files": files}, content_type="multipart/form-data")
    assert response.status_code == 202
    inputs = response.get_json()["inputs"]
    assert inputs[1]["error"]["code"] == "unsupported_media_type"
    only_bad = [(io.BytesIO(b"nope"), "bad.jpg")]
    response = client.post("/v1/jobs", data={"files": only_bad}, content_type="multipart/form-data")
    _error(response, 415, "unsupported_media_type")


def test_file_names_are_display_only(client, face_crops):
    response = _upload(client, face_crops["real"][0].read_bytes(), name="../../etc/passwd\x00.jpg")
    job = response.get_json()
    assert job["inputs"][0]["filename"] == "passwd.jpg"
    stored = list((settings.storage_dir / job["id"]).iterdir())
    assert [p.name for p in stored] == ["0.jpg"]
    unicode_name = "фото лица 😀.jpg"
    job = _upload(client, face_crops["real"][0].read_bytes(), name=unicode_name).get_json()
    assert job["inputs"][0]["filename"] == unicode_name


def test_unknown_job_wrong_method_unknown_route(client):
    _error(client.get("/v1/jobs/0123456789abcdef0123456789abcdef"), 404, "job_not_found")
    _error(client.put("/v1/jobs"), 405)
    _error(client.get("/v2/nothing"), 404)


def test_pagination_walks_every_job_once(client, face_crops):
    created = {
        _upload(client, face_crops["fake"][i % 8].read_bytes()).get_json()["id"] for i in range(5)
    }
    seen: list[str] = []
    cursor = None
    while True:
        query = "/v1/jobs?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(query).get_json()
        assert len(page["jobs"]) <= 2
        seen += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert created <= set(seen)
    stamps = [client.get(f"/v1/jobs/{i}").get_json()["created_at"] for i in seen]
    assert stamps == sorted(stamps, reverse=True)


def test_list_filters_and_bad_parameters(client, face_crops):
    _upload(client, face_crops["real"][0].read_bytes())
    images = client.get("/v1/jobs?kind=image&status=queued&limit=100").get_json()["jobs"]
    assert images and all(j["kind"] == "image" and j["status"] == "queued" for j in images)
    _error(client.get("/v1/jobs?status=done"), 400, "invalid_field")
    _error(client.get("/v1/jobs?status="), 400, "invalid_field")
    _error(client.get("/v1/jobs?kind="), 400, "invalid_field")
    _error(client.get("/v1/jobs?limit=0"), 400, "invalid_field")
    _error(client.get("/v1/jobs?cursor=%%%"), 400, "invalid_cursor")


def test_cancel_deletes_upload_and_is_repeatable(client, face_crops):
    job = _upload(client, face_crops["real"][0].read_bytes()).get_json()
    assert (settings.storage_dir / job["id"]).exists()
    assert job["expires_at"] is None  # set once it finishes
    response = client.post(job["links"]["cancel"])
    assert response.status_code == 200 and response.get_json()["status"] == "canceled"
    canceled = response.get_json()
    assert canceled["finished_at"] is not None
    finished = datetime.fromisoformat(canceled["finished_at"])
    expires = datetime.fromisoformat(canceled["expires_at"])
    assert expires - finished == timedelta(hours=settings.retention_hours)
    assert not (settings.storage_dir / job["id"]).exists()
    again = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 200 and again.get_json() == canceled
    _error(client.post(f"/v1/jobs/{'0' * 32}/cancel"), 404, "job_not_found")


def test_a_finished_job_cannot_be_canceled(client, face_crops):
    job = _upload(client, face_crops["real"][1].read_bytes()).get_json()
    run_job_here(job["id"])
    assert client.get(f"/v1/jobs/{job['id']}").get_json()["status"] == "succeeded"
    _error(client.post(f"/v1/jobs/{job['id']}/cancel"), 409, "job_not_cancelable")


@pytest.mark.parametrize("finish", [True, False])
def test_delete_erases_the_job(client, face_crops, video_paths, finish):
    job = _upload(client, video_paths[1].read_bytes(), name="v.mp4").get_json()
    if finish:
        run_job_here(job["id"])
        frames = client.get(f"/v1/jobs/{job['id']}/frames").get_json()
        assert frames["status"] == "succeeded" and frames["total"] > 0
    response = client.delete(f"/v1/jobs/{job['id']}")
    assert response.status_code == 204 and response.get_data() == b""
    assert not (settings.storage_dir / job["id"]).exists()
    for path in (f"/v1/jobs/{job['id']}", f"/v1/jobs/{job['id']}/frames"):
        _error(client.get(path), 404, "job_not_found")
    _error(client.delete(f"/v1/jobs/{job['id']}"), 404, "job_not_found")
    _error(client.post(f"/v1/jobs/{job['id']}/cancel"), 404, "job_not_found")
    listed = client.get("/v1/jobs?limit=100").get_json()["jobs"]
    assert job["id"] not in {j["id"] for j in listed}
    with session_scope() as session:
        assert jobs.count_frames(session, job["id"]) == 0


def test_frames_only_for_videos_and_heatmaps_only_for_images(client, face_crops, video_paths):
    image = _upload(client, face_crops["real"][0].read_bytes()).get_json()
    _error(client.get(f"/v1/jobs/{image['id']}/frames"), 404, "not_a_video_job")
    _error(client.get(f"/v1/jobs/{image['id']}/heatmap"), 409, "job_not_finished")
    video = _upload(client, video_paths[0].read_bytes(), name="v.mp4").get_json()
    page = client.get(f"/v1/jobs/{video['id']}/frames").get_json()
    assert page["total"] == 0 and page["frames"] == [] and page["status"] == "queued"
    _error(client.get(f"/v1/jobs/{video['id']}/frames?limit=5000"), 400, "invalid_field")
    _error(client.get(f"/v1/jobs/{video['id']}/heatmap"), 404, "not_an_image_job")


def test_idempotency_key(client, face_crops):
    headers = {"Idempotency-Key": "order-42"}
    data = face_crops["real"][2].read_bytes()

    def post(payload: bytes):
        return client.post(
            "/v1/jobs",
            headers=headers,
            content_type="multipart/form-data",
            data={"file": (io.BytesIO(payload), "x.jpg")},
        )

    first = post(data)
    assert first.status_code == 202
    repeat = post(data)
    assert repeat.status_code == 200 and repeat.get_json()["id"] == first.get_json()["id"]
    _error(post(face_crops["real"][3].read_bytes()), 409, "idempotency_conflict")


def test_idempotency_fingerprints_the_whole_request(client, face_crops):
    """The same bytes under one key are a different request as 'files' (a batch), with other
    options, or with the files in another order."""
    a, b = (p.read_bytes() for p in face_crops["fake"][5:7])

    def post(key: str, field: str, payloads: list[bytes], **form):
        files = [(io.BytesIO(p), f"{i}.jpg") for i, p in enumerate(payloads)]
        return client.post(
            "/v1/jobs",
            headers={"Idempotency-Key": key},
            content_type="multipart/form-data",
            data={field: files, **form},
        )

    image = post("fp-1", "file", [a])
    assert image.status_code == 202 and image.get_json()["kind"] == "image"
    _error(post("fp-1", "files", [a]), 409, "idempotency_conflict")
    _error(post("fp-1", "file", [a], threshold="0.4"), 409, "idempotency_conflict")
    batch = post("fp-2", "files", [a, b])
    assert batch.status_code == 202 and batch.get_json()["kind"] == "batch"
    _error(post("fp-2", "files", [b, a]), 409, "idempotency_conflict")
    again = post("fp-2", "files", [a, b])
    assert again.status_code == 200 and again.get_json()["id"] == batch.get_json()["id"]
    # the file name is not part of the request's meaning
    renamed = client.post(
        "/v1/jobs",
        headers={"Idempotency-Key": "fp-1"},
        content_type="multipart/form-data",
        data={"file": (io.BytesIO(a), "other-name.jpg")},
    )
    assert renamed.status_code == 200 and renamed.get_json()["id"] == image.get_json()["id"]


@pytest.mark.parametrize("field", ["sample_fsp", "callback_url", "File"])
def test_unknown_fields_are_refused(client, face_crops, field):
    data = face_crops["real"][0].read_bytes()
    body = _error(_upload(client, data, **{field: "1"}), 400, "unknown_field")
    assert field in body["error"]["message"]
    stray_file = client.post(
        "/v1/jobs",
        content_type="multipart/form-data",
        data={"file": (io.BytesIO(data), "a.jpg"), "extra": (io.BytesIO(data), "b.jpg")},
    )
    _error(stray_file, 400, "unknown_field")


def test_health_readiness_and_openapi(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and all(ready.get_json()["checks"].values())
    spec = client.get("/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    for path in (
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/frames",
        "/healthz",
        "/readyz",
        "/predict",
        "/predict/batch",
        "/predict/video",
    ):
        assert path in spec["paths"]


def test_readiness_reports_missing_weights(client, override_settings, tmp_path):
    override_settings(RRR_WEIGHTS_PATH=str(tmp_path / "none.pt"))
    body = _error(client.get("/readyz"), 503, "not_ready")
    assert body["checks"]["weights"] is False


def test_web_page_is_served(client):
    page = client.get("/")
    assert page.status_code == 200 and b"Real Recognize Real" in page.data
    assert client.get("/static/app.js").status_code == 200


def test_favicon_is_served(client):
    page = client.get("/").get_data(as_text=True)
    assert 'rel="icon" href="/static/favicon.svg"' in page
    for path in ("/static/favicon.svg", "/favicon.ico"):
        icon = client.get(path)
        assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
        assert icon.data.startswith(b"<svg") and len(icon.data) < 2000


def test_running_job_reports_an_eta(client, face_crops):
    from datetime import timedelta

    from sqlalchemy import update

    from shared.db import session_scope
    from shared.models import Job, utcnow

    job = _upload(client, face_crops["real"][0].read_bytes()).get_json()
    assert job["progress"]["eta_s"] is None
    with session_scope() as session:  # as a worker 10 s into a 40-step job would have left it
        session.execute(
            update(Job)
            .where(Job.id == job["id"])
            .values(
                status="running",
                started_at=utcnow() - timedelta(seconds=10),
                progress_done=10,
                progress_total=40,
            )
        )
    eta = client.get(f"/v1/jobs/{job['id']}").get_json()["progress"]["eta_s"]
    assert 29 <= eta <= 32


def test_reads_carry_etags_and_answer_304(client, face_crops):
    job = _upload(client, face_crops["real"][4].read_bytes()).get_json()
    # (a running job's body changes as its ETA counts down: lists of queued jobs hold still)
    for path in (f"/v1/jobs/{job['id']}", "/v1/jobs?limit=5&status=queued"):
        first = client.get(path)
        assert first.status_code == 200 and first.headers["ETag"]
        same = client.get(path, headers={"If-None-Match": first.headers["ETag"]})
        assert same.status_code == 304 and same.get_data() == b""
        assert same.headers["ETag"] == first.headers["ETag"]
        stale = client.get(path, headers={"If-None-Match": '"not-this-one"'})
        assert stale.status_code == 200 and stale.get_json() == first.get_json()
    before = client.get(f"/v1/jobs/{job['id']}").headers["ETag"]
    client.post(f"/v1/jobs/{job['id']}/cancel")
    after = client.get(f"/v1/jobs/{job['id']}", headers={"If-None-Match": before})
    assert after.status_code == 200 and after.get_json()["status"] == "canceled"


def test_unfinished_jobs_say_when_to_poll_again(client, face_crops):
    submitted = _upload(client, face_crops["real"][5].read_bytes())
    assert submitted.status_code == 202 and int(submitted.headers["Retry-After"]) >= 1
    job = submitted.get_json()
    polled = client.get(f"/v1/jobs/{job['id']}")
    assert polled.get_json()["status"] == "queued" and int(polled.headers["Retry-After"]) >= 1
    client.post(f"/v1/jobs/{job['id']}/cancel")
    assert "Retry-After" not in client.get(f"/v1/jobs/{job['id']}").headers
