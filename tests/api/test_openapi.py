"""The OpenAPI document: valid, typed, and describing every route of the app (and nothing else).
That it is true to the service is schemathesis's to check: tests/integration/test_schemathesis.py.
"""

from __future__ import annotations

import re

from openapi_spec_validator import validate


def _spec(client) -> dict:
    response = client.get("/v1/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def test_the_document_is_valid_openapi(client):
    spec = _spec(client)
    validate(spec)
    assert spec["openapi"].startswith("3.0")
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}


def test_every_route_is_described(app, client):
    paths = _spec(client)["paths"]
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        assert path in paths, f"{rule.rule} is not in the OpenAPI document"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in paths[path], f"{method} {rule.rule} is not described"
    described = {(p, m) for p, item in paths.items() for m in item if m != "parameters"}
    routed = {
        (re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", r.rule), m.lower())
        for r in app.url_map.iter_rules()
        for m in r.methods - {"HEAD", "OPTIONS"}
    }
    assert described == routed  # nothing described that does not exist


def test_results_and_errors_are_typed(client):
    schemas = _spec(client)["components"]["schemas"]
    for name in ("ImageResult", "BatchResult", "VideoResult", "FramePage", "Ready", "Health"):
        assert schemas[name]["properties"] and schemas[name]["required"], name
    job = schemas["Job"]
    assert {"id", "status", "progress", "expires_at", "result"} <= set(job["required"])
    assert job["additionalProperties"] is False
    upload = _spec(client)["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]
    form = upload["multipart/form-data"]["schema"]
    assert form["additionalProperties"] is False  # unknown fields are refused
    assert form["properties"]["threshold"] == {"type": "number", "minimum": 0, "maximum": 1}
