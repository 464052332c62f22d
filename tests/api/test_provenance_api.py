"""Provenance in every result, end to end through the API: files signed in the test (a throwaway
certificate chain made here, no network) or carrying unsigned metadata are uploaded, the worker's
own tasks run them in this process (``run_job_here``), and ``result.provenance`` is read back
beside the model's verdict. A hostile packet never fails a job."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import pytest
from PIL import PngImagePlugin

from detection.provenance import NOTE
from tests.support import FACES, media
from tests.support import provenance as cc
from tests.support.jobs import run_job_here

pytestmark = pytest.mark.timeout(180)

REAL_CROP = FACES / "real" / "mcehvkoidm.jpg"
A1111 = (
    "a portrait photo of a woman\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, "
    "CFG scale: 7, Seed: 1234, Size: 512x512, Model hash: abc123, Model: sd15"
)
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
PROVENANCE_KEYS = {
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
    "note",
}


@pytest.fixture(scope="module")
def chain() -> cc.Chain:
    return cc.make_chain()


def flip(data: bytes, at: int, n: int = 8) -> bytes:
    out = bytearray(data)
    out[at : at + n] = bytes(b ^ 0xFF for b in out[at : at + n])
    return bytes(out)


def jpeg_with_xmp(packet: bytes) -> bytes:
    return cc.jpeg_with_segment(cc.picture(), 0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + packet)


def hostile_jumbf() -> bytes:
    """A JPEG whose APP11 segment holds a C2PA JUMBF box claiming ~2 GiB, then garbage."""
    c2pa_uuid = bytes.fromhex("6332706100110010800000aa00389b71")
    jumbf = (
        b"JP\x02\x11\x00\x00\x00\x01"
        + struct.pack(">I4s", 0x7FFFFFF0, b"jumb")
        + struct.pack(">I4s", 30, b"jumd")
        + c2pa_uuid
        + b"\x03c2pa\x00"
        + os.urandom(400)
    )
    return cc.jpeg_with_segment(cc.picture(), 0xEB, jumbf)


def png_with_parameters() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111)
    return cc.picture("PNG", pnginfo=info)


def files(chain: cc.Chain) -> dict[str, tuple[str, bytes]]:
    """Every case: name -> (file name, bytes)."""
    ai = cc.manifest("trainedAlgorithmicMedia", agent="RRR Test Generator")
    signed_ai = cc.sign(cc.picture(size=(128, 96)), "image/jpeg", chain, ai)
    return {
        "signed": (
            "signed.jpg",
            cc.sign(cc.picture(), "image/jpeg", chain, cc.manifest("digitalCapture")),
        ),
        "ai": ("ai.jpg", cc.sign(REAL_CROP.read_bytes(), "image/jpeg", chain, ai)),
        "tampered": ("tampered.jpg", flip(signed_ai, signed_ai.find(b"\xff\xda") + 40)),
        "xmp": (
            "xmp.jpg",
            jpeg_with_xmp(
                cc.xmp_packet(f'Iptc4xmpExt:DigitalSourceType="{cc.IPTC}trainedAlgorithmicMedia"')
            ),
        ),
        "png": ("params.png", png_with_parameters()),
        "none": ("plain.jpg", cc.picture()),
        "entity-bomb": ("bomb.jpg", jpeg_with_xmp(BILLION_LAUGHS.encode())),
        "jumbf": ("jumbf.jpg", hostile_jumbf()),
    }


def check(case: str, p: dict) -> None:
    """What each case must say."""
    assert set(p) >= PROVENANCE_KEYS and p["note"] == NOTE
    if case == "signed":
        assert p["status"] == "found" and p["verified"] is True and p["trusted"] is False
        assert p["c2pa"]["state"] == "valid"
        assert p["c2pa"]["signer"]["common_name"] == "RRR Test Signer"
        assert p["declared_ai_generated"] is False and p["declaration_evidence"] == "signed"
    elif case == "ai":
        assert p["status"] == "found" and p["verified"] is True
        assert p["declared_ai_generated"] is True
        assert p["declared_source_type"] == "trainedAlgorithmicMedia"
        assert p["declared_generator"] == "RRR Test Generator"
        assert p["declaration_evidence"] == "signed" and p["declared_by"] == ["c2pa"]
    elif case == "tampered":
        assert p["status"] == "invalid" and p["verified"] is False
        assert "assertion.dataHash.mismatch" in p["c2pa"]["failures"]
        assert p["declared_ai_generated"] is None  # a broken manifest declares nothing
    elif case == "xmp":
        assert p["status"] == "found" and p["c2pa"] is None and p["verified"] is False
        assert p["declared_ai_generated"] is True
        assert p["declaration_evidence"] == "unsigned" and p["declared_by"] == ["xmp"]
    elif case == "png":
        assert p["status"] == "found" and p["c2pa"] is None
        [trace] = p["metadata_traces"]
        assert trace["source"] == "png:tEXt" and trace["field"] == "parameters"
        assert p["declared_ai_generated"] is True and p["declared_by"] == ["png_text"]
        assert p["declaration_evidence"] == "unsigned"
    elif case == "none":
        assert p["status"] == "none" and p["declared_ai_generated"] is None
        assert p["c2pa"] is None and p["xmp"] is None and p["metadata_traces"] == []
    elif case == "entity-bomb":
        assert p["status"] == "unreadable" and p["xmp"]["state"] == "unreadable"
        assert p["declared_ai_generated"] is None
    elif case == "jumbf":
        assert p["status"] in ("unreadable", "none") and p["verified"] is False
        assert p["declared_ai_generated"] is None
    else:
        raise AssertionError(case)


def _submit(client, **files) -> str:
    response = client.post("/v1/jobs", data=files, content_type="multipart/form-data")
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()["id"]


def _finished(client, job_id: str) -> dict:
    run_job_here(job_id)
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["status"] == "succeeded", job
    return job


CASES = ["signed", "ai", "tampered", "xmp", "png", "none", "entity-bomb", "jumbf"]


@pytest.mark.parametrize("case", CASES)
def test_image_result_carries_provenance(client, chain, case):
    name, data = files(chain)[case]
    job = _finished(client, _submit(client, file=(io.BytesIO(data), name)))
    result = job["result"]
    check(case, result["provenance"])
    # beside the model's verdict, timed with the other stages
    assert result["prediction"] in ("FAKE", "REAL", "UNCERTAIN", "NO_FACE")
    assert "elapsed_ms" not in result["provenance"]
    assert result["timings_ms"]["provenance"] >= 0
    if case == "ai":  # a real face: the model's verdict and the declaration side by side
        assert result["faces"] and result["prediction"] != "NO_FACE"


def test_trust_anchors_setting_makes_the_signer_trusted(client, chain, tmp_path, override_settings):
    anchors = tmp_path / "anchors.pem"
    anchors.write_text(chain.root_pem)
    override_settings(RRR_C2PA_TRUST_ANCHORS=str(anchors))
    name, data = files(chain)["signed"]
    p = _finished(client, _submit(client, file=(io.BytesIO(data), name)))["result"]["provenance"]
    assert p["trusted"] is True and p["c2pa"]["state"] == "trusted" and p["verified"] is True


def test_unreadable_trust_anchors_never_fail_a_job(client, chain, tmp_path, override_settings):
    override_settings(RRR_C2PA_TRUST_ANCHORS=str(tmp_path / "missing.pem"))
    name, data = files(chain)["signed"]
    job = _finished(client, _submit(client, file=(io.BytesIO(data), name)))
    p = job["result"]["provenance"]
    assert p["verified"] is True and p["trusted"] is False
    assert any("trust anchors" in error for error in p["errors"])
    assert str(tmp_path) not in str(p)  # no server paths leak


def test_batch_items_each_carry_their_own_provenance(client, chain):
    cases = files(chain)
    upload = [(io.BytesIO(data), name) for name, data in cases.values()]
    signed = cases["ai"][1]
    upload.append((io.BytesIO(signed[: len(signed) // 2]), "cut.jpg"))  # stored, undecodable
    upload.append((io.BytesIO(b"text, not an image"), "notes.jpg"))  # refused at upload
    job = _finished(client, _submit(client, files=upload))
    items = job["result"]["items"]
    assert [item["filename"] for item in items[:-2]] == [name for name, _ in cases.values()]
    for case, item in zip(cases, items, strict=False):
        assert "error" not in item, item
        check(case, item["provenance"])
        assert item["provenance"]["elapsed_ms"] >= 0  # batch items have no timings of their own
    cut, refused = items[-2:]
    assert cut["error"]["code"] == "image_corrupt"
    assert cut["provenance"]["declared_ai_generated"] is None  # a cut manifest declares nothing
    assert refused["error"]["code"] == "unsupported_media_type"
    assert "provenance" not in refused  # no stored file, nothing to read
    assert job["result"]["summary"]["processed"] == len(cases)


def test_video_provenance_is_read_once_and_lands_in_the_result(
    client, chain, tmp_path, override_settings, monkeypatch
):
    override_settings(RRR_SEGMENT_SECONDS="1")  # several segments: still one reading
    clip = media.write_video(tmp_path / "clip.mp4", frames=30, fps=10)
    signed = cc.sign(clip.read_bytes(), "video/mp4", chain, cc.manifest("trainedAlgorithmicMedia"))
    import worker.videos

    calls: list[Path] = []
    real = worker.videos.file_provenance
    monkeypatch.setattr(
        worker.videos,
        "file_provenance",
        lambda path, mime=None: calls.append(path) or real(path, mime),
    )
    job = _finished(
        client, _submit(client, file=(io.BytesIO(signed), "signed.mp4"), sample_fps="2")
    )
    result = job["result"]
    assert result["segments"]["count"] >= 3 and len(calls) == 1
    p = result["provenance"]
    assert p["status"] == "found" and p["verified"] is True and p["c2pa"]["state"] == "valid"
    assert p["declared_ai_generated"] is True and p["declaration_evidence"] == "signed"
    assert "elapsed_ms" not in p and result["timings_ms"]["provenance"] >= 0
    assert result["prediction"] in ("NO_FACE", "FAKE", "REAL", "UNCERTAIN")

    # the same bytes changed after signing: invalid, and the job still succeeds
    tampered = flip(signed, len(signed) - 2000, 64)
    job = _finished(client, _submit(client, file=(io.BytesIO(tampered), "tampered.mp4")))
    assert job["result"]["provenance"]["status"] == "invalid"


def test_video_without_metadata_says_none(client, tmp_path):
    clip = media.write_video(tmp_path / "plain.mp4", frames=10)
    job = _finished(client, _submit(client, file=(io.BytesIO(clip.read_bytes()), "plain.mp4")))
    p = job["result"]["provenance"]
    assert p["status"] == "none" and p["declared_ai_generated"] is None and p["note"] == NOTE


def test_prototype_shims_keep_their_shapes(client, chain, monkeypatch):
    """/predict and /predict/batch answer in the prototype's shapes: no provenance there."""
    import api.predict

    wait = api.predict._wait
    monkeypatch.setattr(api.predict, "_wait", lambda job_id: run_job_here(job_id) or wait(job_id))
    name, data = files(chain)["ai"]
    one = client.post(
        "/predict", data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data"
    )
    assert one.status_code == 200, one.get_data(as_text=True)
    assert "provenance" not in one.get_json()
    batch = client.post(
        "/predict/batch",
        data={"files": [(io.BytesIO(data), name), (io.BytesIO(data), "b.jpg")]},
        content_type="multipart/form-data",
    )
    assert batch.status_code == 200, batch.get_data(as_text=True)
    assert "provenance" not in batch.get_data(as_text=True)


def test_openapi_describes_provenance(client):
    spec = client.get("/v1/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    provenance = schemas["Provenance"]
    assert {"status", "declared_ai_generated", "note"} <= set(provenance["properties"])
    assert provenance["properties"]["status"]["enum"] == ["none", "found", "invalid", "unreadable"]
    ref = {"$ref": "#/components/schemas/Provenance"}
    for name in ("ImageResult", "BatchItem", "VideoResult"):
        assert schemas[name]["properties"]["provenance"] == ref, name
