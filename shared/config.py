"""The one settings object: every knob is an environment variable with a documented default.

Defaults give the embedded configuration (no servers): a SQLite file and kombu's filesystem
transport under ``./var/``. Production sets ``RRR_DATABASE_URL`` and ``RRR_BROKER_URL``.
The README's configuration table lists the same variables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = PROJECT_ROOT / "weights" / "rrr-b0-v3.pt"


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def _list(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


@dataclass(frozen=True)
class Settings:
    var_dir: Path
    database_url: str
    broker_url: str
    storage_dir: Path
    storage_url: str
    storage_cache_dir: Path
    storage_cache_mb: float
    weights_path: Path
    max_upload_mb: float
    max_batch_files: int
    max_image_pixels: int
    max_analysis_pixels: int
    image_memory_mb: float
    sample_fps: float
    max_frames: int
    threshold: float | None
    unsure_margin: float | None
    face_padding: float
    min_face_px: int
    inference_threads: int
    decode_threads: int
    sync_timeout_s: float
    sync_max_waiting: int
    max_wait_s: int
    api_threads: int
    api_connections: int
    client_timeout_s: float
    max_segments: int
    stale_after_s: float
    requeue_after_s: float
    job_deadline_s: float
    sweep_interval_s: float
    retention_hours: float
    api_keys: tuple[str, ...]
    rate_limit_per_minute: int
    max_active_jobs_per_key: int
    max_queued_jobs: int
    cors_origins: tuple[str, ...]
    webhook_secret: str
    webhook_allowed_hosts: tuple[str, ...]
    webhook_max_attempts: int
    webhook_retry_base_s: float
    webhook_timeout_s: float
    webhook_progress_interval_s: float
    engine: str
    purify_views: int
    segment_seconds: float
    c2pa_trust_anchors: Path | None
    host: str
    port: int

    @classmethod
    def from_env(cls) -> Settings:
        var_dir = Path(_env("RRR_VAR_DIR", "var")).absolute()
        threshold = _env("RRR_THRESHOLD", "")
        unsure_margin = _env("RRR_UNSURE_MARGIN", "")
        return cls(
            var_dir=var_dir,
            database_url=_env("RRR_DATABASE_URL", f"sqlite:///{var_dir / 'rrr.db'}"),
            broker_url=_env("RRR_BROKER_URL", "filesystem://localhost/"),
            storage_dir=Path(_env("RRR_STORAGE_DIR", str(var_dir / "uploads"))).absolute(),
            # s3://bucket/prefix: an object store instead of RRR_STORAGE_DIR (shared/s3storage.py)
            storage_url=_env("RRR_STORAGE_URL", ""),
            # with an object store: this host's copies of videos, shared by its worker processes
            storage_cache_dir=Path(
                _env("RRR_STORAGE_CACHE_DIR", str(var_dir / "cache"))
            ).absolute(),
            storage_cache_mb=float(_env("RRR_STORAGE_CACHE_MB", "4096")),
            weights_path=Path(_env("RRR_WEIGHTS_PATH", str(DEFAULT_WEIGHTS))).absolute(),
            max_upload_mb=float(_env("RRR_MAX_UPLOAD_MB", "500")),
            max_batch_files=int(_env("RRR_MAX_BATCH_FILES", "100")),
            max_image_pixels=int(_env("RRR_MAX_IMAGE_PIXELS", "40000000")),
            # larger images are analysed at a reduced size (JPEG: decoded reduced)
            max_analysis_pixels=int(_env("RRR_MAX_ANALYSIS_PIXELS", "12000000")),
            image_memory_mb=float(_env("RRR_IMAGE_MEMORY_MB", "256")),
            sample_fps=float(_env("RRR_SAMPLE_FPS", "1.0")),
            max_frames=int(_env("RRR_MAX_FRAMES", "7200")),
            threshold=float(threshold) if threshold else None,
            # half-width of the UNCERTAIN band around the threshold; default: the model's own
            unsure_margin=float(unsure_margin) if unsure_margin else None,
            # YuNet's boxes are taller than Haar's were; 0.05 frames faces closest to the tight
            # DFDC crops the model learned from (shared videos: 8/9 right at 0.05, 7/9 at 0.15)
            face_padding=float(_env("RRR_FACE_PADDING", "0.05")),
            # faces narrower or shorter than this are UNCERTAIN, not judged (docs/robustness.md)
            min_face_px=int(_env("RRR_MIN_FACE_PX", "40")),
            inference_threads=int(_env("RRR_INFERENCE_THREADS", "0")),
            # video decoder threads; 0 = one per CPU core (see docs/video-decoding.md)
            decode_threads=int(_env("RRR_DECODE_THREADS", "0")),
            sync_timeout_s=float(_env("RRR_SYNC_TIMEOUT_S", "120")),
            # /predict requests waiting at once per API process; keep it below RRR_API_THREADS
            sync_max_waiting=int(_env("RRR_SYNC_MAX_WAITING", "8")),
            # the longest "Prefer: wait=N" on the v1 API is honoured for
            max_wait_s=int(_env("RRR_MAX_WAIT_S", "60")),
            api_threads=int(_env("RRR_API_THREADS", "16")),
            api_connections=int(_env("RRR_API_CONNECTIONS", "1000")),
            client_timeout_s=float(_env("RRR_CLIENT_TIMEOUT_S", "60")),
            max_segments=int(_env("RRR_MAX_SEGMENTS", "128")),
            stale_after_s=float(_env("RRR_STALE_AFTER_S", "300")),
            requeue_after_s=float(_env("RRR_REQUEUE_AFTER_S", "600")),
            job_deadline_s=float(_env("RRR_JOB_DEADLINE_S", "14400")),
            sweep_interval_s=float(_env("RRR_SWEEP_INTERVAL_S", "30")),
            retention_hours=float(_env("RRR_RETENTION_HOURS", "168")),
            api_keys=_list(_env("RRR_API_KEYS", "")),
            rate_limit_per_minute=int(_env("RRR_RATE_LIMIT_PER_MINUTE", "120")),
            max_active_jobs_per_key=int(_env("RRR_MAX_ACTIVE_JOBS_PER_KEY", "200")),
            max_queued_jobs=int(_env("RRR_MAX_QUEUED_JOBS", "10000")),
            cors_origins=_list(_env("RRR_CORS_ORIGINS", "")),
            # Standard Webhooks signing secret (whsec_<base64>); none: webhooks are refused
            webhook_secret=_env("RRR_WEBHOOK_SECRET", ""),
            # host names, IP addresses or networks webhooks may go to; none: any public host
            webhook_allowed_hosts=_list(_env("RRR_WEBHOOK_ALLOWED_HOSTS", "")),
            webhook_max_attempts=int(_env("RRR_WEBHOOK_MAX_ATTEMPTS", "6")),
            webhook_retry_base_s=float(_env("RRR_WEBHOOK_RETRY_BASE_S", "5")),
            webhook_timeout_s=float(_env("RRR_WEBHOOK_TIMEOUT_S", "5")),
            webhook_progress_interval_s=float(_env("RRR_WEBHOOK_PROGRESS_INTERVAL_S", "5")),
            engine=_env("RRR_ENGINE", "onnx"),
            purify_views=int(_env("RRR_PURIFY_VIEWS", "0")),
            segment_seconds=float(_env("RRR_SEGMENT_SECONDS", "60")),
            # PEM bundle of the C2PA signers' roots this deployment trusts; none: a sound
            # manifest reads valid but untrusted (docs/provenance.md)
            c2pa_trust_anchors=(
                Path(_env("RRR_C2PA_TRUST_ANCHORS", "")).absolute()
                if _env("RRR_C2PA_TRUST_ANCHORS", "")
                else None
            ),
            host=_env("RRR_HOST", "127.0.0.1"),
            port=int(_env("RRR_PORT", "8000")),
        )

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def model_file(self) -> Path:
        """The file the engine loads: the ONNX file beside the checkpoint, or the checkpoint."""
        if self.engine == "onnx":
            return self.weights_path.with_suffix(".onnx")
        return self.weights_path

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    def as_public_dict(self) -> dict[str, str]:
        """Settings as strings, with credentials in URLs masked (for logs and `rrr config`)."""
        out = {}
        for f in fields(self):
            value = str(getattr(self, f.name))
            if f.name == "api_keys":
                value = f"{len(self.api_keys)} key(s)"
            if f.name == "webhook_secret":
                value = "set" if self.webhook_secret else "not set"
            if f.name.endswith("_url") and "@" in value:
                scheme, rest = value.split("://", 1)
                value = f"{scheme}://***@{rest.split('@', 1)[1]}"
            out[f.name] = value
        return out


settings = Settings.from_env()


def reload_settings() -> Settings:
    """Re-read the environment into the shared ``settings`` object (tests and the CLI use this)."""
    global settings
    fresh = Settings.from_env()
    for f in fields(Settings):
        object.__setattr__(settings, f.name, getattr(fresh, f.name))
    return settings
