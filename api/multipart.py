"""A cheaper multipart decoder for werkzeug: the same parsing, without compiling two regular
expressions per request.

werkzeug's ``MultipartDecoder`` compiles two patterns that embed each request's boundary; as
every client picks a new random boundary, Python's pattern cache never helps, and compiling them
took about 0.6 ms per upload here (some 40% of the app's own CPU per image submission, more
than its SQL). ``BoundarySearch`` finds the same matches with ``bytes.find`` and one pattern
compiled once; everything else is werkzeug's own decoder. ``install`` puts it in place of
werkzeug's for form parsing in this process (the API calls it when it builds the app).
"""

from __future__ import annotations

import re

from werkzeug import formparser
from werkzeug.sansio.multipart import MultipartDecoder

# what may follow ``--boundary``: ``--`` (the last one) with optional blanks and line break,
# or blanks then a line break; the same alternatives, in the same order, as werkzeug's patterns
_AFTER_BOUNDARY = re.compile(rb"--[^\S\n\r]*(?:\r\n|\n|\r)?|[^\S\n\r]*(?:\r\n|\n|\r)")


class BoundaryMatch:
    """The parts of an ``re.Match`` the decoder uses: start(), end() and group(1)."""

    __slots__ = ("_start", "_end", "_after")

    def __init__(self, start: int, end: int, after: bytes) -> None:
        self._start, self._end, self._after = start, end, after

    def start(self) -> int:
        return self._start

    def end(self) -> int:
        return self._end

    def group(self, index: int) -> bytes:
        if index != 1:
            raise IndexError(index)
        return self._after


class BoundarySearch:
    """``search`` as werkzeug's compiled ``preamble_re`` (``line_break_required`` False) or
    ``boundary_re`` (True) would answer it: the leftmost match of an optional (or required)
    line break, ``--boundary`` and what may follow it."""

    def __init__(self, boundary: bytes, line_break_required: bool) -> None:
        self.marker = b"--" + boundary
        self.required = line_break_required

    def search(self, data: bytes | bytearray, pos: int = 0) -> BoundaryMatch | None:
        marker, find = self.marker, data.find
        at = find(marker, pos)
        while at != -1:
            if at - 2 >= pos and data[at - 2 : at] == b"\r\n":
                start = at - 2
            elif at - 1 >= pos and data[at - 1 : at] in (b"\n", b"\r"):
                start = at - 1
            elif not self.required:
                start = at
            else:
                at = find(marker, at + 1)
                continue
            after = _AFTER_BOUNDARY.match(data, at + len(marker))
            if after is not None:
                return BoundaryMatch(start, after.end(), after.group(0))
            at = find(marker, at + 1)
        return None


class Decoder(MultipartDecoder):
    """werkzeug's decoder with the two per-boundary patterns replaced by ``BoundarySearch``."""

    def __init__(
        self,
        boundary: bytes,
        max_form_memory_size: int | None = None,
        *,
        max_parts: int | None = None,
    ) -> None:
        # the base class with an empty boundary: its patterns are then always the same ones,
        # found in Python's pattern cache, and are replaced right after
        super().__init__(b"", max_form_memory_size, max_parts=max_parts)
        self.boundary = boundary
        self.preamble_re = BoundarySearch(boundary, line_break_required=False)  # type: ignore[assignment]
        self.boundary_re = BoundarySearch(boundary, line_break_required=True)  # type: ignore[assignment]


def install() -> None:
    """Parse multipart forms with ``Decoder`` in this process (werkzeug's form parser looks
    the decoder up in its module when it parses a form)."""
    if getattr(formparser, "MultipartDecoder", None) is MultipartDecoder:
        formparser.MultipartDecoder = Decoder  # type: ignore[misc]
