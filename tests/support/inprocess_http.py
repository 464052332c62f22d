"""Route a requests session into the Flask test client: HTTP clients (``rrr.client``,
``rrr submit``) run against the app in this process, jobs run by the workers' own tasks."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

JOB_READ = re.compile(r"^/v1/jobs/([0-9a-f]{32})$")
HEATMAP_READ = re.compile(r"^/v1/jobs/([0-9a-f]{32})/heatmap$")


class TestClientAdapter(BaseAdapter):
    """A transport adapter whose ``send`` is a request to the Flask test client. With
    ``run_jobs``, a read of a job first runs it here, and a read of a heatmap draws it (as a
    worker would have by then)."""

    def __init__(self, client, run_jobs: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self.client, self.run_jobs = client, run_jobs

    def send(self, request, **kwargs):
        url = urlsplit(request.url)
        if self.run_jobs and request.method == "GET" and (found := JOB_READ.match(url.path)):
            self.run_jobs(found.group(1))
        if self.run_jobs and request.method == "GET" and (found := HEATMAP_READ.match(url.path)):
            from worker.images import make_heatmap

            make_heatmap(found.group(1))
        answer = self.client.open(
            url.path + (f"?{url.query}" if url.query else ""),
            method=request.method,
            headers=dict(request.headers),
            data=request.body,
        )
        response = requests.Response()
        response.status_code = answer.status_code
        response.reason = answer.status.split(" ", 1)[-1]
        response.headers = CaseInsensitiveDict(answer.headers)
        response._content = answer.get_data()
        response.url, response.request = request.url, request
        return response

    def close(self) -> None:
        pass


def session_factory(client, base: str, run_jobs: Callable[[str], None] | None = None):
    """A replacement for ``requests.Session`` whose sessions send ``base``'s URLs in-process."""
    real = requests.Session

    def make() -> requests.Session:
        session = real()
        session.mount(base, TestClientAdapter(client, run_jobs))
        return session

    return make
