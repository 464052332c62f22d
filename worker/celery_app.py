"""The worker's Celery application: the shared one, with the worker's tasks registered."""

from shared.queue import celery_app

celery_app.conf.update(include=["worker.tasks"])

__all__ = ["celery_app"]
