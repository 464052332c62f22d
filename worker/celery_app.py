"""The worker's Celery application: the shared one, with the worker's tasks registered.

Logging is configured on import, before Celery starts the worker, so that what Celery says
while starting (its superuser notice among them) is a log line like any other.
"""

import os
import warnings

from celery.exceptions import SecurityWarning

from shared.logs import configure_logging
from shared.queue import celery_app

configure_logging()
if os.environ.get("C_FORCE_ROOT"):
    # Celery's own switch for "root on purpose" (the image runs as root inside its container,
    # which is the isolation): its superuser warning then tells the operator nothing new
    warnings.filterwarnings("ignore", category=SecurityWarning)

celery_app.conf.update(include=["worker.tasks"])

__all__ = ["celery_app"]
