"""The API's multipart decoder finds exactly what werkzeug's own finds (api/multipart.py)."""

from __future__ import annotations

import io
import random
import re

import pytest
from werkzeug import formparser
from werkzeug.sansio.multipart import MultipartDecoder

from api.multipart import BoundarySearch, Decoder

LINE_BREAK = b"(?:\r\n|\n|\r)"


def werkzeug_patterns(boundary: bytes) -> tuple[re.Pattern, re.Pattern]:
    decoder = MultipartDecoder(boundary)
    return decoder.preamble_re, decoder.boundary_re


def fragments(boundary: bytes) -> list[bytes]:
    return [
        b"--" + boundary,
        b"--" + boundary + b"--",
        boundary,
        b"--",
        b"-",
        b"\r\n",
        b"\n",
        b"\r",
        b" ",
        b"\t",
        b"x",
        b"\x00\xff",
        b'Content-Disposition: form-data; name="file"',
    ]


@pytest.mark.parametrize("seed", range(40))
def test_search_matches_werkzeugs_patterns(seed: int) -> None:
    rng = random.Random(seed)
    boundary = rng.choice([b"b", b"abc", b"----WebKitFormBoundary7MA4YWxkTrZu0gW", b"a.b+c"])
    preamble_re, boundary_re = werkzeug_patterns(boundary)
    ours = (BoundarySearch(boundary, False), BoundarySearch(boundary, True))
    parts = fragments(boundary)
    matched = 0
    for _ in range(300):
        data = b"".join(rng.choice(parts) for _ in range(rng.randint(0, 12)))
        buffer = bytearray(data) if rng.random() < 0.5 else data
        pos = rng.randint(0, len(data))
        for theirs, mine in zip((preamble_re, boundary_re), ours, strict=True):
            expected = theirs.search(buffer, pos)
            found = mine.search(buffer, pos)
            if expected is None:
                assert found is None, (data, pos)
            else:
                assert found is not None, (data, pos)
                assert (found.start(), found.end(), found.group(1)) == (
                    expected.start(),
                    expected.end(),
                    expected.group(1),
                ), (data, pos)
                matched += 1
    assert matched > 20  # the cases compared include many matches, not only misses


def encode(boundary: bytes, fields: list[tuple[str, str | None, bytes]], line: bytes) -> bytes:
    out = io.BytesIO()
    for name, filename, value in fields:
        out.write(b"--" + boundary + line)
        disposition = f'Content-Disposition: form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out.write(disposition.encode() + line + line + value + line)
    out.write(b"--" + boundary + b"--" + line)
    return out.getvalue()


def parse(body: bytes, boundary: bytes, buffer_size: int):
    parser = formparser.MultiPartParser(buffer_size=buffer_size)
    form, files = parser.parse(io.BytesIO(body), boundary, len(body))
    return (
        sorted(form.items(multi=True)),
        sorted((k, f.filename, f.read()) for k, f in files.items(multi=True)),
    )


@pytest.mark.parametrize("seed", range(20))
def test_forms_parse_the_same(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    rng = random.Random(seed)
    boundary = b"x" * rng.randint(1, 5) + str(seed).encode()
    payload = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 3000)))
    # bytes that look like a boundary inside a file must stay in the file
    payload += b"\r\n--" + boundary[:-1] + b"\r\n--" + boundary + b"x"
    fields = [("threshold", None, b"0.5"), ("file", "a.png", payload), ("files", "b", b"")]
    body = encode(boundary, fields, rng.choice([b"\r\n", b"\n"]))
    size = rng.choice([7, 64, 1024, 65536])
    monkeypatch.setattr(formparser, "MultipartDecoder", MultipartDecoder)  # werkzeug's own
    expected = parse(body, boundary, size)
    monkeypatch.setattr(formparser, "MultipartDecoder", Decoder)
    assert parse(body, boundary, size) == expected
    assert expected[1][0] == ("file", "a.png", payload)


def test_the_app_uses_it() -> None:
    from api import create_app

    create_app({"TESTING": True})
    assert formparser.MultipartDecoder is Decoder
