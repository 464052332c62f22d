"""The production HTTP server: waitress, set up so that slow or stalled clients cannot starve it.

Waitress reads every request completely (headers and body; bodies above 512 KB are spooled to a
temporary file) in its event loop before a worker thread runs the app. A client that stalls
mid-body holds a connection slot, never a thread, and is dropped after RRR_CLIENT_TIMEOUT_S
of silence. The threads (RRR_API_THREADS) only ever run requests that have fully arrived; the
synchronous /predict endpoints may hold at most RRR_SYNC_MAX_WAITING of them (api/predict.py).
"""

from __future__ import annotations

from flask import Flask

from shared.config import settings

# the most bytes waitress accepts in a body: the upload limit plus room for the multipart framing
# (Flask answers 413 in the JSON error shape for anything over the upload limit itself)
BODY_MARGIN_BYTES = 1 << 20


def serve(app: Flask, host: str, port: int, threads: int | None = None) -> None:
    """Serve ``app`` until interrupted."""
    from waitress import serve as waitress_serve

    waitress_serve(
        app,
        host=host,
        port=port,
        threads=threads or settings.api_threads,
        connection_limit=settings.api_connections,
        channel_timeout=max(1, round(settings.client_timeout_s)),
        # poll() rather than select(): more than 1,024 open connections stay usable
        asyncore_use_poll=True,
        max_request_body_size=max(1 << 30, settings.max_upload_bytes + BODY_MARGIN_BYTES),
        ident="rrr",
    )
