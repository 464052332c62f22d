"""Content Credentials made in the test: a throwaway certificate chain (root, intermediate, leaf
with the key usage C2PA asks of a signer) and pictures signed with it, offline (no timestamp
authority). Nothing here is committed media; everything is generated on each run."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
from typing import Any

import c2pa
import numpy as np
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


@dataclasses.dataclass(frozen=True)
class Chain:
    leaf_and_intermediate_pem: bytes  # what the signer embeds
    root_pem: str  # the anchor a deployment would configure to trust this signer
    key_pem: bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "RRR Test Signing"),
        ]
    )


def _usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.subject if issuer else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(_usage(sign=not ca, ca=ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    )
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_chain() -> Chain:
    """Root CA -> intermediate CA -> leaf signer, all ECDSA P-256 (C2PA's ES256)."""
    pem = serialization.Encoding.PEM
    root_key, mid_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _certificate("RRR Test Root CA", root_key, None, root_key, ca=True)
    mid = _certificate("RRR Test Intermediate CA", mid_key, root, root_key, ca=True)
    leaf = _certificate("RRR Test Signer", leaf_key, mid, mid_key, ca=False)
    key = leaf_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Chain(
        leaf.public_bytes(pem) + mid.public_bytes(pem), root.public_bytes(pem).decode(), key
    )


def manifest(
    source_type: str | None = "digitalCapture",
    action: str = "c2pa.created",
    agent: str = "RRR Test Camera",
    title: str = "picture",
) -> dict[str, Any]:
    entry: dict[str, Any] = {"action": action, "softwareAgent": {"name": agent}}
    if source_type:
        entry["digitalSourceType"] = IPTC + source_type
    return {
        "claim_generator_info": [{"name": "rrr-tests", "version": "1.0"}],
        "title": title,
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [entry]}}],
    }


_CONTEXT: Any = None


def _context() -> Any:
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = c2pa.Context.from_dict(
            {
                "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
                "builder": {"thumbnail": {"enabled": False}},
            }
        )
    return _CONTEXT


def sign(
    data: bytes,
    mime: str,
    chain: Chain,
    definition: dict[str, Any],
    ingredients: list[tuple[dict[str, Any], str, bytes]] = (),  # type: ignore[assignment]
) -> bytes:
    """``data`` with a C2PA manifest built from ``definition``, signed by the leaf of ``chain``."""
    info = c2pa.C2paSignerInfo(
        c2pa.C2paSigningAlg.ES256, chain.leaf_and_intermediate_pem, chain.key_pem, None
    )
    with c2pa.Signer.from_info(info) as signer:
        builder = c2pa.Builder(definition, context=_context())
        for ingredient, ingredient_mime, ingredient_data in ingredients:
            builder.add_ingredient(ingredient, ingredient_mime, io.BytesIO(ingredient_data))
        out = io.BytesIO()
        builder.sign(signer, mime, io.BytesIO(data), out)
        return out.getvalue()


def picture(
    fmt: str = "JPEG", size: tuple[int, int] = (96, 64), seed: int = 0, **save: Any
) -> bytes:
    array = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **save)
    return buffer.getvalue()


def xmp_packet(attributes: str = "", elements: str = "") -> bytes:
    """An XMP packet whose rdf:Description carries ``attributes`` and child ``elements``."""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about=""'
        ' xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"'
        ' xmlns:xmp="http://ns.adobe.com/xap/1.0/"'
        f" {attributes}>{elements}</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode()


def jpeg_with_segment(jpeg: bytes, marker: int, payload: bytes) -> bytes:
    """``jpeg`` with one more marker segment right after its start-of-image marker."""
    assert len(payload) + 2 <= 0xFFFF
    segment = bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload
    return jpeg[:2] + segment + jpeg[2:]


def png_chunk(kind: bytes, data: bytes) -> bytes:
    import zlib

    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def png_with_chunks(png: bytes, chunks: list[bytes]) -> bytes:
    """``png`` with extra chunks inserted right after its IHDR chunk."""
    ihdr_end = 8 + 12 + int.from_bytes(png[8:12], "big")
    return png[:ihdr_end] + b"".join(chunks) + png[ihdr_end:]
