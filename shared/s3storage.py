"""The object-store backend: ``RRR_STORAGE_URL=s3://bucket/prefix`` on any S3-compatible store
(AWS S3, MinIO, Ceph RGW, ...). The endpoint, region and credentials come from the variables every
AWS client reads (``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, or a profile / instance role), through boto3's own lookup;
``AWS_MAX_ATTEMPTS`` (default 5) bounds boto3's retries of a failed request.

- ``put`` streams: a multipart upload of ``PART_BYTES`` parts, so an upload never sits whole in
  the API's memory (a small one is a single PUT).
- ``source`` gives images to the decoder as bytes (one GET, no disk); ``local_path`` gives videos
  a path through this host's bounded cache (shared/filecache.py).
- ``delete_job`` removes every object under ``<prefix><job id>/`` and aborts that job's unfinished
  multipart uploads; ``job_ids`` lists by prefix, so the sweeper finds orphans as it does on disk.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import boto3
from boto3.exceptions import Boto3Error
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from shared.config import settings
from shared.filecache import FileCache
from shared.storage import (
    IN_MEMORY_MAX_BYTES,
    StorageUnavailable,
    check_job_id,
    check_key,
    is_job_id,
)

PART_BYTES = 8 * 1024 * 1024  # S3 parts are at least 5 MiB (but the last); 8 is boto3's default
READ_CHUNK = 1024 * 1024
_MISSING = ("404", "NoSuchKey", "NotFound")


def parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ("bucket", "some/prefix/"); the prefix may be empty."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"RRR_STORAGE_URL must look like s3://bucket/prefix, not {url!r}")
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""


def make_client() -> Any:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    config = Config(
        # MinIO, Ceph and most self-hosted stores serve buckets as paths, not host names
        s3={"addressing_style": "path" if endpoint else "auto"},
        retries={"mode": "standard", "max_attempts": int(os.environ.get("AWS_MAX_ATTEMPTS", "5"))},
        connect_timeout=5,
        read_timeout=60,
    )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return boto3.client("s3", endpoint_url=endpoint, region_name=region, config=config)


def _missing(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code")) in _MISSING


@contextmanager
def _store_errors(key: str) -> Iterator[None]:
    """A missing object becomes FileNotFoundError; any other trouble with the store (network,
    credentials, 5xx after boto3's own retries) StorageUnavailable."""
    try:
        yield
    except ClientError as exc:
        if _missing(exc):
            raise FileNotFoundError(f"{key} is no longer stored") from None
        code = exc.response.get("Error", {}).get("Code")
        raise StorageUnavailable(f"object store refused {key}: {code}") from exc
    except (BotoCoreError, Boto3Error) as exc:
        raise StorageUnavailable(f"object store unreachable: {exc.__class__.__name__}") from exc


class S3Storage:
    def __init__(self, bucket: str, prefix: str, client: Any, cache: FileCache) -> None:
        self.bucket, self.prefix, self.client, self.cache = bucket, prefix, client, cache

    @classmethod
    def from_url(cls, url: str) -> S3Storage:
        bucket, prefix = parse_url(url)
        cache = FileCache(settings.storage_cache_dir, int(settings.storage_cache_mb * 1024 * 1024))
        return cls(bucket, prefix, make_client(), cache)

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put(self, key: str, stream: BinaryIO, max_bytes: int) -> int:
        """Stream ``stream`` to ``key``; returns the size. OverflowError past ``max_bytes``
        (nothing is left in the store then)."""
        name = self._name(key)
        with _store_errors(key):
            return self._put(name, stream, max_bytes)

    def _put(self, name: str, stream: BinaryIO, max_bytes: int) -> int:
        buffer = bytearray()
        written, upload_id, parts = 0, None, []
        try:
            while True:
                chunk = stream.read(READ_CHUNK)
                written += len(chunk)
                if written > max_bytes:
                    raise OverflowError(written)
                buffer += chunk
                if len(buffer) >= PART_BYTES or (not chunk and upload_id and buffer):
                    if upload_id is None:
                        upload_id = self.client.create_multipart_upload(
                            Bucket=self.bucket, Key=name
                        )["UploadId"]
                    number = len(parts) + 1
                    answer = self.client.upload_part(
                        Bucket=self.bucket,
                        Key=name,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=bytes(buffer),
                    )
                    parts.append({"ETag": answer["ETag"], "PartNumber": number})
                    buffer.clear()
                if not chunk:
                    break
            if upload_id is None:
                self.client.put_object(Bucket=self.bucket, Key=name, Body=bytes(buffer))
            else:
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=name,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except BaseException:
            if upload_id is not None:
                with contextlib.suppress(Exception):  # the sweeper aborts it later otherwise
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=name, UploadId=upload_id
                    )
            raise
        return written

    def _get(self, key: str) -> Any:
        with _store_errors(key):
            return self.client.get_object(Bucket=self.bucket, Key=self._name(key))

    def read_bytes(self, key: str) -> bytes:
        answer = self._get(key)
        with _store_errors(key), contextlib.closing(answer["Body"]) as body:
            return body.read()

    @contextmanager
    def source(self, key: str) -> Iterator[Path | bytes]:
        """What a decoder reads: the bytes when the object is small enough to hold in memory
        (images), else a path in this host's cache."""
        answer = self._get(key)
        with _store_errors(key), contextlib.closing(answer["Body"]) as body:
            data = body.read() if answer["ContentLength"] <= IN_MEMORY_MAX_BYTES else None
        if data is not None:
            yield data
            return
        with self.local_path(key) as path:
            yield path

    @contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        name = self._name(key)

        def fetch(destination: Path) -> None:
            with _store_errors(key):
                self.client.download_file(self.bucket, name, str(destination))

        with self.cache.path(key, fetch) as path:
            yield path

    def exists(self, key: str) -> bool:
        try:
            with _store_errors(key):
                self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except FileNotFoundError:
            return False
        return True

    def reachable(self) -> bool:
        """Whether the bucket answers with these credentials (for /readyz)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, Boto3Error, ClientError):
            return False
        return True

    def delete_job(self, job_id: str) -> None:
        with _store_errors(job_id):
            self._delete_job(check_job_id(job_id))
        self.cache.drop_job(job_id)

    def _delete_job(self, job_id: str) -> None:
        prefix = f"{self.prefix}{job_id}/"
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        for page in pages:
            names = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if names:  # a page holds at most 1000 keys, as many as one delete takes
                self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": names, "Quiet": True}
                )
        for upload in self._uploads(prefix):
            with contextlib.suppress(ClientError):  # finished or aborted meanwhile
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )

    def _uploads(self, prefix: str) -> list[dict[str, Any]]:
        """Unfinished multipart uploads under ``prefix`` (an API that died mid-upload)."""
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        return [upload for page in pages for upload in page.get("Uploads", [])]

    def job_ids(self, older_than_s: float = 0.0) -> list[str]:
        """Ids of jobs whose newest object (or unfinished upload) is at least ``older_than_s``
        old, listed by prefix."""
        with _store_errors(self.prefix or "/"):
            return self._job_ids(older_than_s)

    def _job_ids(self, older_than_s: float) -> list[str]:
        newest: dict[str, datetime] = {}

        def note(name: str, when: datetime) -> None:
            job_id = name[len(self.prefix) :].split("/", 1)[0]
            if is_job_id(job_id):
                newest[job_id] = max(when, newest.get(job_id, when))

        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        for page in pages:
            for item in page.get("Contents", []):
                note(item["Key"], item["LastModified"])
        for upload in self._uploads(self.prefix):
            note(upload["Key"], upload["Initiated"])
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
        return [job_id for job_id, when in newest.items() if when <= cutoff]
