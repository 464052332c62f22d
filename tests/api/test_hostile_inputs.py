"""Every input a user can send gets a clear answer and leaves the service healthy.

Each case is submitted through the real API (test client); accepted jobs are then run by the
real worker tasks (``tests.conftest.run_job_here``, in this process). An answer is either a
clean 4xx in the JSON error shape, or a terminal job whose failure (or failed batch item) carries a
machine-readable code and a message. Media are generated here or read from ../shared/data.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from shared.config import settings
from tests.support import media
from tests.support.jobs import run_job_here
from worker.sweeper import purge_expired


def _jpeg() -> bytes:
    return media.image_bytes(fmt="JPEG", size=(320, 240))


def _mp4(tmp_path: Path, **kwargs) -> bytes:
    return media.write_video(tmp_path / "v.mp4", **kwargs).read_bytes()


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("face.jpg", b"x" * 100)
    return buffer.getvalue()


def _shared(relative: str) -> Path:
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / relative


def _share(relative: str) -> bytes:
    return _shared(relative).read_bytes()


REAL_CROP = "dfdc_faces/real/mcehvkoidm.jpg"
REAL_VIDEO = "videos/dfdc_samples/real/knqhpwoigk.mp4"

# (case id, bytes factory(tmp_path), file name, expected: an HTTP status for a 4xx, or
#  "ok" (job succeeds), "no_face" (succeeds with NO_FACE), "failed:<code>" (job fails),
#  "ok|failed" (either is a fair answer, e.g. a video cut in half))
SINGLE = [
    ("empty", lambda t: b"", "empty.jpg", 400),
    ("text-renamed-jpg", lambda t: b"hello, world\n" * 20, "photo.jpg", 415),
    ("html-renamed-jpg", lambda t: b"<!doctype html><html><body>hi</body></html>", "a.jpg", 415),
    (
        "svg",
        lambda t: b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>',
        "a.svg",
        415,
    ),
    ("pdf", lambda t: b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "doc.jpg", 415),
    ("zip", lambda t: _zip(), "faces.zip", 415),
    ("random-bytes", lambda t: bytes(range(256)) * 40, "noise.png", 415),
    ("elf-binary", lambda t: b"\x7fELF\x02\x01\x01" + b"\x00" * 500, "run.jpg", 415),
    ("psd", lambda t: b"8BPS\x00\x01" + b"\x00" * 200, "layers.psd", 415),
    ("truncated-jpeg", lambda t: _jpeg()[:700], "cut.jpg", "failed:image_corrupt"),
    (
        "truncated-png",
        lambda t: media.image_bytes(size=(300, 200))[:500],
        "cut.png",
        "failed:image_corrupt",
    ),
    (
        "jpeg-header-then-garbage",
        lambda t: _jpeg()[:20] + b"\x13" * 4000,
        "bad.jpg",
        "failed:image_corrupt",
    ),
    ("png-bomb", lambda t: media.png_bomb(), "bomb.png", "failed:image_too_large"),
    (
        "png-wide-bomb",
        lambda t: media.png_bomb(1_000_000, 100),
        "wide.png",
        "failed:image_too_large",
    ),
    ("one-pixel", lambda t: media.image_bytes(size=(1, 1)), "dot.png", "no_face"),
    ("cmyk-jpeg", lambda t: media.image_bytes(mode="CMYK", fmt="JPEG"), "cmyk.jpg", "no_face"),
    ("sixteen-bit-png", lambda t: media.image_bytes(mode="I;16"), "deep.png", "no_face"),
    ("grayscale", lambda t: media.image_bytes(mode="L"), "grey.png", "no_face"),
    ("palette", lambda t: media.image_bytes(mode="P"), "pal.png", "no_face"),
    ("alpha", lambda t: media.image_bytes(mode="RGBA"), "alpha.png", "no_face"),
    ("animated-gif", lambda t: media.animated_gif(), "anim.gif", "no_face"),
    ("tiff", lambda t: media.image_bytes(fmt="TIFF"), "scan.tif", "no_face"),
    ("webp", lambda t: media.image_bytes(fmt="WEBP"), "pic.webp", "no_face"),
    ("bmp", lambda t: media.image_bytes(fmt="BMP"), "pic.bmp", "no_face"),
    ("real-face-crop", lambda t: _share(REAL_CROP), "face.jpg", "ok"),
    # what phones save: HEIC (held sideways: found only if the rotation is honoured) and AVIF
    ("heic-face", lambda t: media.reencoded(_shared(REAL_CROP), "HEIF"), "IMG_0042.HEIC", "ok"),
    (
        "heic-face-sideways",
        lambda t: media.reencoded(_shared(REAL_CROP), "HEIF", turned_left_with_orientation=True),
        "IMG_0043.HEIC",
        "ok",
    ),
    ("avif-face", lambda t: media.reencoded(_shared(REAL_CROP), "AVIF"), "face.avif", "ok"),
    (
        "truncated-heic",
        lambda t: media.reencoded(_shared(REAL_CROP), "HEIF")[:600],
        "cut.heic",
        "failed:image_corrupt",
    ),
    ("image-named-mp4", lambda t: _share(REAL_CROP), "clip.mp4", "ok"),
    ("corrupt-mp4", lambda t: _share(REAL_VIDEO)[:3000], "cut.mp4", "failed:video_corrupt"),
    (
        "mp4-header-then-garbage",
        lambda t: _share(REAL_VIDEO)[:64] + b"\x00\x01" * 5000,
        "bad.mp4",
        "failed:video_corrupt",
    ),
    (
        "mp4-cut-in-half",
        lambda t: _share(REAL_VIDEO)[: len(_share(REAL_VIDEO)) // 2],
        "half.mp4",
        "ok|failed",
    ),
    ("zero-frame-mp4", lambda t: _mp4(t, frames=0), "empty.mp4", "failed:video_corrupt"),
    ("zero-fps-avi", lambda t: media.avi_bytes(zero_rate=True, tmp=t), "zero.avi", "ok|failed"),
    ("video-without-faces", lambda t: _mp4(t, frames=20), "noise.mp4", "no_face"),
    ("tiny-avi", lambda t: media.avi_bytes(tmp=t), "tiny.avi", "no_face"),
    # the face is stored sideways with a 90-degree display matrix: found only if it is honoured
    ("rotated-video", lambda t: _rotated_face_video(t), "phone.mp4", "ok"),
    # costs bounded by what is analysed: two frames 200,000 s apart; 36 megapixels in 1 MB
    ("sparse-mkv", lambda t: media.sparse_mkv(t / "s.mkv").read_bytes(), "s.mkv", "no_face"),
    ("jpeg-36-megapixels", lambda t: media.big_jpeg(), "big.jpg", "no_face"),
    ("png-16-bit-36-megapixels", lambda t: media.big_png16(), "deep.png", "no_face"),
]


def _rotated_face_video(tmp_path: Path) -> bytes:
    crop = Path(__file__).resolve().parents[2].parent / "shared" / "data" / REAL_CROP
    return media.write_video(
        tmp_path / "phone.mp4", frames=20, size=(320, 240), face_from=crop, rotate_90=True
    ).read_bytes()


def _submit(client, files, **form):
    return client.post("/v1/jobs", data={**files, **form}, content_type="multipart/form-data")


def _run(client, job_id: str) -> dict:
    run_job_here(job_id)  # the worker's own tasks; they must never raise on bad media
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["status"] in ("succeeded", "failed"), job
    if job["status"] == "failed":
        assert job["error"]["code"] and job["error"]["message"]
        assert str(settings.var_dir) not in job["error"]["message"]  # no server paths leak
    return job


def _check_error_shape(response, status: int) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    if response.request.path.startswith("/predict"):  # the prototype's shape: a string
        assert body["error"] and isinstance(body["error"], str) and body["code"]
        return
    assert body["error"]["code"] and body["error"]["message"]


@pytest.mark.parametrize(("case", "make", "name", "expected"), SINGLE, ids=[c[0] for c in SINGLE])
def test_single_upload(client, tmp_path, case, make, name, expected):
    response = _submit(client, {"file": (io.BytesIO(make(tmp_path)), name)})
    if isinstance(expected, int):
        _check_error_shape(response, expected)
        return
    assert response.status_code == 202, response.get_data(as_text=True)
    job = _run(client, response.get_json()["id"])
    if expected == "ok":
        assert job["status"] == "succeeded" and job["result"]["prediction"] in ("FAKE", "REAL")
    elif expected == "no_face":
        assert job["status"] == "succeeded" and job["result"]["prediction"] == "NO_FACE"
    elif expected.startswith("failed:"):
        assert job["status"] == "failed" and job["error"]["code"] == expected.split(":")[1], job


def test_batch_with_bad_files_processes_the_rest(client):
    files = [
        (io.BytesIO(_share(REAL_CROP)), "good.jpg"),
        (io.BytesIO(b"text, not an image"), "bad.jpg"),
        (io.BytesIO(media.png_bomb()), "bomb.png"),
        (io.BytesIO(_jpeg()[:500]), "cut.jpg"),
        (io.BytesIO(_share(REAL_VIDEO)), "clip.mp4"),
        (io.BytesIO(b""), "empty.png"),
        (io.BytesIO(media.image_bytes(mode="CMYK", fmt="JPEG")), "cmyk.jpg"),
    ]
    response = _submit(client, {"files": files})
    assert response.status_code == 202
    job = _run(client, response.get_json()["id"])
    assert job["status"] == "succeeded"
    items = job["result"]["items"]
    codes = [item.get("error", {}).get("code") for item in items]
    assert codes == [
        None,
        "unsupported_media_type",
        "image_too_large",
        "image_corrupt",
        "video_in_batch",
        "empty_file",
        None,
    ]
    assert job["result"]["summary"] == {
        "total": 7,
        "processed": 2,
        "failed": 5,
        "fake": items[0]["prediction"] == "FAKE",
        "real": items[0]["prediction"] == "REAL",
        "uncertain": items[0]["prediction"] == "UNCERTAIN",
        "no_face": 1,
    }


def test_batch_of_only_bad_files_and_too_many_files(client, override_settings):
    _check_error_shape(_submit(client, {"files": [(io.BytesIO(b"nope"), "a.jpg")]}), 415)
    override_settings(RRR_MAX_BATCH_FILES="3")
    many = [(io.BytesIO(media.image_bytes()), f"{i}.png") for i in range(4)]
    _check_error_shape(_submit(client, {"files": many}), 400)


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("../../../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system32\\a.jpg", None),  # the client may drop backslashes
        ("/absolute/path/face.jpg", "face.jpg"),
        ("x" * 1000 + ".jpg", "x" * 255),
        ("名前 😀 é.jpg", "名前 😀 é.jpg"),
        ("bell\x07and\ttab\x1b.jpg", "bellandtab.jpg"),
        ("", "upload"),
    ],
)
def test_file_names_never_reach_the_disk(client, name, shown):
    before = set(settings.var_dir.rglob("*"))
    response = _submit(client, {"file": (io.BytesIO(_share(REAL_CROP)), name)})
    assert response.status_code == 202
    job = response.get_json()
    filename = job["inputs"][0]["filename"]
    assert filename == shown if shown else not {"/", "\\"} & set(filename)
    created = set(settings.var_dir.rglob("*")) - before
    stored = [p for p in created if p.is_file() and p.is_relative_to(settings.storage_dir)]
    assert [p.name for p in stored] == ["0.jpg"]
    assert all(p.is_relative_to(settings.var_dir) for p in created)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("put", "/v1/jobs", 405),
        ("delete", "/v1/jobs", 405),
        ("patch", "/v1/jobs/0123456789abcdef0123456789abcdef", 405),
        ("get", "/predict", 405),
        ("post", "/v1/jobs/0123456789abcdef0123456789abcdef", 405),
        ("get", "/v1/jobs/..%2F..%2Fetc", 404),
    ],
)
def test_wrong_methods_and_paths(client, method, path, status):
    response = getattr(client, method)(path)
    _check_error_shape(response, status)
    if status == 405:  # what the resource does take
        allowed = {m.strip() for m in response.headers["Allow"].split(",")}
        assert method.upper() not in allowed and "OPTIONS" in allowed


def test_missing_duplicated_and_malformed_fields(client):
    _check_error_shape(client.post("/v1/jobs", json={"file": "face.jpg"}), 400)
    _check_error_shape(client.post("/v1/jobs", data="raw body", content_type="image/jpeg"), 400)
    two = [(io.BytesIO(_jpeg()), "a.jpg"), (io.BytesIO(_jpeg()), "b.jpg")]
    _check_error_shape(_submit(client, {"file": two}), 400)
    response = client.post(
        "/v1/jobs",
        headers={"Idempotency-Key": "k" * 300},
        data={"file": (io.BytesIO(_jpeg()), "a.jpg")},
        content_type="multipart/form-data",
    )
    _check_error_shape(response, 400)


def test_over_the_limit_is_413_and_nothing_is_stored(app):
    app.config["MAX_CONTENT_LENGTH"] = 50_000
    before = set(settings.storage_dir.iterdir()) if settings.storage_dir.exists() else set()
    big = media.image_bytes(size=(400, 400), fmt="BMP")
    response = app.test_client().post(
        "/v1/jobs", data={"file": (io.BytesIO(big), "big.bmp")}, content_type="multipart/form-data"
    )
    _check_error_shape(response, 413)
    after = set(settings.storage_dir.iterdir()) if settings.storage_dir.exists() else set()
    assert after == before


def test_retention_purge_leaves_nothing_behind(client, override_settings):
    job = _submit(client, {"file": (io.BytesIO(_share(REAL_CROP)), "f.jpg")}).get_json()
    _run(client, job["id"])
    assert (settings.storage_dir / job["id"]).exists()
    override_settings(RRR_RETENTION_HOURS="0")
    purged = purge_expired()
    assert job["id"] in purged
    assert not (settings.storage_dir / job["id"]).exists()
    _check_error_shape(client.get(f"/v1/jobs/{job['id']}"), 404)
    # every finished job is gone, and no upload outlives its job
    remaining = client.get("/v1/jobs?status=succeeded&limit=100").get_json()["jobs"]
    assert remaining == []
