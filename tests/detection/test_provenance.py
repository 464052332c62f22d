"""detection.provenance: Content Credentials signed in the test and read back (valid, trusted,
tampered, AI-declared, with ingredients, video), IPTC/XMP declarations, generator traces in PNG
text and EXIF, files without metadata, and hostile packets answered cleanly in bounded time."""

from __future__ import annotations

import json
import os
import re
import struct
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from detection import provenance
from detection.provenance import DIGITAL_SOURCE_TYPES, IPTC_PREFIX, read_provenance
from tests.support import media
from tests.support import provenance as cc

pytestmark = pytest.mark.timeout(120)

#: every hostile input must be answered within this (the library's budget plus slack for a
#: loaded machine)
BOUNDED_S = 2.0


@pytest.fixture(scope="module")
def chain() -> cc.Chain:
    return cc.make_chain()


def flip(data: bytes, at: int, n: int = 16) -> bytes:
    out = bytearray(data)
    out[at : at + n] = bytes(b ^ 0xFF for b in out[at : at + n])
    return bytes(out)


def timed(source, *args, **kwargs):
    # CPU seconds, not wall-clock: the bound guards against work that grows with hostile input,
    # and must not trip because other processes share the machine
    t0 = time.process_time()
    result = read_provenance(source, *args, **kwargs)
    elapsed = time.process_time() - t0
    json.dumps(result.as_dict())  # always serialisable
    return result, elapsed


# ---------------------------------------------------------------------------------------------
# C2PA


def test_signed_capture_is_verified_but_not_trusted_without_anchors(chain):
    signed = cc.sign(cc.picture(), "image/jpeg", chain, cc.manifest("digitalCapture"))
    result = read_provenance(signed)
    assert result.status == "found"
    assert result.verified is True and result.trusted is False
    info = result.c2pa
    assert info["state"] == "valid" and info["integrity"] is True
    assert info["failures"] == ["signingCredential.untrusted"]
    assert info["signer"]["common_name"] == "RRR Test Signer"
    assert info["signer"]["issuer"] == "RRR Test Signing"
    assert info["claim_generator"] == "rrr-tests 1.0"
    assert info["actions"] == [
        {
            "action": "c2pa.created",
            "digital_source_type": "digitalCapture",
            "software_agent": "RRR Test Camera",
            "when": None,
        }
    ]
    assert result.declared_ai_generated is False
    assert result.declared_source_type == "digitalCapture"
    assert result.declared_source_category == "capture"
    assert result.declaration_evidence == "signed"
    assert result.declared_by == ["c2pa"]


def test_signer_chaining_to_a_configured_anchor_is_trusted(chain):
    signed = cc.sign(cc.picture(), "image/jpeg", chain, cc.manifest("digitalCapture"))
    result = read_provenance(signed, trust_anchors=chain.root_pem)
    assert result.c2pa["state"] == "trusted"
    assert result.verified is True and result.trusted is True
    assert result.c2pa["failures"] == []
    other = cc.make_chain()  # another root: the signer does not chain to it
    assert read_provenance(signed, trust_anchors=other.root_pem).trusted is False


@pytest.mark.parametrize(
    ("fmt", "mime"), [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")]
)
def test_ai_declared_manifest(chain, fmt, mime):
    definition = cc.manifest("trainedAlgorithmicMedia", agent="RRR Test Generator")
    signed = cc.sign(cc.picture(fmt), mime, chain, definition)
    result = read_provenance(signed)
    assert result.status == "found" and result.verified is True
    assert result.declared_ai_generated is True
    assert result.declared_source_type == "trainedAlgorithmicMedia"
    assert result.declared_source_category == "generative_ai"
    assert result.declared_generator == "RRR Test Generator"
    assert result.declaration_evidence == "signed"
    assert result.declared_by == ["c2pa"]


@pytest.mark.parametrize(
    ("fmt", "mime", "pixels"),
    [
        ("JPEG", "image/jpeg", b"\xff\xda"),  # entropy-coded data after the start of scan
        ("PNG", "image/png", b"IDAT"),
        ("WEBP", "image/webp", b"VP8"),  # the compressed bitstream
    ],
)
def test_tampered_after_signing_is_invalid_and_declares_nothing(chain, fmt, mime, pixels):
    signed = cc.sign(
        cc.picture(fmt, size=(128, 96)), mime, chain, cc.manifest("trainedAlgorithmicMedia")
    )
    assert signed.find(pixels) > 0
    result = read_provenance(flip(signed, signed.find(pixels) + 40, 8))
    assert result.status == "invalid"
    assert result.verified is False and result.trusted is False
    assert result.c2pa["state"] == "invalid" and result.c2pa["integrity"] is False
    assert "assertion.dataHash.mismatch" in result.c2pa["failures"]
    # what the broken manifest claims is shown, but never counted as a declaration
    assert result.c2pa["actions"][0]["digital_source_type"] == "trainedAlgorithmicMedia"
    assert result.declared_ai_generated is None and result.declaration_evidence is None


def test_edit_of_a_generated_ingredient_still_declares_ai(chain):
    parent = cc.sign(cc.picture(), "image/jpeg", chain, cc.manifest("trainedAlgorithmicMedia"))
    definition = cc.manifest(None, action="c2pa.edited", agent="RRR Test Editor")
    definition["assertions"][0]["data"]["actions"].insert(
        0, {"action": "c2pa.opened", "parameters": {"ingredientIds": ["parent"]}}
    )
    ingredient = {"title": "parent.jpg", "relationship": "parentOf", "label": "parent"}
    child = cc.sign(
        cc.picture(seed=1), "image/jpeg", chain, definition, [(ingredient, "image/jpeg", parent)]
    )
    result = read_provenance(child)
    assert result.verified is True
    assert result.c2pa["manifests"] == 2
    [ingredient] = result.c2pa["ingredients"]
    assert ingredient["title"] == "parent.jpg" and ingredient["relationship"] == "parentOf"
    assert ingredient["has_manifest"] is True
    assert ingredient["digital_source_types"] == ["trainedAlgorithmicMedia"]
    # the edit declares no source type; the generated parent does
    assert [a["digital_source_type"] for a in result.c2pa["actions"]] == [None, None]
    assert result.declared_ai_generated is True
    assert result.declared_source_type == "trainedAlgorithmicMedia"
    assert result.declaration_evidence == "signed"


def test_signed_video_is_read_from_its_path(chain, tmp_path):
    clip = media.write_video(tmp_path / "clip.mp4", frames=10)
    signed = cc.sign(clip.read_bytes(), "video/mp4", chain, cc.manifest("digitalCapture"))
    path = tmp_path / "signed.mp4"
    path.write_bytes(signed)
    result = read_provenance(path)
    assert result.status == "found" and result.verified is True
    assert result.declared_ai_generated is False
    assert read_provenance(str(path), "video/mp4").verified is True

    mdat = signed.find(b"mdat")
    assert mdat > 0
    path.write_bytes(flip(signed, mdat + 64))
    tampered = read_provenance(path)
    assert tampered.status == "invalid" and tampered.verified is False


def test_a_large_file_is_not_read_whole(tmp_path):
    """A 3 GiB sparse MP4: the reader seeks over the media data instead of reading it."""
    import resource

    path = tmp_path / "huge.mp4"
    ftyp = struct.pack(">I4s4sI4s4s", 24, b"ftyp", b"isom", 0x200, b"isom", b"mp41")
    mdat_size = 3 << 30
    with open(path, "wb") as fh:
        fh.write(ftyp + struct.pack(">I4sQ", 1, b"mdat", mdat_size + 16))
        fh.truncate(len(ftyp) + 16 + mdat_size)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result, elapsed = timed(path)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert result.status in ("none", "unreadable")
    assert elapsed < BOUNDED_S
    assert grown_mb < 256


# ---------------------------------------------------------------------------------------------
# IPTC / XMP


def jpeg_with_xmp(packet: bytes) -> bytes:
    return cc.jpeg_with_segment(cc.picture(), 0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + packet)


@pytest.mark.parametrize("code", sorted(DIGITAL_SOURCE_TYPES))
def test_every_iptc_code_is_recognised_bare_or_as_uri(code):
    category, ai = DIGITAL_SOURCE_TYPES[code]
    for value in (IPTC_PREFIX + code, code):
        attribute = f'Iptc4xmpExt:DigitalSourceType="{value}"'
        result = read_provenance(jpeg_with_xmp(cc.xmp_packet(attribute)))
        assert result.status == "found"
        assert result.xmp["digital_source_type"] == code
        assert result.xmp["digital_source_category"] == category
        assert result.declared_ai_generated is ai
        assert result.declared_source_type == code
        assert result.declaration_evidence == "unsigned" and result.declared_by == ["xmp"]
        assert result.verified is False


def test_xmp_only_ai_declaration_in_element_form_with_ai_system():
    elements = (
        f'<Iptc4xmpExt:DigitalSourceType rdf:resource="{IPTC_PREFIX}trainedAlgorithmicMedia"/>'
        "<Iptc4xmpExt:AISystemUsed>RRR Imagine 2</Iptc4xmpExt:AISystemUsed>"
        "<xmp:CreatorTool>Some Editor 1.0</xmp:CreatorTool>"
    )
    result = read_provenance(jpeg_with_xmp(cc.xmp_packet(elements=elements)))
    assert result.xmp["digital_source_type"] == "trainedAlgorithmicMedia"
    assert result.xmp["ai_system_used"] == "RRR Imagine 2"
    assert result.xmp["creator_tool"] == "Some Editor 1.0"
    assert result.declared_ai_generated is True
    assert result.declared_generator == "RRR Imagine 2"
    assert result.declaration_evidence == "unsigned"


@pytest.mark.parametrize("compressed", [False, True])
def test_xmp_in_png_itxt(compressed):
    packet = cc.xmp_packet(f'Iptc4xmpExt:DigitalSourceType="{IPTC_PREFIX}compositeSynthetic"')
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", packet.decode(), zip=compressed)
    result = read_provenance(cc.picture("PNG", pnginfo=info))
    assert result.declared_source_type == "compositeSynthetic"
    assert result.declared_source_category == "synthetic"
    assert result.declared_ai_generated is None  # synthetic, not declared as generative AI


@pytest.mark.parametrize(("fmt", "save"), [("WEBP", "xmp"), ("TIFF", "tiffinfo")])
def test_xmp_in_webp_and_tiff(fmt, save):
    packet = cc.xmp_packet(f'Iptc4xmpExt:DigitalSourceType="{IPTC_PREFIX}digitalCapture"')
    kwargs = {"xmp": packet} if save == "xmp" else {"tiffinfo": {700: packet}}
    result = read_provenance(cc.picture(fmt, **kwargs))
    assert result.xmp["digital_source_type"] == "digitalCapture"
    assert result.declared_ai_generated is False


@pytest.mark.parametrize("where", ["uuid box", "end of a long file"])
def test_xmp_in_video(tmp_path, where):
    packet = cc.xmp_packet(f'Iptc4xmpExt:DigitalSourceType="{IPTC_PREFIX}trainedAlgorithmicMedia"')
    if where == "uuid box":
        clip = media.write_video(tmp_path / "clip.mp4", frames=5)
        uuid = bytes.fromhex("be7acfcb97a942e89c71999491e3afac")
        box = struct.pack(">I4s", 8 + 16 + len(packet), b"uuid") + uuid + packet
    else:  # past the first megabyte: found by the scan of the file's tail
        clip = media.write_video(tmp_path / "clip.mp4", frames=100, fps=25, size=(640, 360))
        assert clip.stat().st_size > provenance.XMP_SCAN_BYTES
        box = struct.pack(">I4s", 8 + len(packet), b"free") + packet
    with open(clip, "ab") as fh:
        fh.write(box)
    result = read_provenance(clip)
    assert result.xmp["digital_source_type"] == "trainedAlgorithmicMedia"
    assert result.declared_ai_generated is True and result.declaration_evidence == "unsigned"


def test_xmp_names_a_c2pa_remote_manifest_without_fetching_it():
    elements = '<dcterms:provenance xmlns:dcterms="http://purl.org/dc/terms/">'
    elements += "https://example.invalid/manifest.c2pa</dcterms:provenance>"
    result = read_provenance(jpeg_with_xmp(cc.xmp_packet(elements=elements)))
    assert result.xmp["c2pa_manifest_url"] == "https://example.invalid/manifest.c2pa"
    assert result.verified is False


# ---------------------------------------------------------------------------------------------
# Generator traces


A1111 = (
    "portrait of a woman, studio light\nNegative prompt: blurry\n"
    "Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 1234, Size: 512x768"
)
COMFY_PROMPT = json.dumps({"3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20}}})
COMFY_WORKFLOW = json.dumps({"last_node_id": 9, "nodes": [{"id": 3, "type": "KSampler"}]})


@pytest.mark.parametrize(
    ("chunk", "key", "value", "generator"),
    [
        ("tEXt", "parameters", A1111, "Stable Diffusion web UI"),
        ("zTXt", "parameters", A1111, "Stable Diffusion web UI"),
        ("iTXt", "parameters", A1111, "Stable Diffusion web UI"),
        ("tEXt", "prompt", COMFY_PROMPT, "ComfyUI"),
        ("tEXt", "workflow", COMFY_WORKFLOW, "ComfyUI"),
        ("tEXt", "sd-metadata", '{"model": "stable diffusion"}', "InvokeAI"),
        ("tEXt", "Dream", '"a cat" -s 50 -S 42', "InvokeAI"),
        ("tEXt", "Software", "NovelAI", "NovelAI"),
        ("tEXt", "Comment", '{"steps": 28, "uc": "lowres", "n_samples": 1}', "NovelAI"),
    ],
)
def test_png_generation_parameters_only(chunk, key, value, generator):
    info = PngImagePlugin.PngInfo()
    if chunk == "iTXt":
        info.add_itxt(key, value)
    else:
        info.add_text(key, value, zip=chunk == "zTXt")
    result = read_provenance(cc.picture("PNG", pnginfo=info))
    assert result.status == "found"
    [trace] = result.metadata_traces
    assert trace["source"] == f"png:{chunk}" and trace["field"] == key
    assert trace["generator"].startswith(generator)
    assert result.declared_ai_generated is True
    assert result.declared_source_category == "generative_ai"
    assert result.declaration_evidence == "unsigned" and result.declared_by == ["png_text"]
    assert result.c2pa is None and result.verified is False


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("parameters", "exposure=+1, iso=200"),  # a key name alone is not a trace
        ("prompt", "say cheese"),
        ("Software", "GIMP 2.10"),
        ("Description", "Holiday photo next to the Gemini statue"),  # free text is not matched
    ],
)
def test_ordinary_png_text_is_not_a_trace(key, value):
    info = PngImagePlugin.PngInfo()
    info.add_text(key, value)
    result = read_provenance(cc.picture("PNG", pnginfo=info))
    assert result.metadata_traces == [] and result.status == "none"
    assert result.declared_ai_generated is None


@pytest.mark.parametrize(
    ("tag", "field", "value", "generator"),
    [
        (0x0131, "Software", "Midjourney v6", "Midjourney"),
        (0x0131, "Software", "Adobe Firefly Image 3", "Adobe Firefly"),
        (0x010F, "Make", "OpenAI", "OpenAI"),
        (0x0110, "Model", "DALL-E 3", "OpenAI DALL-E"),
    ],
)
@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "PNG"])
def test_exif_naming_a_generator(fmt, tag, field, value, generator):
    exif = Image.Exif()
    exif[tag] = value
    result = read_provenance(cc.picture(fmt, exif=exif.tobytes()))
    assert result.metadata_traces == [
        {"source": "exif", "field": field, "generator": generator, "value": value}
    ]
    assert result.declared_ai_generated is True and result.declared_by == ["exif"]
    assert result.declared_generator == generator


@pytest.mark.parametrize("order", ["big", "little"])
def test_exif_user_comment_with_generation_parameters(order):
    exif = Image.Exif()
    text = A1111.encode("utf-16-be" if order == "big" else "utf-16-le")
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + text
    result = read_provenance(cc.picture("JPEG", exif=exif.tobytes()))
    [trace] = result.metadata_traces
    assert trace["field"] == "UserComment" and trace["generator"].startswith("Stable Diffusion")
    assert result.declared_ai_generated is True


def test_exif_of_an_ordinary_camera_is_not_a_trace():
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0131] = "Canon", "Canon EOS R5", "Adobe Photoshop 25.0"
    result = read_provenance(cc.picture("JPEG", exif=exif.tobytes()))
    assert result.status == "none" and result.metadata_traces == []


def test_signed_capture_with_unsigned_generator_trace_says_ai_unsigned(chain):
    exif = Image.Exif()
    exif[0x0131] = "ComfyUI"
    picture = cc.picture("JPEG", exif=exif.tobytes())
    signed = cc.sign(picture, "image/jpeg", chain, cc.manifest("digitalCapture"))
    result = read_provenance(signed)
    assert result.verified is True
    assert result.declared_ai_generated is True
    assert result.declaration_evidence == "unsigned" and result.declared_by == ["exif"]


def test_generator_list_is_one_valid_data_file():
    path = Path(provenance.__file__).with_name("generators.json")
    data = json.loads(path.read_text())
    names = [g["name"] for g in data["generators"]]
    assert len(names) == len(set(names))
    for entry in data["generators"]:
        for pattern in entry["patterns"]:
            re.compile(pattern)
    for rule in data["png_text_keys"]:
        re.compile(rule.get("value_pattern") or "")
    for name in (
        "Canon",
        "NIKON CORPORATION",
        "Apple",
        "iPhone 15 Pro",
        "GIMP 2.10",
        "Adobe Photoshop Lightroom Classic 13.0",
        "darktable 4.6",
        "Google",
    ):
        assert provenance._match_generator(name) is None, name


# ---------------------------------------------------------------------------------------------
# No metadata


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP"])
def test_no_metadata(fmt):
    result, elapsed = timed(cc.picture(fmt))
    assert result.status == "none"
    assert result.c2pa is None and result.xmp is None and result.metadata_traces == []
    assert result.declared_ai_generated is None and result.verified is False
    assert "proves nothing" in result.note
    assert elapsed < BOUNDED_S


def test_no_metadata_video(tmp_path):
    clip = media.write_video(tmp_path / "clip.mp4", frames=5)
    result = read_provenance(clip)
    assert result.status == "none" and result.declared_ai_generated is None


def test_result_shape():
    shape = read_provenance(cc.picture()).as_dict()
    assert set(shape) == {
        "status",
        "verified",
        "trusted",
        "declared_ai_generated",
        "declared_source_type",
        "declared_source_category",
        "declared_generator",
        "declaration_evidence",
        "declared_by",
        "c2pa",
        "xmp",
        "metadata_traces",
        "errors",
        "elapsed_ms",
        "note",
    }


def test_bytes_like_and_path_sources_agree(chain, tmp_path):
    signed = cc.sign(cc.picture(), "image/jpeg", chain, cc.manifest("trainedAlgorithmicMedia"))
    path = tmp_path / "signed.jpg"
    path.write_bytes(signed)
    for source in (signed, bytearray(signed), memoryview(signed), path, str(path)):
        result = read_provenance(source)
        assert result.verified is True and result.declared_ai_generated is True, type(source)


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (
            "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
            "trainedAlgorithmicMedia",
        ),
        ("https://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture/", "digitalCapture"),
        ("TRAINEDALGORITHMICMEDIA", "trainedAlgorithmicMedia"),
        ("http://c2pa.org/digitalsourcetype/empty", "empty"),
        ("something-else", "something-else"),
    ],
)
def test_source_type_codes_are_normalised(value, code):
    assert provenance._code_of(value) == code


# ---------------------------------------------------------------------------------------------
# Hostile and broken input: a clean answer, in bounded time, never an exception


def _assert_clean(result, elapsed, *statuses):
    assert result.status in statuses, (result.status, result.errors)
    assert elapsed < BOUNDED_S


def test_huge_xmp_packet_is_unreadable():
    filler = "<xmp:Label>" + "A" * (provenance.MAX_XMP_BYTES + 1000) + "</xmp:Label>"
    packet = cc.xmp_packet(
        f'Iptc4xmpExt:DigitalSourceType="{IPTC_PREFIX}trainedAlgorithmicMedia"', filler
    )
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", packet.decode(), zip=True)
    result, elapsed = timed(cc.picture("PNG", pnginfo=info))
    _assert_clean(result, elapsed, "unreadable")
    assert result.xmp["state"] == "unreadable"
    assert result.declared_ai_generated is None


def test_unterminated_xmp_is_unreadable():
    packet = cc.xmp_packet('Iptc4xmpExt:DigitalSourceType="trainedAlgorithmicMedia"')
    result, elapsed = timed(jpeg_with_xmp(packet[: packet.find(b"</rdf:Description>")]))
    _assert_clean(result, elapsed, "unreadable")


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + ']><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
    'Iptc4xmpExt:DigitalSourceType="&lol9;"/></rdf:RDF></x:xmpmeta>'
)
XXE = (
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    'xmlns:xmp="http://ns.adobe.com/xap/1.0/"><xmp:CreatorTool>&secret;</xmp:CreatorTool>'
    "</rdf:Description></rdf:RDF></x:xmpmeta>"
)


@pytest.mark.parametrize("container", ["JPEG", "TIFF"])  # a fixed XMP place, and a free scan
@pytest.mark.parametrize(
    "packet",
    [
        BILLION_LAUGHS,
        XXE,
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><unclosed></rdf:RDF></x:xmpmeta>',
    ],
)
def test_entity_bombs_external_entities_and_broken_xml_are_unreadable(packet, container):
    if container == "JPEG":
        data = jpeg_with_xmp(packet.encode())
    else:
        data = cc.picture("TIFF", tiffinfo={700: packet.encode()})
    result, elapsed = timed(data)
    _assert_clean(result, elapsed, "unreadable")
    assert result.xmp["state"] == "unreadable"
    assert "root:" not in json.dumps(result.as_dict())


def test_malformed_jumbf_in_app11(chain):
    c2pa_uuid = bytes.fromhex("6332706100110010800000aa00389b71")
    jumbf = (
        b"JP\x02\x11\x00\x00\x00\x01"
        + struct.pack(">I4s", 0x7FFFFFF0, b"jumb")
        + struct.pack(">I4s", 30, b"jumd")
        + c2pa_uuid
        + b"\x03c2pa\x00"
        + os.urandom(400)
    )
    result, elapsed = timed(cc.jpeg_with_segment(cc.picture(), 0xEB, jumbf))
    _assert_clean(result, elapsed, "unreadable", "none")
    assert result.verified is False and result.declared_ai_generated is None


def test_corrupted_manifest_bytes_are_unreadable_or_invalid(chain):
    signed = cc.sign(cc.picture(), "image/jpeg", chain, cc.manifest("trainedAlgorithmicMedia"))
    start = signed.find(b"jumb")
    for offset in (8, 40, 200, 600):
        result, elapsed = timed(flip(signed, start + offset, 4))
        _assert_clean(result, elapsed, "unreadable", "invalid")
        assert result.verified is False and result.declared_ai_generated is None


def test_oversized_manifest_is_not_handed_to_the_library(chain, monkeypatch):
    signed = cc.sign(cc.picture("PNG"), "image/png", chain, cc.manifest("trainedAlgorithmicMedia"))
    monkeypatch.setattr(provenance, "MAX_MANIFEST_BYTES", 512)
    result, elapsed = timed(signed)
    _assert_clean(result, elapsed, "unreadable")
    assert result.c2pa["state"] == "unreadable" and "exceeds" in result.c2pa["error"]
    assert result.verified is False and result.declared_ai_generated is None


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9])
def test_truncated_files(chain, fmt, keep):
    mime = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}[fmt]
    for data in (cc.picture(fmt), cc.sign(cc.picture(fmt), mime, chain, cc.manifest())):
        result, elapsed = timed(data[: int(len(data) * keep)])
        _assert_clean(result, elapsed, "none", "unreadable", "invalid", "found")
        assert result.verified is False


def test_truncated_signed_video(chain, tmp_path):
    clip = media.write_video(tmp_path / "clip.mp4", frames=5)
    signed = cc.sign(clip.read_bytes(), "video/mp4", chain, cc.manifest())
    for keep in (0.2, 0.6, 0.95):
        result, elapsed = timed(signed[: int(len(signed) * keep)])
        _assert_clean(result, elapsed, "none", "unreadable", "invalid")
        assert result.verified is False


def test_png_with_thousands_of_chunks():
    chunks = [cc.png_chunk(b"tEXt", b"k%d\x00v" % i) for i in range(20_000)]
    # the chunk cap is what stops this file, not the time budget (which a busy machine can hit)
    result, elapsed = timed(cc.png_with_chunks(cc.picture("PNG"), chunks), time_budget_s=30)
    _assert_clean(result, elapsed, "none")
    assert any("chunks" in error for error in result.errors)


def test_manifest_beyond_the_chunk_limit_is_left_to_the_library(chain):
    signed = cc.sign(cc.picture("PNG"), "image/png", chain, cc.manifest("trainedAlgorithmicMedia"))
    filler = [cc.png_chunk(b"prVt", b"x")] * (provenance.MAX_PNG_CHUNKS + 10)
    result, elapsed = timed(cc.png_with_chunks(signed, filler))
    # the inserted chunks break the hash binding: the library was consulted and says so
    _assert_clean(result, elapsed, "invalid")
    assert result.declared_ai_generated is None


def test_png_text_zlib_bomb_is_cut():
    bomb = zlib.compress(b"Steps: 1, " + b"\x00" * (64 << 20), 9)  # 64 MiB inflated
    chunk = cc.png_chunk(b"zTXt", b"parameters\x00\x00" + bomb)
    result, elapsed = timed(cc.png_with_chunks(cc.picture("PNG"), [chunk]))
    _assert_clean(result, elapsed, "found")
    assert len(result.metadata_traces[0]["value"]) <= provenance.EXCERPT_CHARS


def test_png_chunk_claiming_more_than_the_file():
    chunk = struct.pack(">I4s", 0x7FFFFFFF, b"tEXt") + b"parameters\x00Steps: 1"
    result, elapsed = timed(cc.png_with_chunks(cc.picture("PNG"), [chunk]))
    _assert_clean(result, elapsed, "none")
    assert any("past the end" in error for error in result.errors)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # Pillow says so; the read goes on
def test_corrupt_exif_block():
    payload = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08" + b"\xff" * 64
    result, elapsed = timed(cc.jpeg_with_segment(cc.picture(), 0xE1, payload))
    _assert_clean(result, elapsed, "none")


@pytest.mark.parametrize("data", [b"", b"\x00", os.urandom(4096), b"\xff\xd8\xff" + b"\xff" * 100])
def test_garbage_bytes(data):
    result, elapsed = timed(data)
    _assert_clean(result, elapsed, "none", "unreadable")


def test_missing_path_is_unreadable(tmp_path):
    result, elapsed = timed(tmp_path / "nope.jpg")
    _assert_clean(result, elapsed, "unreadable")
    assert result.errors


def test_random_corruption_never_raises(chain):
    import random

    rng = random.Random(7)
    signed = cc.sign(cc.picture(), "image/jpeg", chain, cc.manifest("trainedAlgorithmicMedia"))
    for _ in range(60):
        data = bytearray(signed)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        result, elapsed = timed(bytes(data))
        _assert_clean(result, elapsed, "none", "found", "invalid", "unreadable")
        if result.declared_ai_generated:
            assert result.verified is True  # only a manifest that still validates declares


def test_time_budget_is_enforced():
    result = read_provenance(cc.picture("PNG"), time_budget_s=0.0)
    assert result.status == "unreadable"
    assert any("time budget" in error for error in result.errors)
