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
                    "heatmap": {
                        "type": "boolean",
                        "default": False,
                        "description": "image only: make the heatmap with the verdict (by "
                        "default it is made when GET .../heatmap first asks for it)",
                    },
                },
            }
        }
    },
}

_VERDICT: dict[str, Any] = {
    "prediction": _ref("Prediction"),
    "probability_fake": {"type": "number", "nullable": True},
    "probability_real": {"type": "number", "nullable": True},
    "confidence": {"type": "number", "nullable": True},
    "threshold": {"type": "number"},
    "unsure_margin": {"type": "number"},
}
_TEXT = {"type": "string", "nullable": True}
_PROVENANCE: dict[str, Any] = {
    "type": "object",
    "description": "What the file itself declares about its origin: Content Credentials (C2PA), "
    "IPTC/XMP DigitalSourceType, generator traces in PNG text and EXIF (docs/provenance.md). "
    "Absence of metadata proves nothing; unsigned metadata can be forged.",
    "properties": {
        "status": {
            "type": "string",
            "enum": ["none", "found", "invalid", "unreadable"],
            "description": "invalid: a C2PA manifest failed validation (changed after signing); "
            "unreadable: a manifest or packet could not be read within the limits",
        },
        "verified": {
            "type": "boolean",
            "description": "a C2PA manifest's signature and hash bindings validated",
        },
        "trusted": {
            "type": "boolean",
            "description": "moreover its signer chains to a configured trust anchor "
            "(RRR_C2PA_TRUST_ANCHORS)",
        },
        "declared_ai_generated": {
            "type": "boolean",
            "nullable": True,
            "description": "true: a validated manifest or unsigned metadata declares generative "
            "AI; false: it declares a source without it; null: nothing usable declared",
        },
        "declared_source_type": {**_TEXT, "description": "the IPTC digital source type code"},
        "declared_source_category": {
            "type": "string",
            "nullable": True,
            "enum": [
                "generative_ai",
                "synthetic",
                "composite",
                "digital_creation",
                "edited",
                "capture",
                "unknown",
                None,
            ],
        },
        "declared_generator": _TEXT,
        "declaration_evidence": {
            "type": "string",
            "nullable": True,
            "enum": ["signed", "unsigned", None],
        },
        "declared_by": {
            "type": "array",
            "items": {"type": "string", "enum": ["c2pa", "xmp", "png_text", "exif"]},
        },
        "c2pa": {
            "type": "object",
            "nullable": True,
            "properties": {
                "state": {"type": "string", "enum": ["trusted", "valid", "invalid", "unreadable"]},
                "integrity": {"type": "boolean"},
                "trusted": {"type": "boolean"},
                "failures": {"type": "array", "items": {"type": "string"}},
                "error": _TEXT,
                "active_manifest": _TEXT,
                "manifests": {"type": "integer"},
                "claim_generator": _TEXT,
                "title": _TEXT,
                "format": _TEXT,
                "signer": {
                    "type": "object",
                    "nullable": True,
                    "properties": {k: _TEXT for k in ("issuer", "common_name", "alg", "time")},
                },
                "actions": {"type": "array", "items": {"type": "object"}},
                "ingredients": {"type": "array", "items": {"type": "object"}},
            },
        },
        "xmp": {"type": "object", "nullable": True},
        "metadata_traces": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    k: {"type": "string"} for k in ("source", "field", "generator", "value")
                },
            },
        },
        "errors": {"type": "array", "items": {"type": "string"}},
        "elapsed_ms": {
            "type": "number",
            "description": "batch items only; elsewhere it is timings_ms.provenance",
        },
        "note": {"type": "string", "description": "what provenance does not prove"},
    },
    "required": ["status", "verified", "trusted", "declared_ai_generated", "note"],
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
                "description": "Made by a worker when first asked for, then kept: 202 with "
                "Retry-After until it is ready.",
                "responses": {
                    "200": {"description": "PNG", "content": {"image/png": {}}},
                    "202": {
                        "description": "being made; ask again after Retry-After seconds",
                        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                    },
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
                    "result": {
                        "nullable": True,
                        "description": "once succeeded: an ImageResult (kind image), a "
                        "BatchResult (batch) or a VideoResult (video)",
                        "anyOf": [_ref("ImageResult"), _ref("BatchResult"), _ref("VideoResult")],
                    },
                },
            },
            "Face": {
                "type": "object",
                "properties": {
                    "box": {"type": "array", "items": {"type": "integer"}, "minItems": 4},
                    "probability_fake": {"type": "number"},
                    "prediction": _ref("Prediction"),
                },
            },
            "Prediction": {"type": "string", "enum": ["FAKE", "REAL", "UNCERTAIN", "NO_FACE"]},
            "ImageResult": {
                "type": "object",
                "properties": {
                    **_VERDICT,
                    "faces": {"type": "array", "items": _ref("Face")},
                    "width": {"type": "integer"},
                    "height": {"type": "integer"},
                    "model": {"type": "object"},
                    "timings_ms": {
                        "type": "object",
                        "additionalProperties": {"type": "number"},
                        "description": "decode, detect, infer, provenance, total, explain",
                    },
                    "heatmap": {"type": "boolean"},
                    "provenance": _ref("Provenance"),
                },
            },
            "BatchItem": {
                "type": "object",
                "description": "an image result, or an error; provenance for every stored file",
                "properties": {
                    "index": {"type": "integer"},
                    "filename": {"type": "string"},
                    **_VERDICT,
                    "faces": {"type": "array", "items": _ref("Face")},
                    "error": {"type": "object", "nullable": True},
                    "provenance": _ref("Provenance"),
                },
            },
            "BatchResult": {
                "type": "object",
                "properties": {
                    "items": {"type": "array", "items": _ref("BatchItem")},
                    "summary": {"type": "object"},
                    "threshold": {"type": "number"},
                    "model": {"type": "object"},
                },
            },
            "VideoResult": {
                "type": "object",
                "properties": {
                    **_VERDICT,
                    "aggregation": {"type": "string"},
                    "frames_total": {"type": "integer"},
                    "frames_analyzed": {"type": "integer"},
                    "frames_with_faces": {"type": "integer"},
                    "duration_s": {"type": "number"},
                    "fps": {"type": "number"},
                    "sample_fps": {"type": "number"},
                    "sampling": {"type": "string", "enum": ["exact", "keyframes"]},
                    "suspicious_segments": {"type": "array", "items": {"type": "object"}},
                    "timings_ms": {"type": "object", "additionalProperties": {"type": "number"}},
                    "provenance": _ref("Provenance"),
                },
            },
            "Provenance": _PROVENANCE,
        }
    },
}
