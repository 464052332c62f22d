"""What the object-store path adds to an image job: the same service (PostgreSQL, Redis, `rrr api`,
one `rrr worker`) run first on a local upload directory, then on an S3 API (moto's server on
127.0.0.1, so the figure is the S3 path's own cost with no network distance), and the storage
operations alone (upload, read back) on each backend."""

from __future__ import annotations

import io
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.data import dfdc_crops
from bench.service import image_latency, percentile, services, start_api
from tests.support.s3 import S3Server


def _operations(storage: Any, crops: list[Path]) -> dict[str, float]:
    """Median milliseconds to put one crop and to read it back as a decoder would."""
    put, read = [], []
    for i, crop in enumerate(crops):
        data = crop.read_bytes()
        key = f"{i:032x}/0.jpg"
        t0 = time.perf_counter()
        storage.put(key, io.BytesIO(data), len(data))
        t1 = time.perf_counter()
        with storage.source(key) as source:
            if isinstance(source, Path):
                source.read_bytes()
        put.append(t1 - t0)
        read.append(time.perf_counter() - t1)
        storage.delete_job(f"{i:032x}")
    return {
        "put_p50_ms": round(percentile(put, 0.5) * 1000, 2),
        "read_p50_ms": round(percentile(read, 0.5) * 1000, 2),
    }


def measure(quick: bool) -> dict[str, Any]:
    from shared.filecache import FileCache
    from shared.s3storage import S3Storage, make_client
    from shared.storage import LocalStorage

    n = 10 if quick else 40
    folder = Path(tempfile.mkdtemp(prefix="rrr-bench-s3-"))
    server = S3Server(folder / "moto.log")
    out: dict[str, Any] = {"s3_server": "moto (server mode, 127.0.0.1)"}
    try:
        bucket = server.new_bucket()
        s3_env = server.env(bucket, prefix="bench")
        crops = dfdc_crops(20 if quick else 100, seed=9)
        out["operations_local"] = _operations(LocalStorage(folder / "uploads"), crops)
        import os

        os.environ.update({k: v for k, v in s3_env.items() if k.startswith("AWS_")})
        s3 = S3Storage(bucket, "ops/", make_client(), FileCache(folder / "cache", 1 << 30))
        out["operations_s3"] = _operations(s3, crops)

        for backend, env in (("local", {}), ("s3", s3_env)):
            with services(embedded=False) as procs:
                procs.env.update(env)
                client = start_api(procs)
                procs.start("worker", "--name", f"bench-{backend}@%h")
                out[f"image_latency_{backend}"] = image_latency(client, n=n, seed=11)
        local, remote = out["image_latency_local"], out["image_latency_s3"]
        out["added_p50_ms"] = round(remote["p50_ms"] - local["p50_ms"], 1)
        out["added_p95_ms"] = round(remote["p95_ms"] - local["p95_ms"], 1)
    finally:
        server.stop()
    return out
