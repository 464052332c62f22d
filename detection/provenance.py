"""Provenance of an image or video: what the file itself declares about where it came from.

Three sources are read, each within fixed limits (the module constants below):

- Content Credentials (C2PA): the manifest store is read and validated by the official bindings
  (``c2pa-python``), offline: no remote manifest and no OCSP fetch. Reported apart: *integrity*
  (the claim signature and every hash binding check out: the bytes are the ones that were signed)
  and *trust* (the signing certificate chains to an anchor the deployment configured; none is
  configured by default, so a sound manifest reads ``valid``, not ``trusted``).
- IPTC/XMP: ``Iptc4xmpExt:DigitalSourceType`` (every IPTC digital source type code, bare or as a
  ``http://cv.iptc.org/newscodes/digitalsourcetype/...`` URI), ``Iptc4xmpExt:AISystemUsed`` and
  ``xmp:CreatorTool``. Parsed with defusedxml, document type declarations refused.
- Generator traces in ordinary metadata: PNG text chunks holding generation parameters, EXIF
  ``Software``/``Make``/``Model`` naming a generator, EXIF ``UserComment`` holding parameters.
  The known generators and fields live in ``generators.json`` beside this module.

:func:`read_provenance` never raises: a malformed, oversized or hostile manifest or packet gives
``status: "unreadable"`` with a reason in ``errors``. Absence of metadata proves nothing: it is
easily stripped, and XMP and metadata traces are unsigned, so they can be forged as easily.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

# ---------------------------------------------------------------------------------------------
# Limits: every read below is bounded by one of these.

#: a C2PA manifest store larger than this is not handed to the library ("unreadable")
MAX_MANIFEST_BYTES = 16 << 20
#: bytes read from the start (and, for larger files, from the end) of the file to find an XMP
#: packet in containers without a fixed XMP location (TIFF, HEIF/AVIF, MP4, GIF...)
XMP_SCAN_BYTES = 1 << 20
#: an XMP packet larger than this is not parsed ("unreadable")
MAX_XMP_BYTES = 512 << 10
#: XML elements visited in one XMP packet
MAX_XMP_ELEMENTS = 20_000
#: PNG chunks (or RIFF chunks, JPEG segments, ISO BMFF top-level boxes) walked before giving up
MAX_PNG_CHUNKS = 4096
MAX_RIFF_CHUNKS = 1024
MAX_JPEG_SEGMENTS = 1024
MAX_BMFF_BOXES = 1024
#: a PNG text chunk larger than this (as stored) is skipped; inflated text is cut at this size
MAX_TEXT_CHUNK_BYTES = 1 << 20
#: text read from all PNG text chunks together
MAX_TEXT_TOTAL_BYTES = 4 << 20
#: an EXIF block larger than this is not parsed
MAX_EXIF_BYTES = 1 << 20
#: manifests followed from the active one through its ingredients; actions and ingredients kept
MAX_MANIFESTS = 64
MAX_ACTIONS = 256
MAX_INGREDIENTS = 64
#: generator traces kept, and characters kept of each metadata value shown
MAX_TRACES = 32
EXCERPT_CHARS = 200
#: wall-clock budget, checked between stages and while walking chunks; the C2PA library's own
#: work (bounded by MAX_MANIFEST_BYTES; for video, hashing the file) cannot be interrupted
TIME_BUDGET_S = 0.5

NOTE = (
    "Absence of provenance metadata proves nothing: it is often stripped. Unsigned metadata "
    "(XMP, PNG text, EXIF) can be forged. A valid signature says who signed the file and that it "
    "has not changed since, not that its content is true."
)

IPTC_PREFIX = "http://cv.iptc.org/newscodes/digitalsourcetype/"
C2PA_SOURCE_PREFIX = "http://c2pa.org/digitalsourcetype/"

#: IPTC digital source types (cv.iptc.org/newscodes/digitalsourcetype, retired codes included):
#: code -> (category, declares generative AI: True, declares no generative AI: False, or None)
DIGITAL_SOURCE_TYPES: dict[str, tuple[str, bool | None]] = {
    "trainedAlgorithmicMedia": ("generative_ai", True),
    "compositeWithTrainedAlgorithmicMedia": ("generative_ai", True),
    "algorithmicMedia": ("synthetic", None),
    "compositeSynthetic": ("synthetic", None),
    "dataDrivenMedia": ("synthetic", None),
    "virtualRecording": ("synthetic", None),
    "softwareImage": ("synthetic", None),  # retired
    "composite": ("composite", None),
    "digitalCreation": ("digital_creation", False),
    "digitalArt": ("digital_creation", False),  # retired
    "humanEdits": ("edited", False),
    "minorHumanEdits": ("edited", False),  # retired
    "algorithmicallyEnhanced": ("edited", False),
    "digitalCapture": ("capture", False),
    "computationalCapture": ("capture", False),
    "negativeFilm": ("capture", False),
    "positiveFilm": ("capture", False),
    "print": ("capture", False),
    "screenCapture": ("capture", False),
    "compositeCapture": ("capture", False),
}
_CODES_LOWER = {code.lower(): code for code in DIGITAL_SOURCE_TYPES}
#: which declaration names the file's source when several do (higher wins)
_CATEGORY_RANK = {
    "generative_ai": 6,
    "synthetic": 5,
    "composite": 4,
    "digital_creation": 3,
    "edited": 2,
    "capture": 1,
    "unknown": 0,
}

NS_IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
NS_XMP = "http://ns.adobe.com/xap/1.0/"
NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_DCTERMS = "http://purl.org/dc/terms/"

_C2PA_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")
_XMP_UUID = bytes.fromhex("be7acfcb97a942e89c71999491e3afac")
_JPEG_XMP = b"http://ns.adobe.com/xap/1.0/\x00"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

Source = bytes | bytearray | memoryview | str | os.PathLike


# ---------------------------------------------------------------------------------------------
# The result


@dataclasses.dataclass
class Provenance:
    """What a file declares about its origin. ``as_dict()`` gives the JSON shape.

    ``status``: ``none`` (nothing found), ``found`` (something found, nothing invalid),
    ``invalid`` (a C2PA manifest failed validation: tampered or broken), ``unreadable`` (a
    manifest or packet was present but could not be read within the limits; whatever was read
    is still reported). ``verified``: a C2PA manifest's signature and hash bindings validated.
    ``trusted``: moreover its signer chains to a configured trust anchor.
    ``declared_ai_generated``: true when a validly signed manifest or unsigned metadata declares
    generative AI, false when it declares a source without it (a camera capture, human edits),
    null when nothing usable is declared. ``declaration_evidence`` says whether that declaration
    is ``signed`` (a C2PA manifest that validated) or ``unsigned`` (XMP, PNG text, EXIF), and
    ``declared_by`` lists where it was found. An invalid manifest declares nothing here.
    """

    status: str = "none"
    verified: bool = False
    trusted: bool = False
    declared_ai_generated: bool | None = None
    declared_source_type: str | None = None
    declared_source_category: str | None = None
    declared_generator: str | None = None
    declaration_evidence: str | None = None
    declared_by: list[str] = dataclasses.field(default_factory=list)
    c2pa: dict[str, Any] | None = None
    xmp: dict[str, Any] | None = None
    metadata_traces: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)
    elapsed_ms: float = 0.0
    note: str = NOTE

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class _Declaration:
    source: str  # c2pa, xmp, png_text, exif
    signed: bool
    ai: bool | None
    category: str
    code: str | None = None
    generator: str | None = None


@dataclasses.dataclass
class _Container:
    """What a walk over the file's structure found (formats with fixed metadata locations)."""

    mime: str | None = None
    manifest_bytes: int = 0
    has_manifest: bool | None = None  # None: this format is not walked, ask the library
    xmp: bytes | None = None
    xmp_searched: bool = False  # True: the format has a fixed XMP place, no free scan needed
    exif: bytes | None = None
    texts: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)


class _OutOfTime(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Entry point


def read_provenance(
    source: Source,
    mime: str | None = None,
    *,
    trust_anchors: str | None = None,
    time_budget_s: float = TIME_BUDGET_S,
) -> Provenance:
    """Read the provenance of ``source`` (the file's bytes, or a path; a path is read in bounded
    pieces, never whole, so a long video costs no memory). ``mime`` is a hint used when the
    bytes do not say what they are. ``trust_anchors``: PEM certificates whose signers count as
    trusted. Never raises."""
    t0 = time.perf_counter()
    result = Provenance()
    try:
        with _open(source) as (fh, size):
            _Reading(fh, size, mime, trust_anchors, t0 + time_budget_s, result).run()
    except Exception as exc:  # the last line of defence: a reader must never fail a job
        result.status = "unreadable"
        result.errors.append(f"provenance: {_describe(exc)}")
    result.elapsed_ms = round((time.perf_counter() - t0) * 1000, 3)
    return result


@contextmanager
def _open(source: Source) -> Iterator[tuple[IO[bytes], int]]:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        yield io.BytesIO(data), len(data)
        return
    with open(Path(source), "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(0)
        yield fh, size


class _Reading:
    def __init__(
        self,
        fh: IO[bytes],
        size: int,
        mime: str | None,
        trust_anchors: str | None,
        deadline: float,
        result: Provenance,
    ) -> None:
        self.fh, self.size, self.mime_hint = fh, size, mime
        self.trust_anchors, self.deadline, self.result = trust_anchors, deadline, result
        self.declarations: list[_Declaration] = []
        self.unreadable = False

    def check_time(self) -> None:
        if time.perf_counter() > self.deadline:
            raise _OutOfTime()

    def run(self) -> None:
        container = _Container(mime=_sniff(self._read_at(0, 64)))
        try:
            _walk_container(self.fh, self.size, container, self.check_time)
            self.check_time()
            self._c2pa(container)
            self.check_time()
            self._xmp(container)
            self.check_time()
            self._traces(container)
        except _OutOfTime:
            self.unreadable = True
            self.result.errors.append("time budget exceeded; the rest was not read")
        self.result.errors[:0] = container.errors
        self._conclude()

    def _read_at(self, offset: int, n: int) -> bytes:
        self.fh.seek(offset)
        return self.fh.read(n)

    # -- C2PA ---------------------------------------------------------------------------------

    def _c2pa(self, container: _Container) -> None:
        if container.has_manifest is False:
            return  # a walked container with no manifest box: nothing for the library to read
        if container.manifest_bytes > MAX_MANIFEST_BYTES:
            self._c2pa_unreadable(
                f"manifest store of {container.manifest_bytes} bytes exceeds the limit of "
                f"{MAX_MANIFEST_BYTES}"
            )
            return
        import c2pa

        mime = container.mime or self.mime_hint or None
        self.fh.seek(0)
        try:
            reader = c2pa.Reader.try_create(mime, self.fh, None, _c2pa_context(self.trust_anchors))
        except Exception as exc:
            message = _describe(exc)
            if container.has_manifest is None and "NotSupported" in type(exc).__name__:
                self.result.errors.append(f"c2pa: format not supported ({mime or 'unknown'})")
            elif container.has_manifest is None and "could not be parsed" in message:
                self.result.errors.append(f"c2pa: {message}")
                self.unreadable = True
            elif type(exc).__name__.endswith(("Signature", "Verify")) and (
                "Signature" in type(exc).__name__ or "failed validation" in message
            ):
                # the store was read, but its signature or a validation rule failed: broken
                self.result.c2pa = _c2pa_failure("invalid", message)
            else:
                self._c2pa_unreadable(message)
            return
        if reader is None:
            return
        with reader:
            state = (reader.get_validation_state() or "").lower()
            store = json.loads(reader.json())
            results = reader.get_validation_results() or {}
        self.result.c2pa = info = _summarise_manifest_store(store, state, results)
        if info["state"] == "invalid":
            return
        self.result.verified = info["integrity"]
        self.result.trusted = info["trusted"]
        for action in _all_actions(store):
            code = action.get("digital_source_type")
            if code:
                category, ai = _classify(code)
                generator = action.get("software_agent") or info.get("claim_generator")
                self.declarations.append(
                    _Declaration("c2pa", True, ai, category, _code_of(code), generator)
                )

    def _c2pa_unreadable(self, reason: str) -> None:
        self.result.c2pa = _c2pa_failure("unreadable", reason)
        self.unreadable = True

    # -- XMP ----------------------------------------------------------------------------------

    def _xmp(self, container: _Container) -> None:
        packet = container.xmp
        if packet is None and not container.xmp_searched:
            head = self._read_at(0, min(self.size, XMP_SCAN_BYTES))
            packet = _find_xmp(head)
            if packet is None and self.size > len(head):
                start = max(len(head), self.size - XMP_SCAN_BYTES)
                packet = _find_xmp(self._read_at(start, self.size - start))
        if packet is None:
            return
        try:
            xmp = _parse_xmp(packet)
        except Exception as exc:
            self.result.xmp = {"state": "unreadable", "error": _describe(exc)}
            self.unreadable = True
            return
        self.result.xmp = xmp
        ai_system = xmp.get("ai_system_used")
        code = xmp.get("digital_source_type")
        if code:
            category, ai = _classify(code)
            generator = ai_system or xmp.get("creator_tool")
            self.declarations.append(
                _Declaration("xmp", False, ai, category, _code_of(code), generator)
            )
        if ai_system:
            self._add_trace("xmp", "AISystemUsed", ai_system, ai_system)
        if xmp.get("creator_tool"):
            generator = _match_generator(xmp["creator_tool"])
            if generator:
                self._add_trace("xmp", "CreatorTool", generator, xmp["creator_tool"])

    # -- metadata traces ----------------------------------------------------------------------

    def _traces(self, container: _Container) -> None:
        for chunk, key, value in container.texts:
            rules = _rules()  # loaded on first use: files without metadata never need it
            rule = rules.png_keys.get(key)
            if rule is not None and (rule[1] is None or rule[1].search(value[:65536])):
                self._add_trace(f"png:{chunk}", key, rule[0], value)
            elif key in rules.png_naming_keys:
                generator = _match_generator(value)
                if generator:
                    self._add_trace(f"png:{chunk}", key, generator, value)
            else:
                generator = _match_free_text(value)
                if generator:
                    self._add_trace(f"png:{chunk}", key, generator, value)
        if container.exif is not None:
            self.check_time()
            for field, value in _exif_fields(container.exif, self.result.errors):
                if field == "UserComment":
                    generator = _match_free_text(value)
                else:
                    generator = _match_generator(value)
                if generator:
                    self._add_trace("exif", field, generator, value)

    def _add_trace(self, source: str, field: str, generator: str, value: str) -> None:
        traces = self.result.metadata_traces
        if len(traces) >= MAX_TRACES:
            return
        traces.append(
            {"source": source, "field": field, "generator": generator, "value": _excerpt(value)}
        )
        kind = "xmp" if source == "xmp" else source.split(":", 1)[0]
        kind = "png_text" if kind == "png" else kind
        self.declarations.append(_Declaration(kind, False, True, "generative_ai", None, generator))

    # -- conclusion ---------------------------------------------------------------------------

    def _conclude(self) -> None:
        result = self.result
        if result.c2pa is not None and result.c2pa.get("state") == "invalid":
            result.status = "invalid"
        elif self.unreadable:
            result.status = "unreadable"
        elif result.c2pa is not None or result.xmp is not None or result.metadata_traces:
            result.status = "found"
        else:
            result.status = "none"
        chosen = _choose(self.declarations)
        if chosen is None:
            return
        result.declared_ai_generated = chosen.ai
        result.declared_source_type = chosen.code
        result.declared_source_category = chosen.category
        result.declared_generator = chosen.generator
        result.declaration_evidence = "signed" if chosen.signed else "unsigned"
        result.declared_by = sorted({d.source for d in self.declarations if d.ai == chosen.ai})


def _choose(declarations: list[_Declaration]) -> _Declaration | None:
    """Any declaration of generative AI wins (signed before unsigned, a named code before a bare
    trace); else one of no generative AI; else the most synthetic of the rest."""
    for wanted in (True, False, None):
        pool = [d for d in declarations if d.ai is wanted]
        if pool:
            return max(
                pool,
                key=lambda d: (d.signed, _CATEGORY_RANK.get(d.category, 0), d.code is not None),
            )
    return None


# ---------------------------------------------------------------------------------------------
# C2PA


_CONTEXTS: dict[tuple[int, str | None], Any] = {}
_CONTEXTS_LOCK = threading.Lock()


def _c2pa_context(trust_anchors: str | None) -> Any:
    """One offline reading context per process and trust-anchor set (contexts do not survive a
    fork, hence the process id in the key)."""
    import c2pa

    key = (os.getpid(), trust_anchors)
    with _CONTEXTS_LOCK:
        context = _CONTEXTS.get(key)
        if context is None:
            settings: dict[str, Any] = {
                "verify": {
                    "verify_after_reading": True,
                    "verify_trust": True,
                    "remote_manifest_fetch": False,
                    "ocsp_fetch": False,
                },
            }
            if trust_anchors:
                settings["trust"] = {"user_anchors": trust_anchors}
            context = _CONTEXTS[key] = c2pa.Context.from_dict(settings)
        return context


def _summarise_manifest_store(store: dict[str, Any], state: str, results: dict[str, Any]) -> dict:
    manifests = store.get("manifests") or {}
    label = store.get("active_manifest")
    active = manifests.get(label) or {}
    failures = _failure_codes(store, results)
    if state not in ("valid", "trusted", "invalid"):
        state = "invalid" if failures - {"signingCredential.untrusted"} else "valid"
    signature = active.get("signature_info") or {}
    return {
        "state": state,
        "integrity": state in ("valid", "trusted"),
        "trusted": state == "trusted",
        "failures": sorted(failures),
        "error": None,
        "active_manifest": label,
        "manifests": len(manifests),
        "claim_generator": _claim_generator(active),
        "title": _text(active.get("title")),
        "format": _text(active.get("format")),
        "signer": {
            "issuer": _text(signature.get("issuer")),
            "common_name": _text(signature.get("common_name")),
            "alg": _text(signature.get("alg")),
            "time": _text(signature.get("time")),
        },
        "actions": _actions(active)[:MAX_ACTIONS],
        "ingredients": [
            _ingredient(ingredient, manifests)
            for ingredient in (active.get("ingredients") or [])[:MAX_INGREDIENTS]
            if isinstance(ingredient, dict)
        ],
    }


_CODE = re.compile(r"\b([a-z][A-Za-z]+(?:\.[A-Za-z]+)+):")


def _c2pa_failure(state: str, reason: str) -> dict[str, Any]:
    """The C2PA object when the library read no usable store: same keys, nothing claimed."""
    return {
        "state": state,
        "integrity": False,
        "trusted": False,
        "failures": sorted(set(_CODE.findall(reason))),
        "error": reason,
        "active_manifest": None,
        "manifests": 0,
        "claim_generator": None,
        "title": None,
        "format": None,
        "signer": None,
        "actions": [],
        "ingredients": [],
    }


def _failure_codes(store: dict[str, Any], results: dict[str, Any]) -> set[str]:
    codes: set[str] = set()
    active = results.get("activeManifest") or {}
    for entry in active.get("failure") or []:
        codes.add(str(entry.get("code")))
    for delta in results.get("ingredientDeltas") or []:
        for entry in (delta.get("validationDeltas") or {}).get("failure") or []:
            codes.add(str(entry.get("code")))
    if not results:
        for entry in store.get("validation_status") or []:
            codes.add(str(entry.get("code")))
    return codes


def _claim_generator(manifest: dict[str, Any]) -> str | None:
    infos = manifest.get("claim_generator_info")
    if isinstance(infos, list) and infos and isinstance(infos[0], dict):
        name = " ".join(str(infos[0].get(k) or "") for k in ("name", "version")).strip()
        if name:
            return _text(name)
    return _text(manifest.get("claim_generator"))


def _actions(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for assertion in manifest.get("assertions") or []:
        if not isinstance(assertion, dict):
            continue
        if not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        for action in (assertion.get("data") or {}).get("actions") or []:
            if not isinstance(action, dict) or len(out) >= MAX_ACTIONS:
                continue
            agent = action.get("softwareAgent")
            if isinstance(agent, dict):
                agent = " ".join(str(agent.get(k) or "") for k in ("name", "version")).strip()
            source_type = action.get("digitalSourceType")
            out.append(
                {
                    "action": _text(action.get("action")),
                    "digital_source_type": _code_of(source_type) if source_type else None,
                    "software_agent": _text(agent) or None,
                    "when": _text(action.get("when")),
                }
            )
    return out


def _all_actions(store: dict[str, Any]) -> list[dict[str, Any]]:
    """Actions of the active manifest and of every manifest reached through its ingredients: an
    edit of a generated picture is still generated."""
    manifests = store.get("manifests") or {}
    seen: set[str] = set()
    queue = [store.get("active_manifest")]
    actions: list[dict[str, Any]] = []
    while queue and len(seen) < MAX_MANIFESTS:
        label = queue.pop(0)
        if not isinstance(label, str) or label in seen or label not in manifests:
            continue
        seen.add(label)
        manifest = manifests[label]
        actions.extend(_actions(manifest))
        for ingredient in manifest.get("ingredients") or []:
            if isinstance(ingredient, dict):
                queue.append(ingredient.get("active_manifest"))
    return actions[:MAX_ACTIONS]


def _ingredient(ingredient: dict[str, Any], manifests: dict[str, Any]) -> dict[str, Any]:
    label = ingredient.get("active_manifest")
    manifest = manifests.get(label) if isinstance(label, str) else None
    types = []
    if isinstance(manifest, dict):
        types = sorted(
            {a["digital_source_type"] for a in _actions(manifest) if a["digital_source_type"]}
        )
    return {
        "title": _text(ingredient.get("title")),
        "format": _text(ingredient.get("format")),
        "relationship": _text(ingredient.get("relationship")),
        "has_manifest": manifest is not None,
        "digital_source_types": types,
    }


# ---------------------------------------------------------------------------------------------
# Digital source types


def _code_of(value: Any) -> str:
    """The bare IPTC code of a digital source type given as a code or a URI; other values are
    returned as they are (shortened)."""
    text = str(value).strip()
    lowered = text.lower().rstrip("/")
    for prefix in (IPTC_PREFIX, IPTC_PREFIX.replace("http:", "https:"), C2PA_SOURCE_PREFIX):
        if lowered.startswith(prefix):
            lowered = lowered[len(prefix) :]
            text = text.rstrip("/")[len(prefix) :]
            break
    return _CODES_LOWER.get(lowered, _excerpt(text, 120))


def _classify(value: Any) -> tuple[str, bool | None]:
    return DIGITAL_SOURCE_TYPES.get(_code_of(value), ("unknown", None))


# ---------------------------------------------------------------------------------------------
# XMP


_XMP_WRAPPERS = ((b"<x:xmpmeta", b"</x:xmpmeta>"), (b"<x:xapmeta", b"</x:xapmeta>"))


def _find_xmp(data: bytes) -> bytes | None:
    """An XMP packet in a block of bytes, found with one scan for its ``rdf:RDF`` element, then
    widened to its wrapper and to any document type declaration just before (so that parsing
    refuses it). An unterminated or oversized packet comes back cut: parsing reports it."""
    rdf = data.find(b"<rdf:RDF")
    if rdf < 0:
        return None
    lookback = max(0, rdf - 4096)
    start, end_tag = rdf, b"</rdf:RDF>"
    for open_tag, close_tag in _XMP_WRAPPERS:
        wrapper = data.rfind(open_tag, lookback, rdf)
        if wrapper >= 0:
            start, end_tag = wrapper, close_tag
            break
    doctype = data.rfind(b"<!DOCTYPE", lookback, start)
    end = data.find(end_tag, start, start + MAX_XMP_BYTES + len(end_tag))
    if doctype >= 0:
        start = doctype
    if end < 0:
        return data[start : start + MAX_XMP_BYTES + 1]
    return data[start : end + len(end_tag)]


def _parse_xmp(packet: bytes) -> dict[str, Any]:
    from defusedxml import ElementTree

    if len(packet) > MAX_XMP_BYTES:
        raise ValueError(f"XMP packet exceeds {MAX_XMP_BYTES} bytes or is unterminated")
    root = ElementTree.fromstring(packet, forbid_dtd=True)
    found: dict[str, str] = {}
    wanted = {
        f"{{{NS_IPTC_EXT}}}DigitalSourceType": "digital_source_type",
        f"{{{NS_IPTC_EXT}}}AISystemUsed": "ai_system_used",
        f"{{{NS_IPTC_EXT}}}AISystemVersionUsed": "ai_system_version_used",
        f"{{{NS_XMP}}}CreatorTool": "creator_tool",
        f"{{{NS_DCTERMS}}}provenance": "c2pa_manifest_url",
    }
    for count, element in enumerate(root.iter()):
        if count >= MAX_XMP_ELEMENTS:
            raise ValueError(f"XMP packet has more than {MAX_XMP_ELEMENTS} elements")
        for name, value in element.attrib.items():
            field = wanted.get(name)
            if field and field not in found and value.strip():
                found[field] = value.strip()
        field = wanted.get(element.tag)
        if field and field not in found:
            value = _xmp_value(element)
            if value:
                found[field] = value
    out: dict[str, Any] = {"state": "parsed"}
    for field in wanted.values():
        out[field] = _text(found.get(field))
    if out["digital_source_type"]:
        raw = out["digital_source_type"]
        out["digital_source_type"] = _code_of(raw)
        out["digital_source_category"] = _classify(raw)[0]
    return out


def _xmp_value(element: Any) -> str | None:
    """The value of a simple, resource or first-item-of-a-collection XMP property."""
    resource = element.attrib.get(f"{{{NS_RDF}}}resource")
    if resource:
        return resource.strip()
    if element.text and element.text.strip():
        return element.text.strip()
    for item in element.iter(f"{{{NS_RDF}}}li"):
        if item.text and item.text.strip():
            return item.text.strip()
    return None


# ---------------------------------------------------------------------------------------------
# Containers


def _sniff(head: bytes) -> str | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(_PNG_SIGNATURE):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video/x-msvideo"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if head[4:8] == b"ftyp":
        brands = {head[i : i + 4] for i in range(8, min(len(head), 64), 4)}
        if brands & {b"avif", b"avis"}:
            return "image/avif"
        if brands & {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"}:
            return "image/heic"
        if brands & {b"mif1", b"msf1"}:
            return "image/heif"
        if head[8:12] == b"qt  ":
            return "video/quicktime"
        return "video/mp4"
    return None


def _walk_container(fh: IO[bytes], size: int, info: _Container, check_time: Any) -> None:
    walkers = {"image/jpeg": _walk_jpeg, "image/png": _walk_png, "image/webp": _walk_riff}
    walker = walkers.get(info.mime or "")
    if walker is not None:
        info.has_manifest = False
        info.xmp_searched = True
        walker(fh, size, info, check_time)
    elif info.mime in ("image/avif", "image/heic", "image/heif", "video/mp4", "video/quicktime"):
        info.has_manifest = False
        _walk_bmff(fh, size, info, check_time)
    elif info.mime == "image/tiff":  # a TIFF file is itself an EXIF block
        fh.seek(0)
        info.exif = fh.read(min(size, MAX_EXIF_BYTES))


def _stop_walk(info: _Container, message: str) -> None:
    """A walk cut short by a limit: whether a manifest lies further on is left to the library."""
    info.errors.append(message)
    if not info.has_manifest:
        info.has_manifest = None


def _walk_jpeg(fh: IO[bytes], size: int, info: _Container, check_time: Any) -> None:
    pos = 2
    for count in range(MAX_JPEG_SEGMENTS + 1):
        if count == MAX_JPEG_SEGMENTS:
            _stop_walk(info, f"jpeg: more than {MAX_JPEG_SEGMENTS} segments; the rest skipped")
            return
        fh.seek(pos)
        header = fh.read(4)
        if len(header) < 2 or header[0] != 0xFF:
            return
        marker = header[1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker in (0xDA, 0xD9) or len(header) < 4:
            return  # start of scan: metadata segments come before it
        length = struct.unpack(">H", header[2:4])[0]
        if length < 2:
            return
        if marker == 0xE1:  # APP1: EXIF or XMP
            payload = fh.read(length - 2)
            if payload.startswith(b"Exif\x00\x00") and info.exif is None:
                info.exif = payload
            elif payload.startswith(_JPEG_XMP) and info.xmp is None:
                info.xmp = payload[len(_JPEG_XMP) :]
        elif marker == 0xEB:  # APP11: JUMBF, where C2PA lives
            payload = fh.read(min(length - 2, 64))
            if payload[:2] == b"JP":
                info.manifest_bytes += length
                if b"c2pa" in payload:
                    info.has_manifest = True
        pos += 2 + length
        if count % 64 == 63:
            check_time()


def _walk_png(fh: IO[bytes], size: int, info: _Container, check_time: Any) -> None:
    pos, text_total = 8, 0
    for count in range(MAX_PNG_CHUNKS + 1):
        if pos + 12 > size:
            return
        if count == MAX_PNG_CHUNKS:
            _stop_walk(info, f"png: more than {MAX_PNG_CHUNKS} chunks; the rest skipped")
            return
        if count % 256 == 255:
            check_time()
        fh.seek(pos)
        length, kind = struct.unpack(">I4s", fh.read(8))
        if length > size - pos - 12:
            info.errors.append("png: a chunk runs past the end of the file")
            return
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            if length > MAX_TEXT_CHUNK_BYTES or text_total + length > MAX_TEXT_TOTAL_BYTES:
                info.errors.append(f"png: a {kind.decode()} chunk of {length} bytes skipped")
            else:
                text_total += length
                _png_text(kind.decode(), fh.read(length), info)
        elif kind == b"eXIf" and info.exif is None and length <= MAX_EXIF_BYTES:
            info.exif = fh.read(length)
        elif kind == b"caBX":
            info.manifest_bytes += length
            info.has_manifest = True
        elif kind == b"IEND":
            return
        pos += 12 + length


def _png_text(kind: str, data: bytes, info: _Container) -> None:
    key, sep, rest = data.partition(b"\x00")
    if not sep or not 1 <= len(key) <= 79:
        return
    name = key.decode("latin-1")
    try:
        if kind == "tEXt":
            raw, encoding = rest, "latin-1"
        elif kind == "zTXt":
            raw, encoding = _inflate(rest[1:]), "latin-1"
        else:
            compressed = rest[:1] == b"\x01"
            fields = rest[2:].split(b"\x00", 2)  # language, translated keyword, text
            if len(fields) < 3:
                return
            raw, encoding = (_inflate(fields[2]) if compressed else fields[2]), "utf-8"
    except zlib.error:
        info.errors.append(f"png: undecodable {kind} chunk {name!r}")
        return
    if name == "XML:com.adobe.xmp":
        if info.xmp is None:
            info.xmp = raw
        return
    info.texts.append((kind, name, raw.decode(encoding, errors="replace")))


def _inflate(data: bytes) -> bytes:
    """Inflate at most MAX_TEXT_CHUNK_BYTES (a zlib bomb stops there)."""
    return zlib.decompressobj().decompress(data, MAX_TEXT_CHUNK_BYTES)


def _walk_riff(fh: IO[bytes], size: int, info: _Container, check_time: Any) -> None:
    pos = 12
    for count in range(MAX_RIFF_CHUNKS + 1):
        if pos + 8 > size:
            return
        if count == MAX_RIFF_CHUNKS:
            _stop_walk(info, f"webp: more than {MAX_RIFF_CHUNKS} chunks; the rest skipped")
            return
        fh.seek(pos)
        kind, length = struct.unpack("<4sI", fh.read(8))
        if length > size - pos - 8:
            info.errors.append("webp: a chunk runs past the end of the file")
            return
        if kind == b"C2PA":
            info.manifest_bytes += length
            info.has_manifest = True
        elif kind == b"XMP " and info.xmp is None:
            info.xmp = fh.read(min(length, MAX_XMP_BYTES + 1))
        elif kind == b"EXIF" and info.exif is None and length <= MAX_EXIF_BYTES:
            info.exif = fh.read(length)
        pos += 8 + length + (length & 1)
        if count % 64 == 63:
            check_time()


def _walk_bmff(fh: IO[bytes], size: int, info: _Container, check_time: Any) -> None:
    """ISO BMFF (MP4, MOV, HEIF, AVIF): top-level boxes only, by seeking (never reads mdat)."""
    pos = 0
    for count in range(MAX_BMFF_BOXES + 1):
        if pos + 8 > size:
            return
        if count == MAX_BMFF_BOXES:
            _stop_walk(info, f"bmff: more than {MAX_BMFF_BOXES} top-level boxes; rest skipped")
            return
        fh.seek(pos)
        header = fh.read(32)
        length, kind = struct.unpack(">I4s", header[:8])
        offset = 8
        if length == 1 and len(header) >= 16:
            length, offset = struct.unpack(">Q", header[8:16])[0], 16
        elif length == 0:
            length = size - pos
        if length < offset or length > size - pos:
            info.errors.append("bmff: a box runs past the end of the file")
            return
        if kind == b"uuid":
            uuid = header[offset : offset + 16]
            if uuid == _C2PA_UUID:  # C2PA stores live in top-level uuid boxes only
                info.manifest_bytes += length
                info.has_manifest = True
            elif uuid == _XMP_UUID and info.xmp is None and length <= MAX_XMP_BYTES + 64:
                fh.seek(pos + offset + 16)
                info.xmp = fh.read(length - offset - 16)
        pos += length
        if count % 64 == 63:
            check_time()


# ---------------------------------------------------------------------------------------------
# EXIF and generator names


_EXIF_FIELDS = {0x0131: "Software", 0x010F: "Make", 0x0110: "Model"}


def _exif_fields(data: bytes, errors: list[str]) -> list[tuple[str, str]]:
    from PIL import Image

    if len(data) > MAX_EXIF_BYTES:
        errors.append("exif: block too large; skipped")
        return []
    out: list[tuple[str, str]] = []
    try:
        exif = Image.Exif()
        exif.load(data)
        for tag, name in _EXIF_FIELDS.items():
            value = _exif_text(exif.get(tag))
            if value:
                out.append((name, value))
        comment = _exif_text(exif.get_ifd(0x8769).get(0x9286))
        if comment:
            out.append(("UserComment", comment))
    except Exception as exc:
        errors.append(f"exif: {_describe(exc)}")
    return out


def _exif_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip("\x00 ").strip() or None
    if not isinstance(value, bytes):
        return None
    data = value[:MAX_TEXT_CHUNK_BYTES]
    prefix, body = data[:8], data[8:]
    if prefix == b"UNICODE\x00":
        # UTF-16 in either byte order (writers disagree); text starting with an ASCII
        # character has its NUL byte first in big-endian order
        big = body[:1] == b"\x00"
        text = body.decode("utf-16-be" if big else "utf-16-le", errors="replace")
    elif prefix in (b"ASCII\x00\x00\x00", b"\x00" * 8):
        text = body.decode("latin-1")
    else:
        text = data.decode("utf-8", errors="replace")
    return text.strip("\x00 ").strip() or None


class _Rules:
    def __init__(self, data: dict[str, Any]) -> None:
        self.generators = [
            (g["name"], re.compile("|".join(f"(?:{p})" for p in g["patterns"]), re.IGNORECASE))
            for g in data["generators"]
        ]
        self.png_keys = {
            r["key"]: (
                r["generator"],
                re.compile(r["value_pattern"], re.IGNORECASE) if r.get("value_pattern") else None,
            )
            for r in data["png_text_keys"]
        }
        self.png_naming_keys = set(data["png_text_keys_naming_a_generator"])
        self.free_text = [
            (r["generator"], re.compile(r["pattern"])) for r in data["free_text_patterns"]
        ]


@lru_cache(maxsize=1)
def _rules() -> _Rules:
    path = Path(__file__).with_name("generators.json")
    return _Rules(json.loads(path.read_text(encoding="utf-8")))


def _match_generator(value: str) -> str | None:
    text = value[:4096]
    for name, pattern in _rules().generators:
        if pattern.search(text):
            return name
    return None


def _match_free_text(value: str) -> str | None:
    text = value[:65536]
    for name, pattern in _rules().free_text:
        if pattern.search(text):
            return name
    return None


# ---------------------------------------------------------------------------------------------
# Small helpers


def _text(value: Any, limit: int = EXCERPT_CHARS) -> str | None:
    if value is None:
        return None
    return _excerpt(str(value), limit) or None


def _excerpt(value: str, limit: int = EXCERPT_CHARS) -> str:
    clean = _CONTROL.sub(" ", value).strip()
    return clean if len(clean) <= limit else clean[: limit - 1] + "\u2026"


def _describe(exc: BaseException) -> str:
    message = str(exc).strip() or type(exc).__name__
    return _excerpt(message, 300)
