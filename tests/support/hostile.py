"""Hostile values for every client-supplied field that could reach SQL: job ids, cursors, query
parameters, headers and form fields. The API tests send them through the Flask test client
(SQLite); the integration tests send the same requests to a real `rrr api` on PostgreSQL."""

from __future__ import annotations

import base64
import random
from urllib.parse import quote

VALID_SHAPED_ID = "0123456789abcdef0123456789abcdef"  # a job id's shape, but no such job


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# (case id, job id as it appears in the URL, percent-encoded)
IDS = [
    ("nul-inside", "abc%00def"),
    ("nul-only", "%00"),
    ("nul-after-valid", VALID_SHAPED_ID + "%00"),
    ("nul-in-valid", VALID_SHAPED_ID[:16] + "%00" + VALID_SHAPED_ID[17:]),
    ("valid-shape-unknown", VALID_SHAPED_ID),
    ("uppercase-hex", VALID_SHAPED_ID.upper()),
    ("too-long", "a" * 5000),
    ("emoji", "%F0%9F%98%80"),
    ("sql-quote", "%27%20OR%201%3D1--"),
    ("bad-utf8", "%C0%AF%FF%FE"),
    ("percent-in-id", "%2525"),
    ("control-chars", "%01%02%1b%7f"),
]
ID_ROUTES = [
    ("get", "/v1/jobs/{}"),
    ("delete", "/v1/jobs/{}"),
    ("get", "/v1/jobs/{}/frames"),
    ("get", "/v1/jobs/{}/heatmap"),
]

_DATE = b"2024-05-01T12:00:00+00:00"
# (case id, cursor as sent, percent-encoded)
CURSORS = [
    ("offset-overflow", "MDAwMS0wMS0wMVQwMDowMDowMCsxNDowMHx4"),  # 0001-01-01T00:00:00+14:00
    ("offset-overflow-up", b64(b"9999-12-31T23:59:59-14:00|" + VALID_SHAPED_ID.encode())),
    ("nul-in-id", b64(_DATE + b"|abc\x00def")),
    ("nul-in-date", b64(b"2024-05-01T12:00:00\x00+00:00|" + VALID_SHAPED_ID.encode())),
    ("nul-raw", "%00"),
    ("nul-after-valid", b64(_DATE + b"|" + VALID_SHAPED_ID.encode()) + "%00"),
    ("no-separator", b64(_DATE)),
    ("empty-parts", b64(b"|")),
    ("naive-date", b64(b"2024-05-01T12:00:00|" + VALID_SHAPED_ID.encode())),
    ("non-hex-id", b64(_DATE + b"|zzzz")),
    ("sql-in-id", b64(_DATE + b"|' OR 1=1 --")),
    ("not-base64", "!!!***"),
    ("padding-only", "===="),
    ("not-utf8", b64(b"\xff\xfe\xfd|\x80")),
    ("non-ascii", quote("é€😀")),
    ("very-long", "A" * 10_000),
    ("nan-date", b64(b"nan|" + VALID_SHAPED_ID.encode())),
    ("huge-year", b64(b"99999-01-01T00:00:00+00:00|" + VALID_SHAPED_ID.encode())),
]

# (case id, query string): GET /v1/jobs?<query>
QUERIES = [
    ("limit-negative", "limit=-1"),
    ("limit-zero", "limit=0"),
    ("limit-float", "limit=1e3"),
    ("limit-nul", "limit=%00"),
    ("limit-huge", "limit=" + "9" * 30),
    ("limit-many-digits", "limit=" + "9" * 5000),
    ("status-nul", "status=queued%00"),
    ("status-unknown", "status=QUEUED"),
    ("kind-unknown", "kind=movie"),
    ("kind-sql", "kind=%27%3B%20DROP%20TABLE%20jobs%3B--"),
]
# GET /v1/jobs/<valid-shaped id>/frames?<query>: the id is unknown, but the query is read first
FRAME_QUERIES = [
    ("offset-negative", "offset=-1"),
    ("offset-nul", "offset=%00"),
    ("offset-huge", "offset=" + "9" * 30),
    ("frames-limit-over", "limit=100000"),
]

# (case id, form fields added to a valid image upload)
FORMS = [
    ("sample-fps-nan", {"sample_fps": "nan"}),
    ("sample-fps-inf", {"sample_fps": "inf"}),
    ("sample-fps-negative", {"sample_fps": "-1"}),
    ("sample-fps-overflow", {"sample_fps": "1e309"}),
    ("sample-fps-nul", {"sample_fps": "1\x00"}),
    ("sample-fps-too-low", {"sample_fps": "0.0001"}),
    ("max-frames-zero", {"max_frames": "0"}),
    ("max-frames-float", {"max_frames": "1.5"}),
    ("max-frames-huge", {"max_frames": "9" * 40}),
    ("threshold-above-one", {"threshold": "2"}),
    ("threshold-negative", {"threshold": "-0.1"}),
    ("sampling-nul", {"sampling": "exact\x00"}),
    ("sampling-unknown", {"sampling": "EXACT"}),
    ("webhook-events-without-url", {"webhook_events": "completed"}),
    ("webhook-events-empty", {"webhook_events": ""}),
]

# (case id, headers on a valid image upload)
HEADERS = [
    ("idempotency-key-too-long", {"Idempotency-Key": "k" * 121}),
    ("idempotency-key-control", {"Idempotency-Key": "key\x01\x1b"}),
    ("idempotency-key-non-ascii", {"Idempotency-Key": "clé-€"}),
]


def requests_to_send() -> list[tuple[str, str, str]]:
    """(case id, method, URL path with query) for every non-upload case."""
    out = []
    for case, job_id in IDS:
        for method, route in ID_ROUTES:
            suffix = route.rsplit("}", 1)[1].strip("/") or "job"
            out.append((f"id-{case}-{method}-{suffix}", method, route.format(job_id)))
    out += [(f"cursor-{case}", "get", f"/v1/jobs?cursor={c}") for case, c in CURSORS]
    out += [(f"query-{case}", "get", f"/v1/jobs?{q}") for case, q in QUERIES]
    out += [
        (f"frames-{case}", "get", f"/v1/jobs/{VALID_SHAPED_ID}/frames?{q}")
        for case, q in FRAME_QUERIES
    ]
    out.append(("double-slash", "get", "/v1//jobs"))
    out.append(("double-slash-id", "get", f"/v1//jobs/{VALID_SHAPED_ID}"))
    return out


def fuzzed_cursors(count: int, seed: int = 14) -> list[str]:
    """Random cursors: random bytes, and valid cursors with bytes flipped, base64-encoded."""
    rng = random.Random(seed)
    valid = _DATE + b"|" + VALID_SHAPED_ID.encode()
    out = []
    for i in range(count):
        if i % 2:
            raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 90)))
        else:
            raw = bytearray(valid)
            for _ in range(rng.randrange(1, 4)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
            raw = bytes(raw)
        out.append(b64(raw))
    return out


def fuzzed_ids(count: int, seed: int = 41) -> list[str]:
    """Random job ids, percent-encoded: any byte, any length up to 80."""
    rng = random.Random(seed)
    return [
        "".join(f"%{rng.randrange(256):02X}" for _ in range(rng.randrange(1, 80)))
        for _ in range(count)
    ]
