"""Both storage backends keep the same contract: the directory, and an S3 API (moto's server,
a separate process on 127.0.0.1) reached with the variables a deployment sets."""

from __future__ import annotations

import io
import os
import threading
import tracemalloc
from datetime import timedelta

import pytest
from sqlalchemy import update

from shared.config import settings
from shared.db import session_scope
from shared.models import Job, utcnow
from shared.storage import LocalStorage, get_storage
from tests.support.jobs import new_job

MiB = 1024 * 1024


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path, override_settings):
    if request.param == "local":
        override_settings(RRR_STORAGE_DIR=str(tmp_path / "uploads"), RRR_STORAGE_URL="")
    else:
        server = request.getfixturevalue("s3_server")
        override_settings(
            **server.env(server.new_bucket(), prefix="tenant/uploads"),
            RRR_STORAGE_CACHE_DIR=str(tmp_path / "cache"),
        )
    return get_storage()


@pytest.fixture()
def s3(s3_server, tmp_path, override_settings):
    def make(**env: str):
        override_settings(
            **s3_server.env(s3_server.new_bucket()),
            RRR_STORAGE_CACHE_DIR=str(tmp_path / "cache"),
            **env,
        )
        return get_storage()

    return make


class Generated(io.RawIOBase):
    """``size`` bytes made as they are read (an upload arriving over the network), never whole."""

    def __init__(self, size: int, seed: int = 7) -> None:
        self.left, self.seed, self.sizes = size, seed, []

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        self.sizes.append(n)
        return bytes((self.seed + i) % 251 for i in range(min(n, 251))) * (n // 251) + bytes(
            (self.seed + i) % 251 for i in range(n % 251)
        )


def _content(size: int, seed: int = 7) -> bytes:
    return Generated(size, seed).read()


def job_key(job_id: str, name: str = "0.jpg") -> str:
    return f"{job_id}/{name}"


JOB_A, JOB_B = "a" * 32, "b" * 32


def test_put_then_read_back_small_and_multipart(storage):
    small = b"\xff\xd8 a small image"
    assert storage.put(job_key(JOB_A), io.BytesIO(small), 1 * MiB) == len(small)
    big = _content(21 * MiB + 123)  # three parts of 8 MiB on S3, the last one short
    assert storage.put(job_key(JOB_A, "1.mp4"), io.BytesIO(big), 100 * MiB) == len(big)
    assert storage.read_bytes(job_key(JOB_A)) == small
    assert storage.read_bytes(job_key(JOB_A, "1.mp4")) == big
    assert storage.exists(job_key(JOB_A))
    assert not storage.exists(job_key(JOB_B))
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(job_key(JOB_B))
    if not isinstance(storage, LocalStorage):
        head = storage.client.head_object(
            Bucket=storage.bucket, Key=storage._name(job_key(JOB_A, "1.mp4"))
        )
        assert head["ETag"].strip('"').endswith("-3")  # S3 names multipart objects' ETags so


def test_keys_never_leave_the_store(storage):
    for key in ("../etc/passwd", f"{JOB_A}/../../x", f"{JOB_A}/a/b", "x/0.jpg"):
        with pytest.raises(ValueError):
            storage.put(key, io.BytesIO(b"x"), 10)


def test_an_upload_over_the_limit_leaves_nothing(storage):
    with pytest.raises(OverflowError):
        storage.put(job_key(JOB_A), Generated(20 * MiB), 12 * MiB)
    assert not storage.exists(job_key(JOB_A))
    if not isinstance(storage, LocalStorage):  # the parts already sent were aborted
        uploads = storage.client.list_multipart_uploads(Bucket=storage.bucket)
        assert uploads.get("Uploads", []) == []


def test_put_streams_without_holding_the_upload_in_memory(storage):
    size = 80 * MiB
    stream = Generated(size)
    tracemalloc.start()
    try:
        assert storage.put(job_key(JOB_A, "0.mp4"), stream, 100 * MiB) == size
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert max(stream.sizes) <= MiB
    assert peak < 40 * MiB, f"peak {peak / MiB:.1f} MiB for an {size // MiB} MiB upload"


def test_images_come_as_bytes_from_a_store_and_as_the_file_on_disk(storage):
    data = _content(300_000)
    storage.put(job_key(JOB_A), io.BytesIO(data), MiB)
    with storage.source(job_key(JOB_A)) as source:
        if isinstance(storage, LocalStorage):
            assert source == settings.storage_dir / JOB_A / "0.jpg"
        else:
            assert source == data
    with storage.local_path(job_key(JOB_A)) as path:
        assert path.read_bytes() == data
    with pytest.raises(FileNotFoundError), storage.local_path(job_key(JOB_B)):
        pass


def test_delete_job_removes_its_files_only(storage):
    for name in ("0.jpg", "1.jpg", "heatmap.png"):
        storage.put(job_key(JOB_A, name), io.BytesIO(b"a"), 10)
    storage.put(job_key(JOB_B), io.BytesIO(b"b"), 10)
    storage.delete_job(JOB_A)
    storage.delete_job(JOB_A)  # twice is harmless
    assert [storage.exists(job_key(JOB_A, n)) for n in ("0.jpg", "1.jpg", "heatmap.png")] == [
        False
    ] * 3
    assert storage.read_bytes(job_key(JOB_B)) == b"b"
    assert storage.job_ids() == [JOB_B]
    with pytest.raises(ValueError):
        storage.delete_job("../" + JOB_B)


def test_orphan_listing_by_age(storage):
    storage.put(job_key(JOB_A), io.BytesIO(b"a"), 10)
    storage.put(job_key(JOB_B), io.BytesIO(b"b"), 10)
    assert sorted(storage.job_ids(older_than_s=0)) == [JOB_A, JOB_B]
    assert storage.job_ids(older_than_s=3600) == []


def test_retention_purges_expired_jobs_and_orphans(
    storage, migrated, override_settings, monkeypatch
):
    from worker import sweeper

    expired, live, orphan = new_job(), new_job(), "c" * 32
    for job_id in (expired, live, orphan):
        storage.put(job_key(job_id), io.BytesIO(job_id.encode()), 100)
    storage.put(f"{expired}/heatmap.png", io.BytesIO(b"png"), 100)
    with session_scope() as session:
        session.execute(
            update(Job)
            .where(Job.id == expired)
            .values(status="succeeded", finished_at=utcnow() - timedelta(hours=3))
        )
    override_settings(RRR_RETENTION_HOURS="2")
    monkeypatch.setattr(sweeper, "ORPHAN_GRACE_S", 0)  # the orphan was just written
    monkeypatch.setattr(sweeper, "ORPHAN_SCAN_INTERVAL_S", 0)
    storage = get_storage()
    assert sweeper.purge_expired() == [expired]
    assert not storage.exists(job_key(expired))
    assert not storage.exists(f"{expired}/heatmap.png")
    assert not storage.exists(job_key(orphan))
    assert storage.read_bytes(job_key(live)) == live.encode()
    assert storage.job_ids() == [live]
    # orphans are looked for once per ORPHAN_SCAN_INTERVAL_S, not at every sweep
    monkeypatch.setattr(sweeper, "ORPHAN_SCAN_INTERVAL_S", 600)
    storage.put(job_key(orphan), io.BytesIO(b"again"), 100)
    assert sweeper.purge_expired() == []
    assert storage.exists(job_key(orphan))


def test_unfinished_multipart_uploads_are_listed_and_aborted(s3):
    storage = s3()
    name = storage._name(job_key(JOB_A, "0.mp4"))
    storage.client.create_multipart_upload(Bucket=storage.bucket, Key=name)  # an API died here
    assert storage.job_ids() == [JOB_A]
    storage.delete_job(JOB_A)
    assert storage.job_ids() == []
    assert storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", []) == []


def test_one_download_per_host_however_many_readers(s3):
    storage = s3()
    data = _content(3 * MiB)
    storage.put(job_key(JOB_A, "0.mp4"), io.BytesIO(data), 10 * MiB)
    downloads = []
    real = storage.client.download_file

    def counted(*args, **kwargs):
        downloads.append(args)
        return real(*args, **kwargs)

    storage.client.download_file = counted
    start = threading.Barrier(6)
    seen, errors = [], []

    def read() -> None:
        try:
            start.wait()
            with storage.local_path(job_key(JOB_A, "0.mp4")) as path:
                seen.append(path.read_bytes() == data)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and seen == [True] * 6
    assert len(downloads) == 1
    assert (settings.storage_cache_dir / JOB_A / "0.mp4").is_file()
    storage.delete_job(JOB_A)
    assert not (settings.storage_cache_dir / JOB_A).exists()


def test_the_cache_stays_bounded_and_never_evicts_a_file_in_use(s3):
    storage = s3(RRR_STORAGE_CACHE_MB="2")
    keys = [job_key(JOB_A, f"{i}.mp4") for i in range(4)]
    for i, key in enumerate(keys):
        storage.put(key, io.BytesIO(_content(MiB, seed=i)), 2 * MiB)
    with storage.local_path(keys[0]) as held:
        os.utime(held, (0, 0))  # the least recently used, but in use
        for i, key in enumerate(keys[1:], 1):
            with storage.local_path(key) as path:
                assert path.read_bytes() == _content(MiB, seed=i)
                os.utime(path, (1, 1 + i))  # make the oldest-use order explicit
        assert held.read_bytes() == _content(MiB, seed=0)
    assert storage.cache.evict() <= 2 * MiB
    cached = sorted(p.name for p in (settings.storage_cache_dir / JOB_A).glob("*.mp4"))
    assert "0.mp4" in cached and len(cached) == 2


def test_an_unreachable_store_is_unavailable_not_missing(s3_server, tmp_path, override_settings):
    from shared.storage import StorageUnavailable
    from tests.support.s3 import free_port

    override_settings(
        **s3_server.env("rrr", endpoint=f"http://127.0.0.1:{free_port('127.0.0.1')}"),
        RRR_STORAGE_CACHE_DIR=str(tmp_path / "cache"),
        AWS_MAX_ATTEMPTS="1",
    )
    storage = get_storage()
    with pytest.raises(StorageUnavailable):
        storage.put(job_key(JOB_A), io.BytesIO(b"x"), 10)
    with pytest.raises(StorageUnavailable):
        storage.read_bytes(job_key(JOB_A))
    with pytest.raises(StorageUnavailable), storage.local_path(job_key(JOB_A)):
        pass
    with pytest.raises(StorageUnavailable):
        storage.job_ids()


def test_the_api_answers_503_while_the_store_is_unreachable(
    client, s3_server, tmp_path, override_settings, face_crops
):
    from tests.support.s3 import free_port

    override_settings(
        **s3_server.env("rrr", endpoint=f"http://127.0.0.1:{free_port('127.0.0.1')}"),
        AWS_MAX_ATTEMPTS="1",
    )
    response = client.post(
        "/v1/jobs",
        data={"file": (io.BytesIO(face_crops["real"][0].read_bytes()), "face.jpg")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "storage_unavailable"
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["checks"]["storage"] is False


def test_readiness_includes_the_store(client, s3_server, tmp_path, override_settings):
    override_settings(**s3_server.env(s3_server.new_bucket()))
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"]["storage"] is True
    override_settings(**s3_server.env("no-such-bucket"))
    assert client.get("/readyz").get_json()["checks"]["storage"] is False
