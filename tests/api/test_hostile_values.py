"""Hostile values in every field that could reach SQL (ids, cursors, query parameters, headers,
form fields): each is answered with a clean 4xx in the JSON error shape before any query runs.
The same requests go to a real API on PostgreSQL in tests/integration/test_limits.py."""

from __future__ import annotations

import io

import pytest

from tests.support import hostile, media

REQUESTS = hostile.requests_to_send()


def _clean(response, allowed: tuple[int, ...]) -> dict:
    body = response.get_data(as_text=True)
    assert response.status_code in allowed, (response.status_code, body[:300])
    assert response.mimetype == "application/json", body[:300]
    if response.status_code >= 400:
        error = response.get_json()["error"]
        assert error["code"] and error["message"]
        assert "Traceback" not in body and "<html" not in body.lower()
    return response.get_json()


@pytest.mark.parametrize(("case", "method", "url"), REQUESTS, ids=[r[0] for r in REQUESTS])
def test_hostile_value_is_a_clean_4xx(client, case, method, url):
    response = client.open(url, method=method.upper())
    _clean(response, (400, 404))


def test_crafted_cursor_offset_overflow_is_400(client):
    response = client.get("/v1/jobs?cursor=MDAwMS0wMS0wMVQwMDowMDowMCsxNDowMHx4")
    assert _clean(response, (400,))["error"]["code"] == "invalid_cursor"


@pytest.mark.parametrize("route", ["/v1/jobs/abc%00def", "/v1/jobs/abc%00def/frames"])
def test_nul_byte_in_id_is_404(client, route):
    assert _clean(client.get(route), (404,))["error"]["code"] == "job_not_found"
    assert _clean(client.delete("/v1/jobs/abc%00def"), (404,))["error"]["code"] == "job_not_found"


def test_fuzzed_cursors_never_fail_the_server(client):
    for cursor in hostile.fuzzed_cursors(300):
        _clean(client.get(f"/v1/jobs?cursor={cursor}"), (200, 400))


def test_fuzzed_ids_never_fail_the_server(client):
    for job_id in hostile.fuzzed_ids(300):
        for method in ("GET", "DELETE"):
            _clean(client.open(f"/v1/jobs/{job_id}", method=method), (404, 405))
        _clean(client.get(f"/v1/jobs/{job_id}/frames"), (404,))


@pytest.mark.parametrize(("case", "fields"), hostile.FORMS, ids=[f[0] for f in hostile.FORMS])
def test_hostile_form_field_is_400(client, case, fields):
    data = {"file": (io.BytesIO(media.image_bytes()), "a.png"), **fields}
    response = client.post("/v1/jobs", data=data, content_type="multipart/form-data")
    assert _clean(response, (400,))["error"]["code"] == "invalid_field"


@pytest.mark.parametrize(("case", "headers"), hostile.HEADERS, ids=[h[0] for h in hostile.HEADERS])
def test_hostile_header_is_400(client, case, headers):
    data = {"file": (io.BytesIO(media.image_bytes()), "a.png")}
    response = client.post(
        "/v1/jobs", data=data, headers=headers, content_type="multipart/form-data"
    )
    assert _clean(response, (400,))["error"]["code"] == "invalid_header"


def test_a_real_cursor_still_pages(client):
    for _ in range(3):
        data = {"file": (io.BytesIO(media.image_bytes()), "a.png")}
        assert client.post("/v1/jobs", data=data).status_code == 202
    first = client.get("/v1/jobs?limit=2").get_json()
    assert first["next_cursor"]
    second = client.get(f"/v1/jobs?limit=2&cursor={first['next_cursor']}").get_json()
    assert {j["id"] for j in first["jobs"]}.isdisjoint(j["id"] for j in second["jobs"])
