"""A real S3 API for the tests and benchmarks: moto's server mode, started as its own process on
a local address (production uses AWS S3, MinIO, Ceph or another S3-compatible store). The
service reaches it exactly as it reaches any store: RRR_STORAGE_URL plus the AWS variables."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "rrr-test",
    "AWS_SECRET_ACCESS_KEY": "rrr-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class S3Server:
    """``moto.server`` listening on ``host``; ``env(bucket)`` gives the variables a process needs
    to use it as its storage."""

    def __init__(self, log: Path, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, free_port(host)
        self.endpoint = f"http://{host}:{self.port}"
        with open(log, "w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", host, "-p", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection((host, self.port), timeout=1).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text()[-2000:]
                    raise RuntimeError(f"moto server did not start: {tail}") from None
                time.sleep(0.2)

    def env(self, bucket: str, prefix: str = "uploads", endpoint: str | None = None) -> dict:
        return {
            **CREDENTIALS,
            "AWS_ENDPOINT_URL": endpoint or self.endpoint,
            "RRR_STORAGE_URL": f"s3://{bucket}/{prefix}",
        }

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def new_bucket(self) -> str:
        name = f"rrr-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
