"""The OpenAPI 3 description served at /v1/openapi.json (kept beside the routes it describes)."""

from __future__ import annotations

from typing import Any


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    str(code): _json(_ref("Error"), text)
    for code, text in [
        (400, "bad request (missing or invalid field)"),
        (404, "no such job"),
        (409, "conflict (idempotency key reused, job not cancelable)"),
        (413, "upload too large"),
        (415, "unsupported media type (decided from the bytes, not the name)"),
        (422, "media could not be decoded"),
        (503, "database or broker unavailable"),
    ]
}
_JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
_UPLOAD = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "one image or video",
                    },
                    "files": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "description": "several images: a batch job",
                    },
                    "sample_fps": {"type": "number", "default": 1.0, "description": "video only"},
                    "sampling": {
                        "type": "string",
                        "enum": ["exact", "keyframes"],
                        "default": "exact",
                        "description": "video only: exact = the frame at each sample time; "
                        "keyframes = the nearest keyframe at or before it (faster, fewer frames)",
                    },
                    "max_frames": {"type": "integer", "description": "video only"},
                    "threshold": {
                        "type": "number",
                        "description": "P(FAKE) at or above which a face is FAKE "
                        "(default: the model's)",
                    },
                },
            }
        }
    },
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "Real Recognize Real",
        "version": "1",
        "description": "Asynchronous deepfake detection for face images, batches and videos.",
    },
    "paths": {
        "/v1/jobs": {
            "post": {
                "summary": "Submit an image, a batch of images or a video",
                "parameters": [
                    {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}
                ],
                "requestBody": _UPLOAD,
                "responses": {
                    "202": {
                        **_json(_ref("Job"), "queued; poll the Location header"),
                        "headers": {"Location": {"schema": {"type": "string"}}},
                    },
                    "200": _json(_ref("Job"), "the job an earlier request with this key created"),
                    **_ERRORS,
                },
            },
            "get": {
                "summary": "List jobs, newest first",
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 20}},
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                    {"name": "status", "in": "query", "schema": _ref("Status")},
                    {"name": "kind", "in": "query", "schema": _ref("Kind")},
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "jobs": {"type": "array", "items": _ref("Job")},
                                "next_cursor": {"type": "string", "nullable": True},
                            },
                        },
                        "a page of jobs",
                    ),
                    "400": _ERRORS["400"],
                },
            },
        },
        "/v1/jobs/{job_id}": {
            "parameters": [_JOB_ID],
            "get": {
                "summary": "Read a job (status, progress, result)",
                "responses": {"200": _json(_ref("Job"), "the job"), "404": _ERRORS["404"]},
            },
            "delete": {
                "summary": "Cancel a queued or running job; its upload is deleted",
                "responses": {
                    "200": _json(_ref("Job"), "the canceled job"),
                    "404": _ERRORS["404"],
                    "409": _ERRORS["409"],
                },
            },
        },
        "/v1/jobs/{job_id}/frames": {
            "parameters": [_JOB_ID],
            "get": {
                "summary": "Per-frame results of a video job, paginated",
                "parameters": [
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "default": 0}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 100}},
                ],
                "responses": {"200": {"description": "frames"}, "404": _ERRORS["404"]},
            },
        },
        "/v1/jobs/{job_id}/heatmap": {
            "parameters": [_JOB_ID],
            "get": {
                "summary": "Image jobs: the image with a Grad-CAM overlay on every face",
                "responses": {
                    "200": {"description": "PNG", "content": {"image/png": {}}},
                    "404": _ERRORS["404"],
                    "409": _ERRORS["409"],
                },
            },
        },
        "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "ok"}}}},
        "/readyz": {
            "get": {
                "summary": "Readiness: database, broker and weights",
                "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}},
            }
        },
        **{
            path: {
                "post": {
                    "summary": f"Prototype-compatible synchronous {what} (waits, bounded)",
                    "requestBody": _UPLOAD,
                    "responses": {
                        "200": {"description": "the verdict in the prototype's shape"},
                        "504": _json(_ref("Error"), "still running; poll the Location"),
                        **_ERRORS,
                    },
                }
            }
            for path, what in [
                ("/predict", "image check"),
                ("/predict/batch", "batch check"),
                ("/predict/video", "video check"),
            ]
        },
    },
    "components": {
        "schemas": {
            "Status": {
                "type": "string",
                "enum": ["queued", "running", "succeeded", "failed", "canceled"],
            },
            "Kind": {"type": "string", "enum": ["image", "batch", "video"]},
            "Error": {
                "type": "object",
                "properties": {
                    "error": {
                        "type": "object",
                        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                        "required": ["code", "message"],
                    }
                },
                "required": ["error"],
            },
            "Job": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "kind": _ref("Kind"),
                    "status": _ref("Status"),
                    "progress": {
                        "type": "object",
                        "properties": {"done": {"type": "integer"}, "total": {"type": "integer"}},
                    },
                    "created_at": {"type": "string", "format": "date-time"},
                    "started_at": {"type": "string", "format": "date-time", "nullable": True},
                    "finished_at": {"type": "string", "format": "date-time", "nullable": True},
                    "error": {"type": "object", "nullable": True},
                    "result": {"type": "object", "nullable": True},
                },
            },
        }
    },
}
