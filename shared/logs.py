"""Logging for every process: one JSON object per line, with the job id on every line that
concerns a job (set once per task or request through a context variable)."""

from __future__ import annotations

import json
import logging
import os
from contextvars import ContextVar
from datetime import UTC, datetime

current_job: ContextVar[str | None] = ContextVar("current_job", default=None)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "message": record.getMessage(),
        }
        job_id = current_job.get()
        if job_id:
            entry["job_id"] = job_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str | None = None) -> None:
    """Send the root logger's records to stderr as JSON lines (RRR_LOG_FORMAT=text to read
    them by eye instead)."""
    handler = logging.StreamHandler()
    if os.environ.get("RRR_LOG_FORMAT", "json") == "text":
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    else:
        handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # warnings (a library's deprecation, Celery's superuser notice) become log records too,
    # so that nothing but log lines reaches stderr
    logging.captureWarnings(True)
    root.setLevel(level or os.environ.get("RRR_LOG_LEVEL", "INFO"))
