#!/usr/bin/env python3
"""Test SAML 2.0 identity provider for latchkey's integration tests.

TEST TOOLING ONLY. Every key this script writes or reads is a test key whose private half is
committed to the repository; nothing it produces may ever be trusted outside tests.

    python3 tests/support/saml_idp.py <command> --json '<params>'     # one request
    python3 tests/support/saml_idp.py <command> --json '[{..},{..}]'  # batch: list in, list out
    python3 tests/support/saml_idp.py <command> --json -              # params read from stdin

Commands: keys, metadata, response, idp-login, selftest. The exact parameters and outputs are in
tests/support/README.md. Output is one JSON document on stdout; on error the exit status is 1 and
stdout holds {"error": "..."}.

Shapes follow the real vendor documents in the shared idp-samples folder (see its SOURCES.md);
the per-vendor differences live in the SHAPES table below. Signing uses signxml (enveloped,
exclusive c14n, RSA-SHA256 by default), and `selftest` checks every signature with `xmlsec1`.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import fcntl
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit
from xml.sax.saxutils import escape as xml_escape

from lxml import etree

REPO = Path(__file__).resolve().parents[2]
DEFAULT_KEYS_DIR = REPO / "idp-fixtures" / "keys"

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
XS = "http://www.w3.org/2001/XMLSchema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
FED = "http://docs.oasis-open.org/wsfed/federation/200706"
AUTH = "http://docs.oasis-open.org/wsfed/authorization/200706"
WSA = "http://www.w3.org/2005/08/addressing"

BINDINGS = {
    "redirect": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
    "post": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
    "soap": "urn:oasis:names:tc:SAML:2.0:bindings:SOAP",
    "artifact": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact",
}
NAMEID = {
    "emailAddress": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    "unspecified": "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
    "persistent": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    "transient": "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
    "entity": "urn:oasis:names:tc:SAML:2.0:nameid-format:entity",
}
ATTRNAME_BASIC = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"
ATTRNAME_UNSPECIFIED = "urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
STATUS_PREFIX = "urn:oasis:names:tc:SAML:2.0:status:"
CLAIMS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
MS_CLAIMS = "http://schemas.microsoft.com/identity/claims/"

SIG_ALGS = {  # name -> (signxml signature algorithm, signxml digest algorithm)
    "rsa-sha256": ("rsa-sha256", "sha256"),
    "rsa-sha384": ("rsa-sha384", "sha384"),
    "rsa-sha512": ("rsa-sha512", "sha512"),
    "rsa-sha1": ("rsa-sha1", "sha1"),
    "ecdsa-sha256": ("ecdsa-sha256", "sha256"),
    "ecdsa-sha384": ("ecdsa-sha384", "sha384"),
    "ecdsa-sha512": ("ecdsa-sha512", "sha512"),
}
# Algorithm URIs (for pysaml2, which takes URIs rather than signxml's names).
SIG_ALG_URIS = {
    "rsa-sha256": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "rsa-sha384": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "rsa-sha512": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "rsa-sha1": "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    "ecdsa-sha256": "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "ecdsa-sha384": "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "ecdsa-sha512": "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
}
DIGEST_URIS = {
    "sha256": "http://www.w3.org/2001/04/xmlenc#sha256",
    "sha384": "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "sha512": "http://www.w3.org/2001/04/xmlenc#sha512",
    "sha1": "http://www.w3.org/2000/09/xmldsig#sha1",
}
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"

VENDORS = ("azure-ad", "okta", "onelogin", "pingfederate", "generic")

# The classic XML Signature Wrapping shapes (Somorovsky et al., "On Breaking SAML", USENIX
# Security 2012), exactly as SAML Raider's XSWHelpers builds them. "Evil" means the NameID and
# email values are replaced by `evil_email`; the original signature is left untouched.
XSW = {
    "xsw1": "Response signed: unsigned copy of the original Response moved INTO its Signature; outer Response evil, ID=_evil_response_ID",
    "xsw2": "Response signed: unsigned copy of the original Response inserted as a sibling BEFORE the Signature; outer Response evil, ID=_evil_response_ID",
    "xsw3": "Assertion signed: unsigned evil copy (ID=_evil_assertion_ID) inserted BEFORE the original signed Assertion",
    "xsw4": "Assertion signed: unsigned evil copy (ID=_evil_assertion_ID) appended to the Response, original signed Assertion moved INSIDE it",
    "xsw5": "Assertion signed: first Assertion made evil (ID=_evil_assertion_ID) but keeps the Signature; unsigned original copy appended at the END of the Response",
    "xsw6": "Assertion signed: first Assertion made evil (ID=_evil_assertion_ID) but keeps the Signature; unsigned original copy moved INTO that Signature",
    "xsw7": "Assertion signed: samlp:Extensions inserted before the original Assertion, holding an unsigned evil copy with the SAME ID",
    "xsw8": "Assertion signed: first Assertion made evil (same ID) and keeps the Signature; unsigned original copy placed in a ds:Object INSIDE that Signature",
}
MUTATIONS = {
    **XSW,
    "strip_signature": "every ds:Signature removed after signing",
    "attacker_key_with_keyinfo": "signed by the attacker key, attacker certificate in KeyInfo",
    "modify_after_sign": "NameID and email values replaced by evil_email after signing (digest mismatch)",
    "comment_in_nameid": "NameID/email text is email+comment_suffix with <!----> before the suffix; signature VALID (exc-c14n drops comments); the SP must read the whole value",
    "dtd": "DOCTYPE with an internal entity whose expansion is the signed NameID/email text (entity-expanding verifiers see a valid signature)",
    "entity_expansion": "billion-laughs DOCTYPE, &lol9; used in the NameID",
    "xxe": "DOCTYPE with an external entity (file:///etc/hostname) used in the NameID",
    "sha1": "signed with rsa-sha1 / sha1 digests (signature valid, algorithm must be refused)",
    "xslt_transform": "the first Reference gets an XSLT transform (2^xslt_depth recursive calls, default 22) instead of exc-c14n; xmlsec runs it BEFORE checking any signature value",
    "oversized": "a signed padding attribute makes the decoded XML larger than oversize_bytes (default 1 MiB + 64 KiB); signature valid",
    "deflate_bomb": "SAMLResponse is base64 of a raw-deflate stream inflating to bomb_mib MiB (default 256); not XML until inflated",
}
# Mutations whose signature still verifies against the IdP certificate in isolation.
# (xsw1/2/6/7/8 carry the genuine signature too, but a correct verifier fails them: duplicate IDs,
# or the signed copy sits inside the Signature that the enveloped transform removes.)
MUTATION_SIG_VALID = {"comment_in_nameid", "sha1", "oversized", "xsw3", "xsw4", "xsw5"}


class UsageError(Exception):
    pass


# --------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------

KEY_NAMES = ("idp", "idp2", "attacker", "idp-ec")
CERT_NAMES = ("idp", "idp2", "attacker", "idp-expired", "idp-ec")


def _keys_dir(p: dict) -> Path:
    return Path(p.get("keys_dir") or os.environ.get("LATCHKEY_TEST_IDP_KEYS") or DEFAULT_KEYS_DIR)


def ensure_keys(directory: Path) -> dict:
    """Creates (once) the test key pairs and self-signed certificates in `directory`.

    idp / idp2 are two IdP keys for rollover tests, attacker is a key the SP must never trust,
    idp-ec is an ECDSA (P-256) IdP key for IdPs that sign with elliptic curves,
    idp-expired.crt.pem is a certificate for the idp key whose validity ended in 2016. A file
    lock makes concurrent test processes safe: the loser of the race reuses the winner's files.
    """
    directory.mkdir(parents=True, exist_ok=True)
    wanted = [directory / f"{n}.key.pem" for n in KEY_NAMES] + [directory / f"{n}.crt.pem" for n in CERT_NAMES]
    if not all(f.exists() for f in wanted):
        # The lock lives outside the (committed) key folder.
        lock_path = Path(tempfile.gettempdir()) / f"saml_idp-{hashlib.sha1(str(directory.resolve()).encode()).hexdigest()[:16]}.lock"
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not all(f.exists() for f in wanted):
                _generate_keys(directory)
    return {
        "dir": str(directory),
        "keys": {n: str(directory / f"{n}.key.pem") for n in KEY_NAMES},
        "certs": {n: str(directory / f"{n}.crt.pem") for n in CERT_NAMES},
        "certs_b64": {n: cert_b64(load_cert_pem(directory, n)) for n in CERT_NAMES},
    }


def _generate_keys(directory: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    def write(path: Path, data: bytes) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def self_signed(key, cn: str, not_before: dt.datetime, not_after: dt.datetime) -> bytes:
        name = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "latchkey tests"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "TEST ONLY - never trust"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .sign(key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM)

    utc = dt.timezone.utc
    keys = {}
    for name in KEY_NAMES:
        path = directory / f"{name}.key.pem"
        if path.exists():
            keys[name] = serialization.load_pem_private_key(path.read_bytes(), None)
            continue
        if name.endswith("-ec"):
            keys[name] = ec.generate_private_key(ec.SECP256R1())
        else:
            keys[name] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = keys[name].private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write(path, pem)
    validity = (dt.datetime(2020, 1, 1, tzinfo=utc), dt.datetime(2120, 1, 1, tzinfo=utc))
    for name in KEY_NAMES:
        path = directory / f"{name}.crt.pem"
        if not path.exists():
            write(path, self_signed(keys[name], f"latchkey test {name} (TEST ONLY)", *validity))
    path = directory / "idp-expired.crt.pem"
    if not path.exists():
        expired = (dt.datetime(2015, 1, 1, tzinfo=utc), dt.datetime(2016, 1, 1, tzinfo=utc))
        write(path, self_signed(keys["idp"], "latchkey test idp, expired (TEST ONLY)", *expired))
    readme = directory / "README.md"
    if not readme.exists():
        write(readme, b"TEST-ONLY keys written by tests/support/saml_idp.py. Never use them outside tests.\n")


def load_key_pem(directory: Path, name: str) -> bytes:
    if name not in KEY_NAMES:
        raise UsageError(f"unknown key {name!r}; expected one of {KEY_NAMES}")
    ensure_keys(directory)
    return (directory / f"{name}.key.pem").read_bytes()


_key_cache: dict = {}


def load_private_key(directory: Path, name: str):
    """The parsed key, cached: cryptography's RSA key validation costs ~40 ms per load, which
    dominated batch runs. Skipping it is fine for keys this script generated itself."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    cache_key = (str(directory), name)
    if cache_key not in _key_cache:
        _key_cache[cache_key] = load_pem_private_key(load_key_pem(directory, name), None,
                                                     unsafe_skip_rsa_key_validation=True)
    return _key_cache[cache_key]


def load_cert_pem(directory: Path, name_or_pem: str) -> str:
    """A certificate given either by name (idp, idp2, attacker, idp-expired) or as PEM text."""
    if "BEGIN CERTIFICATE" in name_or_pem:
        return name_or_pem
    if name_or_pem not in CERT_NAMES:
        raise UsageError(f"unknown certificate {name_or_pem!r}; expected PEM or one of {CERT_NAMES}")
    path = directory / f"{name_or_pem}.crt.pem"
    if not path.exists():
        ensure_keys(directory)
    return path.read_text()


def cert_b64(pem: str) -> str:
    """The base64 DER body of a PEM certificate, on one line (what X509Certificate carries)."""
    body = re.search(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", pem, re.S)
    if not body:
        raise UsageError("not a PEM certificate")
    return "".join(body.group(1).split())


def wrap(text: str, width: int, sep: str = "\n") -> str:
    return sep.join(text[i : i + width] for i in range(0, len(text), width))


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def iso(ts: float, style: str) -> str:
    """SAML dateTime in UTC. `ms`: 2024-01-02T03:04:05.678Z (most vendors); `s`: no fraction (OneLogin)."""
    t = dt.datetime.fromtimestamp(ts, dt.timezone.utc)
    if style == "s":
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def el(parent, ns: str | None, tag: str, attrs: list | tuple = (), text: str | None = None, nsmap=None):
    """Appends an element; attrs is an ordered list of (name, value) and None values are skipped."""
    qname = f"{{{ns}}}{tag}" if ns else tag
    node = etree.SubElement(parent, qname, nsmap=nsmap) if parent is not None else etree.Element(qname, nsmap=nsmap)
    for k, v in attrs:
        if v is not None:
            node.set(k, v)
    if text is not None:
        node.text = text
    return node


def serialize(root) -> str:
    return etree.tostring(root, encoding="unicode")


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def status_uri(value: str) -> str:
    return value if value.startswith("urn:") else STATUS_PREFIX + value


def nameid_format(value: str | None) -> str | None:
    if value is None:
        return None
    return NAMEID.get(value, value)


def binding_uri(value: str) -> str:
    return BINDINGS.get(value, value)


# --------------------------------------------------------------------------------------------
# Vendor shapes (modelled on the real documents in the shared idp-samples folder)
# --------------------------------------------------------------------------------------------


@dataclass
class Shape:
    name: str
    entity_id: str
    sso_url: str
    slo_url: str | None
    sso_bindings: tuple
    xml_decl: str | None
    p: str  # protocol prefix
    a: str | None  # assertion prefix, None = default namespace
    assertion_ns_on_root: bool  # assertion namespace declared on Response (OneLogin) or per element
    root_extra_ns: dict
    assertion_extra_ns: dict
    issuer_format: str | None
    time_style: str
    sig_default_ns: bool  # <Signature xmlns="...xmldsig#"> (Microsoft) instead of ds: prefix
    sign: str
    key_info: bool
    inclusive_prefixes: list | None
    statements: tuple  # order of AuthnStatement / AttributeStatement
    name_id_format: str | None
    email_attribute: str | None
    attr_name_format: str | None
    attr_value_type: str | None  # xsi:type of AttributeValue
    attr_value_ns_on_value: bool  # xs/xsi declared on every AttributeValue (Okta, Ping, Google)
    not_before: int  # offsets from IssueInstant in seconds
    not_on_or_after: int
    subject_not_on_or_after: int
    session_not_on_or_after: int | None
    authn_context: str
    want_authn_requests_signed: bool | None
    id_response: Callable
    id_assertion: Callable
    extra_attributes: Callable = field(default=lambda email, p: {})


def _hex(rng, n):
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def _guid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _ping_id(rng):
    # PingFederate IDs: 27 characters that may contain '.', '-' and '_' (never first: NCName).
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
    return rng.choice("abcdefghijklmnopqrstuvwxyz") + "".join(rng.choice(alphabet) for _ in range(26))


def _azure_attrs(email: str, p: dict) -> dict:
    local = email.split("@")[0]
    tenant = re.search(r"sts\.windows\.net/([^/]+)/", p["idp_entity_id"])
    return {
        MS_CLAIMS + "tenantid": tenant.group(1) if tenant else "00000000-0000-0000-0000-000000000000",
        MS_CLAIMS + "objectidentifier": str(uuid.uuid5(uuid.NAMESPACE_URL, "oid:" + email)),
        MS_CLAIMS + "displayname": local.capitalize() + " Test",
        MS_CLAIMS + "identityprovider": p["idp_entity_id"],
        "http://schemas.microsoft.com/claims/authnmethodsreferences": "http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password",
        CLAIMS + "givenname": local.capitalize(),
        CLAIMS + "surname": "Test",
    }


TEST_TENANT = "4f1c5c8e-7d2a-4b8e-9a3b-0c6d1e2f3a4b"

SHAPES = {
    # Entra ID / Azure AD: MS docs "Single sign-on SAML protocol" + the federation metadata samples.
    "azure-ad": Shape(
        name="azure-ad",
        entity_id=f"https://sts.windows.net/{TEST_TENANT}/",
        sso_url=f"https://login.microsoftonline.com/{TEST_TENANT}/saml2",
        slo_url=f"https://login.microsoftonline.com/{TEST_TENANT}/saml2",
        sso_bindings=("redirect", "post"),
        xml_decl=None,
        p="samlp",
        a=None,
        assertion_ns_on_root=False,
        root_extra_ns={},
        assertion_extra_ns={},
        issuer_format=None,
        time_style="ms",
        sig_default_ns=True,
        sign="assertion",
        key_info=True,
        inclusive_prefixes=None,
        statements=("attr", "authn"),
        name_id_format=NAMEID["persistent"],
        email_attribute=CLAIMS + "emailaddress",
        attr_name_format=None,
        attr_value_type=None,
        attr_value_ns_on_value=False,
        not_before=0,
        not_on_or_after=70 * 60,
        subject_not_on_or_after=5 * 60,
        session_not_on_or_after=None,
        authn_context="urn:oasis:names:tc:SAML:2.0:ac:classes:Password",
        want_authn_requests_signed=None,
        id_response=lambda rng: "_" + _guid(rng),
        id_assertion=lambda rng: "_" + _guid(rng),
        extra_attributes=_azure_attrs,
    ),
    # Okta: okta/okta-response-gosaml2.xml and okta/okta-app-metadata.xml.
    "okta": Shape(
        name="okta",
        entity_id="http://www.okta.com/exk1latchkeyTest0h7",
        sso_url="https://latchkey-test.okta.example/app/latchkey_test_1/exk1latchkeyTest0h7/sso/saml",
        slo_url=None,
        sso_bindings=("post", "redirect"),
        xml_decl='<?xml version="1.0" encoding="UTF-8"?>',
        p="saml2p",
        a="saml2",
        assertion_ns_on_root=False,
        root_extra_ns={"xs": XS},
        assertion_extra_ns={},
        issuer_format=NAMEID["entity"],
        time_style="ms",
        sig_default_ns=False,
        sign="both",
        key_info=True,
        inclusive_prefixes=["xs"],
        statements=("authn", "attr"),
        name_id_format=NAMEID["emailAddress"],
        email_attribute="email",
        attr_name_format=ATTRNAME_UNSPECIFIED,
        attr_value_type="xs:string",
        attr_value_ns_on_value=True,
        not_before=-5 * 60,
        not_on_or_after=5 * 60,
        subject_not_on_or_after=5 * 60,
        session_not_on_or_after=None,
        authn_context="urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
        want_authn_requests_signed=False,
        id_response=lambda rng: "id" + "".join(rng.choice("0123456789") for _ in range(26)),
        id_assertion=lambda rng: "id" + "".join(rng.choice("0123456789") for _ in range(26)),
    ),
    # OneLogin: onelogin/onelogin-response-{503983,634027}.xml and onelogin-metadata-503983.xml.
    "onelogin": Shape(
        name="onelogin",
        entity_id="https://app.onelogin.com/saml/metadata/7730001",
        sso_url="https://latchkey-test.onelogin.example/trust/saml2/http-post/sso/7730001",
        slo_url=None,
        sso_bindings=("post", "post", "soap"),
        xml_decl=None,
        p="samlp",
        a="saml",
        assertion_ns_on_root=True,
        root_extra_ns={},
        assertion_extra_ns={"xs": XS, "xsi": XSI},
        issuer_format=None,
        time_style="s",
        sig_default_ns=False,
        sign="assertion",
        key_info=True,
        inclusive_prefixes=None,
        statements=("authn", "attr"),
        name_id_format=NAMEID["emailAddress"],
        email_attribute="User.email",
        attr_name_format=ATTRNAME_BASIC,
        attr_value_type="xs:string",
        attr_value_ns_on_value=False,
        not_before=-3 * 60,
        not_on_or_after=3 * 60,
        subject_not_on_or_after=3 * 60,
        session_not_on_or_after=24 * 3600,
        authn_context="urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
        want_authn_requests_signed=None,
        id_response=lambda rng: "R" + _hex(rng, 40),
        id_assertion=lambda rng: "pfx" + _guid(rng),
        extra_attributes=lambda email, p: {
            "User.FirstName": email.split("@")[0].capitalize(),
            "User.LastName": "Test",
            "memberOf": "",
        },
    ),
    # PingFederate: pingfederate/pfed11-response-01.xml (response signed, no KeyInfo by default).
    # No real PingFederate metadata exists in the samples; the metadata shape is reconstructed
    # from PingFederate's documented export (cacheDuration PT1440M, /idp/SSO.saml2 on port 9031).
    "pingfederate": Shape(
        name="pingfederate",
        entity_id="https://pingfed.latchkey-test.example:9031/eid/lktest01",
        sso_url="https://pingfed.latchkey-test.example:9031/idp/SSO.saml2",
        slo_url="https://pingfed.latchkey-test.example:9031/idp/SLO.saml2",
        sso_bindings=("redirect", "post"),
        xml_decl=None,
        p="samlp",
        a="saml",
        assertion_ns_on_root=False,
        root_extra_ns={},
        assertion_extra_ns={},
        issuer_format=None,
        time_style="ms",
        sig_default_ns=False,
        sign="response",
        key_info=False,
        inclusive_prefixes=None,
        statements=("authn", "attr"),
        name_id_format=NAMEID["emailAddress"],
        email_attribute=None,  # the real sample carries the email only in NameID
        attr_name_format=ATTRNAME_UNSPECIFIED,
        attr_value_type="xs:string",
        attr_value_ns_on_value=True,
        not_before=-5 * 60,
        not_on_or_after=5 * 60,
        subject_not_on_or_after=5 * 60,
        session_not_on_or_after=None,
        authn_context="urn:oasis:names:tc:SAML:2.0:ac:classes:Password",
        want_authn_requests_signed=False,
        id_response=_ping_id,
        id_assertion=_ping_id,
        extra_attributes=lambda email, p: {
            "firstname": email.split("@")[0].capitalize(),
            "group": "red,green,blue",
            "lastname": "Test",
        },
    ),
    # Generic: Google Workspace shape (generic/google-workspace-*.xml): saml2p/saml2 prefixes,
    # Response signed, NameID without Format, no email attribute. Its metadata offers Redirect
    # and POST (Google's own offers POST only: pass sso_bindings ["post","post"] for that).
    "generic": Shape(
        name="generic",
        entity_id="https://idp.latchkey-test.example/o/saml2?idpid=C0test01",
        sso_url="https://idp.latchkey-test.example/o/saml2/idp?idpid=C0test01",
        slo_url=None,
        sso_bindings=("redirect", "post"),
        xml_decl='<?xml version="1.0" encoding="UTF-8" standalone="no"?>',
        p="saml2p",
        a="saml2",
        assertion_ns_on_root=False,
        root_extra_ns={},
        assertion_extra_ns={},
        issuer_format=None,
        time_style="ms",
        sig_default_ns=False,
        sign="response",
        key_info=True,
        inclusive_prefixes=None,
        statements=("attr", "authn"),
        name_id_format=None,
        email_attribute=None,
        attr_name_format=None,
        attr_value_type="xs:anyType",
        attr_value_ns_on_value=True,
        not_before=-5 * 60,
        not_on_or_after=5 * 60,
        subject_not_on_or_after=5 * 60,
        session_not_on_or_after=None,
        authn_context="urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified",
        want_authn_requests_signed=False,
        id_response=lambda rng: "_" + _hex(rng, 32),
        id_assertion=lambda rng: "_" + _hex(rng, 32),
        extra_attributes=lambda email, p: {"firstName": email.split("@")[0].capitalize(), "lastName": "Test"},
    ),
}


def shape_of(p: dict) -> Shape:
    vendor = p.get("vendor")
    if vendor not in SHAPES:
        raise UsageError(f"vendor must be one of {VENDORS}, got {vendor!r}")
    return SHAPES[vendor]


# --------------------------------------------------------------------------------------------
# Signing
# --------------------------------------------------------------------------------------------

_signer_cache: dict = {}


def make_signer(sig_alg: str, default_ns: bool):
    from signxml import XMLSigner
    from signxml.algorithms import SignatureConstructionMethod

    class TestSigner(XMLSigner):
        # signxml refuses SHA-1 outright; the test IdP must be able to produce it so the SP can
        # prove it refuses it.
        def check_deprecated_methods(self):
            pass

        # signxml 5.2 digests an enveloped reference with its inclusive_ns_prefixes but forgets
        # to write the <ec:InclusiveNamespaces PrefixList> element, so no verifier could
        # reproduce the digest. Okta's shape needs PrefixList="xs"; write it here.
        def _build_transforms_for_reference(self, *, transforms_node, reference, exclude_c14n_transform_element=False):
            super()._build_transforms_for_reference(transforms_node=transforms_node, reference=reference,
                                                    exclude_c14n_transform_element=exclude_c14n_transform_element)
            if reference.inclusive_ns_prefixes and len(transforms_node):
                ec = "http://www.w3.org/2001/10/xml-exc-c14n#"
                etree.SubElement(transforms_node[-1], f"{{{ec}}}InclusiveNamespaces", nsmap={"ec": ec},
                                 PrefixList=" ".join(reference.inclusive_ns_prefixes))

    if sig_alg not in SIG_ALGS:
        raise UsageError(f"sig_alg must be one of {list(SIG_ALGS)}")
    key = (sig_alg, default_ns)
    if key not in _signer_cache:
        s_alg, d_alg = SIG_ALGS[sig_alg]
        signer = TestSigner(
            method=SignatureConstructionMethod.enveloped,
            signature_algorithm=s_alg,
            digest_algorithm=d_alg,
            c14n_algorithm=EXC_C14N,
        )
        signer.namespaces = {None: DS} if default_ns else {"ds": DS}
        _signer_cache[key] = signer
    return _signer_cache[key]


def sign_element(root, target, *, key, cert_pem: str | None, sig_alg: str, default_ns: bool,
                 inclusive_prefixes=None, key_info_el=None):
    """Signs `target` (an element of the tree `root`) with an enveloped signature placed right
    after target's Issuer, as SAML's schema wants. Returns the new root (signxml copies the tree).
    """
    from signxml import SignatureReference

    target_id = target.get("ID")
    placeholder = etree.Element(f"{{{DS}}}Signature", nsmap={None: DS} if default_ns else {"ds": DS})
    placeholder.set("Id", "placeholder")
    issuer = target.find(f"{{{SAML}}}Issuer")
    if issuer is not None:
        issuer.addnext(placeholder)
    else:
        target.insert(0, placeholder)
    signer = make_signer(sig_alg, default_ns)
    ref = SignatureReference(URI="#" + target_id, inclusive_ns_prefixes=inclusive_prefixes)
    kwargs = {}
    if key_info_el is not None:
        kwargs["key_info"] = key_info_el
    if cert_pem is None and key_info_el is None:
        # signxml writes a KeyValue when it has no certificate; vendors that omit KeyInfo omit
        # it entirely, so strip it afterwards.
        signed = signer.sign(root, key=key, reference_uri=[ref], **kwargs)
        for ki in signed.iter(f"{{{DS}}}KeyInfo"):
            if ki.getparent().tag == f"{{{DS}}}Signature" and ki.getparent().find(f"{{{DS}}}SignedInfo/{{{DS}}}Reference").get("URI") == "#" + target_id:
                ki.getparent().remove(ki)
        return _reparse(signed)
    return _reparse(signer.sign(root, key=key, cert=cert_pem, reference_uri=[ref], **kwargs))


def _reparse(root):
    # With a default-namespace Signature (Microsoft's shape) signxml builds SignedInfo & co. as
    # un-namespaced elements that only become ds: elements once serialized; re-parse so later
    # edits and searches see the document a verifier will see.
    return etree.fromstring(etree.tostring(root))


def find_by_id(root, id_value: str):
    hits = root.xpath("//*[@ID=$v]", v=id_value)
    return hits[0] if hits else None


# --------------------------------------------------------------------------------------------
# Response
# --------------------------------------------------------------------------------------------

RESPONSE_DEFAULTS = {
    "email": "alice@corp.example",
    "status": "Success",
    "key": "idp",
    "sig_alg": "rsa-sha256",
    "comment_suffix": ".attacker.example",
    "oversize_bytes": 1024 * 1024 + 64 * 1024,
    "bomb_mib": 256,
    "xslt_depth": 22,
}


def _persistent_id(email: str) -> str:
    return base64.b64encode(hashlib.sha256(("persistent:" + email).encode()).digest()).decode()


def response_params(p: dict) -> dict:
    """Fills in defaults; `None` (JSON null) always means "leave the attribute/element out"."""
    s = shape_of(p)
    q = {**RESPONSE_DEFAULTS, **p}
    if "acs_url" not in q and not ("destination" in q and "recipient" in q):
        raise UsageError("acs_url is required (or both destination and recipient)")
    if "sp_entity_id" not in q and "audience" not in q:
        raise UsageError("sp_entity_id is required (or audience)")
    now = time.time()
    q.setdefault("idp_entity_id", s.entity_id)
    q.setdefault("response_issuer", q["idp_entity_id"])
    q.setdefault("assertion_issuer", q["idp_entity_id"])
    q.setdefault("destination", q.get("acs_url"))
    q.setdefault("recipient", q.get("acs_url"))
    q.setdefault("audience", q.get("sp_entity_id"))
    q.setdefault("in_response_to", None)
    q.setdefault("issue_instant", now)
    ii = q["issue_instant"]
    q.setdefault("not_before", ii + s.not_before)
    q.setdefault("not_on_or_after", ii + s.not_on_or_after)
    q.setdefault("subject_not_on_or_after", ii + s.subject_not_on_or_after)
    q.setdefault("session_not_on_or_after", None if s.session_not_on_or_after is None else ii + s.session_not_on_or_after)
    q.setdefault("authn_instant", ii - 1)
    q.setdefault("name_id_format", s.name_id_format)
    q["name_id_format"] = nameid_format(q["name_id_format"])
    if "name_id" not in q:
        q["name_id"] = _persistent_id(q["email"]) if q["name_id_format"] == NAMEID["persistent"] else q["email"]
    q.setdefault("email_attribute", s.email_attribute)
    q.setdefault("sign", s.sign)
    q.setdefault("key_info", s.key_info)
    q.setdefault("subject_confirmation_method", BEARER)
    q.setdefault("include_assertion", status_uri(q["status"]) == STATUS_PREFIX + "Success")
    q.setdefault("evil_email", "admin@" + q["email"].split("@")[-1])
    mutation = q.get("mutation")
    if mutation is not None and mutation not in MUTATIONS:
        raise UsageError(f"mutation must be one of {sorted(MUTATIONS)}")
    # XSW needs the element it wraps to be signed; pick the closest honest shape when the caller
    # did not choose.
    if mutation in ("xsw1", "xsw2") and "sign" not in p and q["sign"] not in ("response", "both"):
        q["sign"] = "response"
    if mutation in XSW and mutation not in ("xsw1", "xsw2") and "sign" not in p and q["sign"] not in ("assertion", "both"):
        q["sign"] = "assertion"
    if q["sign"] not in ("assertion", "response", "both", "none"):
        raise UsageError("sign must be assertion, response, both or none")
    if mutation in ("xsw1", "xsw2") and q["sign"] not in ("response", "both"):
        raise UsageError(f"{mutation} needs a signed Response")
    if mutation in XSW and mutation not in ("xsw1", "xsw2") and q["sign"] not in ("assertion", "both"):
        raise UsageError(f"{mutation} needs a signed Assertion")
    if mutation == "sha1":
        q["sig_alg"] = "rsa-sha1"
    if mutation == "attacker_key_with_keyinfo":
        q["key"], q["key_info"] = "attacker", True
    if mutation in XSW and not q["include_assertion"]:
        raise UsageError("XSW mutations need an assertion")
    return q


def build_response(q: dict, rng: random.Random):
    s = SHAPES[q["vendor"]]
    t = lambda ts: None if ts is None else iso(ts, s.time_style)  # noqa: E731
    a_ns = {s.a: SAML}
    root_nsmap = {s.p: SAMLP, **(a_ns if s.assertion_ns_on_root else {}), **s.root_extra_ns}
    response_id = q.get("response_id") or s.id_response(rng)
    assertion_id = q.get("assertion_id") or s.id_assertion(rng)

    root = el(None, SAMLP, "Response", nsmap=root_nsmap)
    order = {
        "azure-ad": ["ID", "Version", "IssueInstant", "Destination", "InResponseTo"],
        "okta": ["Destination", "ID", "InResponseTo", "IssueInstant", "Version"],
        "onelogin": ["ID", "Version", "IssueInstant", "Destination", "InResponseTo"],
        "pingfederate": ["Version", "ID", "IssueInstant", "InResponseTo", "Destination"],
        "generic": ["Destination", "ID", "InResponseTo", "IssueInstant", "Version"],
    }[s.name]
    values = {"ID": response_id, "Version": "2.0", "IssueInstant": t(q["issue_instant"]),
              "Destination": q["destination"], "InResponseTo": q["in_response_to"]}
    for k in order:
        if values[k] is not None:
            root.set(k, values[k])

    def issuer(parent, value, declare):
        if value is None:
            return None
        return el(parent, SAML, "Issuer", [("Format", s.issuer_format)], value, nsmap=a_ns if declare else None)

    issuer(root, q["response_issuer"], declare=not s.assertion_ns_on_root)
    status = el(root, SAMLP, "Status")
    code = el(status, SAMLP, "StatusCode", [("Value", status_uri(q["status"]))])
    if q.get("sub_status"):
        el(code, SAMLP, "StatusCode", [("Value", status_uri(q["sub_status"]))])
    if q.get("status_message"):
        el(status, SAMLP, "StatusMessage", text=q["status_message"])
    if not q["include_assertion"]:
        return root, response_id, None

    assertion_nsmap = {**a_ns, **s.assertion_extra_ns}
    asrt = el(root, SAML, "Assertion", nsmap=assertion_nsmap)
    for k, v in ([("Version", "2.0"), ("ID", assertion_id)] if s.name == "onelogin" else [("ID", assertion_id)]):
        asrt.set(k, v)
    asrt.set("IssueInstant", t(q["issue_instant"]))
    if s.name != "onelogin":
        asrt.set("Version", "2.0")
    issuer(asrt, q["assertion_issuer"], declare=False)

    subject = el(asrt, SAML, "Subject")
    el(subject, SAML, "NameID", [("Format", q["name_id_format"]), ("SPNameQualifier", q.get("sp_name_qualifier"))], q["name_id"])
    sc = el(subject, SAML, "SubjectConfirmation", [("Method", q["subject_confirmation_method"])])
    scd_values = {"InResponseTo": q["in_response_to"], "NotOnOrAfter": t(q["subject_not_on_or_after"]),
                  "Recipient": q["recipient"], "NotBefore": t(q.get("subject_not_before"))}
    scd_order = {"onelogin": ["NotBefore", "NotOnOrAfter", "Recipient", "InResponseTo"],
                 "pingfederate": ["NotBefore", "Recipient", "NotOnOrAfter", "InResponseTo"]}.get(
        s.name, ["InResponseTo", "NotBefore", "NotOnOrAfter", "Recipient"])
    el(sc, SAML, "SubjectConfirmationData", [(k, scd_values[k]) for k in scd_order])

    if not q.get("omit_conditions"):
        cond = el(asrt, SAML, "Conditions", [("NotBefore", t(q["not_before"])), ("NotOnOrAfter", t(q["not_on_or_after"]))])
        audiences = q["audience"]
        if audiences is not None:
            ar = el(cond, SAML, "AudienceRestriction")
            for aud in audiences if isinstance(audiences, list) else [audiences]:
                el(ar, SAML, "Audience", text=aud)

    def authn_statement():
        session_index = q.get("session_index") or ({"azure-ad": assertion_id, "pingfederate": assertion_id,
                                                     "generic": assertion_id, "okta": q["in_response_to"] or s.id_assertion(rng)}
                                                    .get(s.name) or "_" + _guid(rng))
        attrs = [("AuthnInstant", t(q["authn_instant"])), ("SessionNotOnOrAfter", t(q["session_not_on_or_after"])),
                 ("SessionIndex", session_index)]
        if s.name in ("azure-ad", "okta", "generic"):
            attrs = [attrs[0], attrs[2], attrs[1]]
        elif s.name == "pingfederate":
            attrs = [attrs[2], attrs[0], attrs[1]]
        st = el(asrt, SAML, "AuthnStatement", attrs)
        ctx = el(st, SAML, "AuthnContext")
        el(ctx, SAML, "AuthnContextClassRef", text=s.authn_context)

    def attribute_statement():
        attributes: dict = {}
        if q["email_attribute"]:
            attributes[q["email_attribute"]] = q["email"]
        if not q.get("no_vendor_attributes"):
            attributes.update(s.extra_attributes(q["email"], q))
        if s.name == "azure-ad" and q["email_attribute"]:
            # Entra sends the UPN as the last claim; a mail-enabled user has UPN == email.
            attributes.pop(q["email_attribute"])
            attributes[q["email_attribute"]] = q["email"]
            attributes[CLAIMS + "name"] = q.get("upn", q["email"])
        for name, value in (q.get("attributes") or {}).items():
            if value is None:
                attributes.pop(name, None)
            else:
                attributes[name] = value
        if q.get("mutation") == "oversized":
            pad = max(0, int(q["oversize_bytes"]) - len(serialize(root)) + 1)
            attributes["padding"] = "A" * pad
        if not attributes:
            return
        stmt = el(asrt, SAML, "AttributeStatement")
        for name, value in attributes.items():
            attr = el(stmt, SAML, "Attribute", [("Name", name), ("NameFormat", s.attr_name_format)] if s.name != "onelogin"
                      else [("NameFormat", s.attr_name_format), ("Name", name)])
            for v in value if isinstance(value, list) else [value]:
                nsmap = {"xs": XS, "xsi": XSI} if s.attr_value_ns_on_value else None
                if s.name == "okta":
                    nsmap = {"xsi": XSI}
                av = el(attr, SAML, "AttributeValue", nsmap=nsmap)
                if s.attr_value_type:
                    av.set(f"{{{XSI}}}type", s.attr_value_type)
                av.text = v if v != "" else None

    for which in s.statements:
        authn_statement() if which == "authn" else attribute_statement()
    return root, response_id, assertion_id


def evil_map(q: dict) -> dict:
    m = {q["email"]: q["evil_email"], q["name_id"]: q["evil_email"]}
    if q["name_id_format"] == NAMEID["persistent"]:
        m[q["name_id"]] = _persistent_id(q["evil_email"])
    return m


def make_evil(node, q: dict) -> None:
    """What the attacker edits in the unsigned copy: every NameID/email value becomes evil_email."""
    mapping = evil_map(q)
    for e in node.iter():
        if isinstance(e.tag, str) and e.text in mapping:
            e.text = mapping[e.text]


def _direct_signature(node):
    return node.find(f"{{{DS}}}Signature")


def apply_xsw(root, q: dict, mutation: str):
    """The eight SAML Raider XSW shapes (see XSW above for one line each)."""
    def first_assertion():
        return root.find(f"{{{SAML}}}Assertion")

    if mutation in ("xsw1", "xsw2"):
        clone = copy.deepcopy(root)
        clone.remove(_direct_signature(clone))
        make_evil(root, q)
        sig = _direct_signature(root)
        if mutation == "xsw1":
            sig.append(clone)
        else:
            sig.addprevious(clone)
        root.set("ID", "_evil_response_ID")
        return root
    assertion = first_assertion()
    if mutation == "xsw3":
        evil = copy.deepcopy(assertion)
        make_evil(evil, q)
        evil.set("ID", "_evil_assertion_ID")
        evil.remove(_direct_signature(evil))
        assertion.addprevious(evil)
    elif mutation == "xsw4":
        evil = copy.deepcopy(assertion)
        make_evil(evil, q)
        evil.set("ID", "_evil_assertion_ID")
        evil.remove(_direct_signature(evil))
        root.append(evil)
        evil.append(assertion)
    elif mutation in ("xsw5", "xsw6", "xsw8"):
        original = copy.deepcopy(assertion)
        original.remove(_direct_signature(original))
        make_evil(assertion, q)
        sig = _direct_signature(assertion)
        if mutation == "xsw5":
            root.append(original)
            assertion.set("ID", "_evil_assertion_ID")
        elif mutation == "xsw6":
            sig.append(original)
            assertion.set("ID", "_evil_assertion_ID")
        else:
            obj = el(sig, DS, "Object")
            obj.append(original)
    elif mutation == "xsw7":
        ext = etree.Element(f"{{{SAMLP}}}Extensions")
        assertion.addprevious(ext)
        evil = copy.deepcopy(assertion)
        make_evil(evil, q)
        evil.remove(_direct_signature(evil))
        ext.append(evil)
    return root


def _doctype_name(root) -> str:
    return f"{root.prefix}:{etree.QName(root).localname}" if root.prefix else etree.QName(root).localname


def _entity_target(q: dict) -> str:
    """The text the DTD mutations replace: the NameID when it is the email, else the email value."""
    return q["name_id"]


def apply_text_mutation(xml: str, root, q: dict, mutation: str) -> str:
    name = _doctype_name(root)
    target = _entity_target(q)
    needle = f">{xml_escape(target)}<"
    if needle not in xml:
        raise UsageError("cannot find the NameID text to replace")
    if mutation == "dtd":
        dtd = f'<!DOCTYPE {name} [<!ENTITY lkname "{target}">]>'
        xml = xml.replace(needle, ">&lkname;<", 1)
    elif mutation == "xxe":
        dtd = f'<!DOCTYPE {name} [<!ENTITY lkxxe SYSTEM "file:///etc/hostname">]>'
        xml = xml.replace(needle, ">&lkxxe;<", 1)
    else:  # entity_expansion: the classic "billion laughs"
        ents = ['<!ENTITY lol "lol">'] + [
            f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
        ]
        dtd = f"<!DOCTYPE {name} [{''.join(ents)}]>"
        xml = xml.replace(needle, ">&lol9;<", 1)
    return dtd + xml


def add_xslt_transform(root, depth: int) -> None:
    """Replaces the exc-c14n transform of the first Reference by an XSLT stylesheet that makes
    2^depth recursive template calls. Verifiers that run transforms before checking the
    SignatureValue (xmlsec does) burn CPU for an unauthenticated request."""
    if root.find(f".//{{{DS}}}Reference") is None:
        raise UsageError("xslt_transform needs a signed document")
    transforms = root.find(f".//{{{DS}}}Reference/{{{DS}}}Transforms")
    transforms.remove(transforms[-1])
    xsl = "http://www.w3.org/1999/XSL/Transform"
    t = el(transforms, DS, "Transform", [("Algorithm", "http://www.w3.org/TR/1999/REC-xslt-19991116")])
    t.append(etree.fromstring(
        f'<xsl:stylesheet xmlns:xsl="{xsl}" version="1.0">'
        f'<xsl:template match="/"><xsl:call-template name="r"><xsl:with-param name="n" select="{depth}"/></xsl:call-template></xsl:template>'
        '<xsl:template name="r"><xsl:param name="n"/><xsl:if test="$n &gt; 0">'
        '<xsl:call-template name="r"><xsl:with-param name="n" select="$n - 1"/></xsl:call-template>'
        '<xsl:call-template name="r"><xsl:with-param name="n" select="$n - 1"/></xsl:call-template>'
        "</xsl:if></xsl:template></xsl:stylesheet>"))


def deflate_bomb(mib: int) -> bytes:
    """A raw-deflate stream (as the HTTP-Redirect binding uses) inflating to `mib` MiB.

    One 1 MiB block is compressed once and repeated: after Z_FULL_FLUSH the block references no
    earlier data, so concatenated copies remain a valid stream. The result is ~1 KiB per MiB.
    """
    head = zlib.compressobj(9, zlib.DEFLATED, -15)
    prefix = head.compress(f'<?xml version="1.0"?><samlp:Response xmlns:samlp="{SAMLP}"><!--'.encode()) + head.flush(zlib.Z_FULL_FLUSH)
    body = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = body.compress(b"A" * (1024 * 1024)) + body.flush(zlib.Z_FULL_FLUSH)
    tail = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)  # empty final block
    return prefix + block * mib + tail


def cmd_response(p: dict) -> dict:
    q = response_params(p)
    s = SHAPES[q["vendor"]]
    rng = random.Random(q["seed"]) if q.get("seed") is not None else random.Random()
    kdir = _keys_dir(q)
    mutation = q.get("mutation")

    if mutation == "deflate_bomb":
        data = deflate_bomb(int(q["bomb_mib"]))
        out = {"saml_response": b64(data), "xml": None, "mutation": mutation, "expect": "reject",
               "inflated_bytes": int(q["bomb_mib"]) * 1024 * 1024, "note": MUTATIONS[mutation]}
        return _with_form(out, q)

    # comment_in_nameid: the IdP really asserts email+suffix (the attacker's own account); the
    # empty comment makes a truncating reader see only the victim's email.
    signed_value = q["email"] + q["comment_suffix"] if mutation == "comment_in_nameid" else None
    if signed_value:
        if q["name_id"] == q["email"]:
            q["name_id"] = signed_value
        q["victim_email"], q["email"] = q["email"], signed_value

    root, response_id, assertion_id = build_response(q, rng)

    if mutation == "comment_in_nameid":
        for e in list(root.iter()):
            if isinstance(e.tag, str) and e.text == signed_value:
                e.text = q["victim_email"]
                comment = etree.Comment("")
                comment.tail = q["comment_suffix"]
                e.append(comment)

    key = load_private_key(kdir, q["key"])
    cert_pem = load_cert_pem(kdir, q["key"]) if q["key_info"] else None
    sign_kwargs = dict(key=key, cert_pem=cert_pem, sig_alg=q["sig_alg"], default_ns=s.sig_default_ns,
                       inclusive_prefixes=s.inclusive_prefixes)
    if q["sign"] in ("assertion", "both") and assertion_id:
        root = sign_element(root, find_by_id(root, assertion_id), **sign_kwargs)
        _format_keyinfo_certs(root, s.name)  # before a Response signature covers it
    if q["sign"] in ("response", "both"):
        root = sign_element(root, root, **sign_kwargs)

    if mutation in XSW:
        root = apply_xsw(root, q, mutation)
    elif mutation == "strip_signature":
        for sig in list(root.iter(f"{{{DS}}}Signature")):
            sig.getparent().remove(sig)
    elif mutation == "modify_after_sign":
        make_evil(root, q)
    elif mutation == "xslt_transform":
        add_xslt_transform(root, int(q["xslt_depth"]))

    _format_keyinfo_certs(root, s.name)
    xml = serialize(root)
    if mutation in ("dtd", "entity_expansion", "xxe"):
        xml = apply_text_mutation(xml, root, q, mutation)
    if s.xml_decl:
        xml = s.xml_decl + xml

    out = {
        "saml_response": b64(xml),
        "xml": xml if q.get("include_xml", True) else None,
        "response_id": response_id,
        "assertion_id": assertion_id,
        "issuer": q["idp_entity_id"],
        "name_id": q["name_id"],
        "name_id_format": q["name_id_format"],
        "email": q["email"],
        "email_attribute": q["email_attribute"],
        "signed": q["sign"],
        "sig_alg": q["sig_alg"],
        "key": q["key"],
        "mutation": mutation,
        "expect": _expect(q),
        "note": MUTATIONS.get(mutation) or ("nothing is signed" if q["sign"] == "none" else None),
    }
    if mutation in XSW or mutation == "modify_after_sign":
        # The SP must never authenticate this identity. (A verifier that returns only the signed
        # assertion may still authenticate `email` for xsw3-5; a strict SP rejects outright.)
        out["evil_email"] = q["evil_email"]
        out["forbidden_identity"] = q["evil_email"]
    if mutation == "comment_in_nameid":
        out["truncated_value"] = q["victim_email"]
        out["forbidden_identity"] = q["victim_email"]
    return _with_form(out, q)


def _expect(q: dict) -> str:
    """What a correct SP does with the document on its own (the caller's SP configuration, clock
    and pending request ids still decide the rest): anything mutated, unsigned, signed by an
    untrusted key or with a non-Success status is refused."""
    if q.get("mutation") or q["sign"] == "none" or q["key"] == "attacker" or not q["include_assertion"]:
        return "reject"
    if q["sig_alg"] == "rsa-sha1" or status_uri(q["status"]) != STATUS_PREFIX + "Success":
        return "reject"
    return "accept"


def _format_keyinfo_certs(root, vendor: str) -> None:
    """Re-wraps KeyInfo certificates the way each vendor does (KeyInfo is outside SignedInfo, so
    this does not touch the signature): Okta/Google 76-column lines, Ping a leading newline too,
    Microsoft and OneLogin one line."""
    for x in root.iter(f"{{{DS}}}X509Certificate"):
        body = "".join((x.text or "").split())
        x.text = {"okta": wrap(body, 76), "generic": wrap(body, 76), "pingfederate": "\n" + wrap(body, 76) + "\n"}.get(vendor, body)


def _with_form(out: dict, q: dict) -> dict:
    form = {"SAMLResponse": out["saml_response"]}
    if q.get("relay_state") is not None:
        form["RelayState"] = q["relay_state"]
    out["form"] = form
    return out


# --------------------------------------------------------------------------------------------
# Metadata
# --------------------------------------------------------------------------------------------

AZURE_CLAIMS = [
    (CLAIMS + "name", "Name", "The mutable display name of the user."),
    (CLAIMS + "nameidentifier", "Subject", "An immutable, globally unique, non-reusable identifier of the user that is unique to the application for which a token is issued."),
    (CLAIMS + "givenname", "Given Name", "First name of the user."),
    (CLAIMS + "surname", "Surname", "Last name of the user."),
    (MS_CLAIMS + "displayname", "Display Name", "Display name of the user."),
    (MS_CLAIMS + "objectidentifier", "ObjectIdentifier", "Primary identifier for the user in the directory. Immutable, globally unique, non-reusable."),
    (MS_CLAIMS + "tenantid", "TenantId", "Identifier for the user's tenant."),
    (MS_CLAIMS + "identityprovider", "IdentityProvider", "Identity provider for the user."),
    (CLAIMS + "emailaddress", "Email", "Email address of the user."),
    ("http://schemas.microsoft.com/ws/2008/06/identity/claims/groups", "Groups", "Groups of the user."),
]


def metadata_params(p: dict) -> dict:
    s = shape_of(p)
    q = dict(p)
    q.setdefault("entity_id", s.entity_id)
    q.setdefault("sso_url", s.sso_url)
    q.setdefault("slo_url", s.slo_url)
    q.setdefault("sso_bindings", list(s.sso_bindings))
    if "sso_endpoints" not in q:
        q["sso_endpoints"] = [{"binding": b, "location": q["sso_url"]} for b in q["sso_bindings"]]
    q["sso_endpoints"] = [{"binding": binding_uri(e["binding"]), "location": e["location"]} for e in q["sso_endpoints"]]
    q.setdefault("certs", ["idp"])
    q.setdefault("key_use", "signing")
    q.setdefault("want_authn_requests_signed", s.want_authn_requests_signed)
    q.setdefault("sign_metadata", s.name == "azure-ad")
    q.setdefault("metadata_signing_key", "idp")
    q.setdefault("bom", s.name == "azure-ad")
    q.setdefault("name_id_formats", {
        "azure-ad": [], "okta": ["unspecified", "emailAddress"], "onelogin": ["emailAddress"],
        "pingfederate": ["emailAddress"], "generic": ["emailAddress"],
    }[s.name])
    return q


def _key_descriptors(parent, ns, certs_b64, key_use, style):
    for c in certs_b64:
        kd = el(parent, ns, "KeyDescriptor", [("use", key_use)])
        if style == "azure":
            ki = el(kd, DS, "KeyInfo", nsmap={None: DS})
            x = el(ki, DS, "X509Data")
            el(x, DS, "X509Certificate", text=c)
        else:
            ki = el(kd, DS, "KeyInfo", nsmap={"ds": DS})
            x = el(ki, DS, "X509Data")
            text = {"okta": "\n" + wrap(c, 76, " ") + "\n", "onelogin": wrap(c, 64), "generic": wrap(c, 76)}.get(style, c)
            el(x, DS, "X509Certificate", text=text)


def _epr(parent, ns, tag, address):
    node = el(parent, ns, tag)
    epr = el(node, WSA, "EndpointReference", nsmap={"wsa": WSA})
    el(epr, WSA, "Address", text=address)


def build_metadata(q: dict):
    s = SHAPES[q["vendor"]]
    kdir = _keys_dir(q)
    certs = [cert_b64(load_cert_pem(kdir, c)) for c in q["certs"]]
    wars = q["want_authn_requests_signed"]
    wars = None if wars is None else ("true" if wars else "false")
    nid = [nameid_format(f) for f in q["name_id_formats"]]

    if s.name == "azure-ad":
        tenant = re.search(r"sts\.windows\.net/([^/]+)/", q["entity_id"])
        tenant_id = tenant.group(1) if tenant else TEST_TENANT
        wsfed = f"https://login.microsoftonline.com/{tenant_id}/wsfed"
        root = el(None, MD, "EntityDescriptor", [("ID", "_" + str(uuid.uuid5(uuid.NAMESPACE_URL, q["entity_id"]))),
                                                 ("entityID", q["entity_id"])], nsmap={None: MD})
        for kind in ("SecurityTokenServiceType", "ApplicationServiceType"):
            rd = el(root, MD, "RoleDescriptor", nsmap={"xsi": XSI, "fed": FED})
            rd.set(f"{{{XSI}}}type", f"fed:{kind}")
            rd.set("protocolSupportEnumeration", FED)
            _key_descriptors(rd, MD, certs, q["key_use"], "azure")
            if kind == "SecurityTokenServiceType":
                cto = el(rd, FED, "ClaimTypesOffered")
                for uri, display, desc in AZURE_CLAIMS:
                    ct = el(cto, AUTH, "ClaimType", [("Uri", uri)], nsmap={"auth": AUTH})
                    el(ct, AUTH, "DisplayName", text=display)
                    el(ct, AUTH, "Description", text=desc)
                _epr(rd, FED, "SecurityTokenServiceEndpoint", wsfed)
            else:
                _epr(rd, FED, "TargetScopes", q["entity_id"])
                _epr(rd, FED, "ApplicationServiceEndpoint", wsfed)
            _epr(rd, FED, "PassiveRequestorEndpoint", wsfed)
        idp = el(root, MD, "IDPSSODescriptor", [("WantAuthnRequestsSigned", wars), ("protocolSupportEnumeration", SAMLP)])
        _key_descriptors(idp, MD, certs, q["key_use"], "azure")
        if q["slo_url"]:
            el(idp, MD, "SingleLogoutService", [("Binding", BINDINGS["redirect"]), ("Location", q["slo_url"])])
        for f in nid:
            el(idp, MD, "NameIDFormat", text=f)
        for e in q["sso_endpoints"]:
            el(idp, MD, "SingleSignOnService", [("Binding", e["binding"]), ("Location", e["location"])])
        return root

    if s.name == "onelogin":
        root = el(None, MD, "EntityDescriptor", [("entityID", q["entity_id"])], nsmap={None: MD})
        idp = el(root, MD, "IDPSSODescriptor", [("WantAuthnRequestsSigned", wars), ("protocolSupportEnumeration", SAMLP)],
                 nsmap={"ds": DS})
        _key_descriptors(idp, MD, certs, q["key_use"], "onelogin")
        if q["slo_url"]:
            el(idp, MD, "SingleLogoutService", [("Binding", BINDINGS["redirect"]), ("Location", q["slo_url"])])
        for f in nid:
            el(idp, MD, "NameIDFormat", text=f)
        for e in q["sso_endpoints"]:
            loc = e["location"]
            if e["binding"] == BINDINGS["soap"]:
                loc = loc.replace("/http-post/", "/soap/").replace("/http-redirect/", "/soap/")
            el(idp, MD, "SingleSignOnService", [("Binding", e["binding"]), ("Location", loc)])
        cp = el(root, MD, "ContactPerson", [("contactType", "technical")])
        el(cp, MD, "SurName", text="Support")
        el(cp, MD, "EmailAddress", text="support@onelogin.example")
        return root

    attrs = [("entityID", q["entity_id"])]
    if s.name == "pingfederate":
        attrs = [("ID", "lk" + hashlib.sha1(q["entity_id"].encode()).hexdigest()[:20]), ("cacheDuration", "PT1440M")] + attrs
    if q.get("valid_until") is not None:
        attrs.append(("validUntil", iso(q["valid_until"], "ms")))
    root = el(None, MD, "EntityDescriptor", attrs, nsmap={"md": MD})
    idp_attrs = [("WantAuthnRequestsSigned", wars), ("protocolSupportEnumeration", SAMLP)]
    if s.name == "pingfederate":
        idp_attrs = idp_attrs[::-1]
    idp = el(root, MD, "IDPSSODescriptor", idp_attrs)
    _key_descriptors(idp, MD, certs, q["key_use"], s.name)
    if q["slo_url"]:
        el(idp, MD, "SingleLogoutService", [("Location", q["slo_url"]), ("Binding", BINDINGS["redirect"])])
    for f in nid:
        el(idp, MD, "NameIDFormat", text="\n" + f + "\n" if s.name == "okta" else f)
    for e in q["sso_endpoints"]:
        pairs = [("Binding", e["binding"]), ("Location", e["location"])]
        el(idp, MD, "SingleSignOnService", pairs[::-1] if s.name == "pingfederate" else pairs)
    if s.name == "pingfederate":
        el(idp, SAML, "Attribute", [("Name", "mail"), ("NameFormat", ATTRNAME_BASIC)], nsmap={"saml": SAML})
        cp = el(root, MD, "ContactPerson", [("contactType", "administrative")])
        el(cp, MD, "Company", text="latchkey tests")
    return root


def _pretty(root, style: str) -> str:
    """Reproduces each vendor's whitespace: Azure one line, Okta one element per line without
    indentation, the others indented by two spaces."""
    if style == "azure-ad":
        return serialize(root).replace("/>", " />")
    if style == "okta":
        text = serialize(root)
        return re.sub(r">(?=<)", ">\n", text) + "\n"
    etree.indent(root, space="  ")
    return serialize(root)


def cmd_metadata(p: dict) -> dict:
    q = metadata_params(p)
    s = SHAPES[q["vendor"]]
    kdir = _keys_dir(q)
    root = build_metadata(q)
    if s.name not in ("azure-ad", "okta"):
        etree.indent(root, space="  ")
    if q["sign_metadata"]:
        key_info = None
        cert_pem = load_cert_pem(kdir, q["metadata_signing_key"])
        if s.name == "azure-ad":
            # Microsoft's metadata signature puts a ds:-prefixed X509Data inside a default-ns KeyInfo.
            key_info = etree.Element(f"{{{DS}}}KeyInfo", nsmap={None: DS})
            x = el(key_info, DS, "X509Data", nsmap={"ds": DS})
            el(x, DS, "X509Certificate", text=cert_b64(cert_pem))
        placeholder = etree.Element(f"{{{DS}}}Signature", nsmap={None: DS} if s.sig_default_ns else {"ds": DS})
        placeholder.set("Id", "placeholder")
        root.insert(0, placeholder)
        if "ID" not in root.attrib:
            root.set("ID", "_" + str(uuid.uuid5(uuid.NAMESPACE_URL, q["entity_id"])))
        signer = make_signer("rsa-sha256", s.sig_default_ns)
        root = _reparse(signer.sign(root, key=load_private_key(kdir, q["metadata_signing_key"]), cert=cert_pem,
                                    reference_uri="#" + root.get("ID"),
                                    **({"key_info": key_info} if key_info is not None else {})))
    text = _pretty(root, s.name) if s.name in ("azure-ad", "okta") else serialize(root)
    if q["sign_metadata"] and s.name == "azure-ad":
        # Microsoft writes <KeyInfo><ds:X509Data xmlns:ds=...> in its metadata signature; lxml
        # folds the prefix away. KeyInfo is outside SignedInfo, so rewriting it is harmless.
        text = re.sub(r"<KeyInfo><X509Data><X509Certificate>([^<]*)</X509Certificate></X509Data></KeyInfo>",
                      rf'<KeyInfo><ds:X509Data xmlns:ds="{DS}"><ds:X509Certificate>\1</ds:X509Certificate></ds:X509Data></KeyInfo>',
                      text, count=1)
    decl = {"azure-ad": '<?xml version="1.0" encoding="utf-8"?>', "onelogin": '<?xml version="1.0"?>\n',
            "pingfederate": '<?xml version="1.0" encoding="UTF-8"?>\n',
            "generic": '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n', "okta": ""}[s.name]
    if q.get("wrap_entities_descriptor"):
        text = (f'<md:EntitiesDescriptor xmlns:md="{MD}" Name="https://federation.latchkey-test.example/">'
                + text + "</md:EntitiesDescriptor>")
    text = decl + text
    if q["bom"]:
        text = "\ufeff" + text
    if q.get("out"):
        Path(q["out"]).write_bytes(text.encode())
    return {
        "xml": text,
        "entity_id": q["entity_id"],
        "sso": q["sso_endpoints"],
        "certs_b64": [cert_b64(load_cert_pem(kdir, c)) for c in q["certs"]],
        "want_authn_requests_signed": q["want_authn_requests_signed"],
        "signed": bool(q["sign_metadata"]),
    }


# --------------------------------------------------------------------------------------------
# idp-login: a complete, independent IdP (pysaml2) answering our real AuthnRequest
# --------------------------------------------------------------------------------------------


def _freeze_pysaml2_clock(now: float) -> None:
    """pysaml2 reads the wall clock through time.gmtime() and datetime.now(); the server under
    test runs on a controlled clock, so both are pinned to `now` for this process."""
    import saml2.time_util as tu

    real_gmtime = time.gmtime

    def gmtime(secs=None):
        return real_gmtime(now if secs is None else secs)

    class FrozenDateTime(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return dt.datetime.fromtimestamp(now, tz)

        @classmethod
        def utcnow(cls):
            return dt.datetime.fromtimestamp(now, dt.timezone.utc).replace(tzinfo=None)

    time.gmtime = gmtime
    time.time = lambda: now  # noqa: E731
    tu.datetime = FrozenDateTime


def _sp_metadata_from_params(q: dict) -> str:
    if q.get("sp_metadata_xml"):
        return q["sp_metadata_xml"]
    for k in ("sp_entity_id", "acs_url"):
        if not q.get(k):
            raise UsageError(f"idp-login needs sp_metadata_xml, or sp_entity_id + acs_url (+ sp_cert_pem)")
    root = el(None, MD, "EntityDescriptor", [("entityID", q["sp_entity_id"])], nsmap={"md": MD})
    sp = el(root, MD, "SPSSODescriptor", [("AuthnRequestsSigned", "true" if q.get("sp_cert_pem") else "false"),
                                          ("protocolSupportEnumeration", SAMLP)])
    if q.get("sp_cert_pem"):
        kd = el(sp, MD, "KeyDescriptor", [("use", "signing")])
        ki = el(kd, DS, "KeyInfo", nsmap={"ds": DS})
        x = el(ki, DS, "X509Data")
        el(x, DS, "X509Certificate", text=cert_b64(q["sp_cert_pem"]))
    el(sp, MD, "AssertionConsumerService", [("Binding", BINDINGS["post"]), ("Location", q["acs_url"]), ("index", "0")])
    return serialize(root)


def cmd_idp_login(p: dict) -> dict:
    q = dict(p)
    s = shape_of(q)
    if q.get("now") is not None:
        _freeze_pysaml2_clock(float(q["now"]))
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
    from saml2.config import IdPConfig
    from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NameID
    from saml2.server import Server
    from saml2.sigver import get_xmlsec_binary

    kdir = _keys_dir(q)
    ensure_keys(kdir)
    key_name = q.get("key", "idp")

    if q.get("url"):
        parts = urlsplit(q["url"])
        query = parse_qs(parts.query, keep_blank_values=True)
        one = lambda k: query[k][0] if k in query else None  # noqa: E731
        binding = BINDING_HTTP_REDIRECT
        saml_request, relay_state, sig_alg, signature = one("SAMLRequest"), one("RelayState"), one("SigAlg"), one("Signature")
        # The IdP's own query parameters (Google's ?idpid=...) are part of its endpoint, and of
        # the request's Destination; only the binding's parameters are not.
        own = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
               if k not in ("SAMLRequest", "RelayState", "SigAlg", "Signature")]
        sso_url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(own), ""))
        if saml_request is None:
            raise UsageError("url has no SAMLRequest parameter")
    elif q.get("saml_request"):
        binding = BINDING_HTTP_POST
        saml_request, relay_state, sig_alg, signature = q["saml_request"], q.get("relay_state"), None, None
        sso_url = q.get("sso_url") or s.sso_url
    else:
        raise UsageError("idp-login needs url (HTTP-Redirect Location) or saml_request (HTTP-POST form field)")

    want_signed = bool(q.get("want_authn_requests_signed", False))
    response_alg = q.get("sig_alg", "rsa-sha256")
    if response_alg not in SIG_ALG_URIS:
        raise UsageError(f"sig_alg must be one of {list(SIG_ALG_URIS)}")
    sig_alg_uri, digest_uri = SIG_ALG_URIS[response_alg], DIGEST_URIS[SIG_ALGS[response_alg][1]]
    if response_alg.startswith("ecdsa-"):
        # pysaml2 signs through xmlsec1, which does ECDSA, but keeps a hard-coded list of RSA
        # algorithms it agrees to sign with ("XXX sig/digest-allowed should be configurable").
        import saml2.entity
        if sig_alg_uri not in [uri for _, uri in saml2.entity.SIG_ALLOWED_ALG]:
            saml2.entity.SIG_ALLOWED_ALG = (*saml2.entity.SIG_ALLOWED_ALG, (response_alg.upper(), sig_alg_uri))
    with tempfile.TemporaryDirectory(prefix="lk-idp-") as tmp:
        sp_md = Path(tmp) / "sp.xml"
        sp_md.write_text(_sp_metadata_from_params(q))
        sign_response = q.get("sign_response", s.sign in ("response", "both"))
        sign_assertion = q.get("sign_assertion", s.sign in ("assertion", "both"))
        config = {
            "entityid": q.get("idp_entity_id", s.entity_id),
            "xmlsec_binary": get_xmlsec_binary(["/usr/bin", "/usr/local/bin"]),
            "key_file": str(kdir / f"{key_name}.key.pem"),
            "cert_file": str(kdir / f"{key_name}.crt.pem"),
            "metadata": {"local": [str(sp_md)]},
            "accepted_time_diff": 300,
            "service": {
                "idp": {
                    "endpoints": {"single_sign_on_service": [(sso_url, BINDING_HTTP_REDIRECT), (sso_url, BINDING_HTTP_POST)]},
                    "want_authn_requests_signed": want_signed,
                    "sign_response": sign_response,
                    "sign_assertion": sign_assertion,
                    # pysaml2 signs with rsa-sha1 unless asked; ask for SHA-256.
                    "signing_algorithm": sig_alg_uri,
                    "digest_algorithm": digest_uri,
                    "policy": {"default": {"lifetime": {"minutes": 5}, "attribute_restrictions": None,
                                           "name_form": "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"}},
                    "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
                }
            },
        }
        idp = Server(config=IdPConfig().load(config))
        req = idp.parse_authn_request(saml_request, binding, relay_state=relay_state, sigalg=sig_alg, signature=signature)
        msg = req.message
        info = idp.response_args(msg)
        email = q.get("email", "alice@corp.example")
        attributes = {"email": [email], **{k: v if isinstance(v, list) else [v] for k, v in (q.get("attributes") or {}).items()}}
        resp = idp.create_authn_response(
            identity=attributes,
            userid=email,
            name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=email),
            authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"},
            sign_response=sign_response,
            sign_assertion=sign_assertion,
            sign_alg=sig_alg_uri,
            digest_alg=digest_uri,
            **info,
        )
        xml = str(resp)
    return {
        "acs_url": info["destination"],
        "saml_response": b64(xml),
        "relay_state": relay_state,
        "form": {"SAMLResponse": b64(xml), **({"RelayState": relay_state} if relay_state is not None else {})},
        "in_response_to": msg.id,
        "request_issuer": msg.issuer.text.strip() if msg.issuer is not None else None,
        "request_signed": bool(signature) or msg.signature is not None,
        "request_signature_checked": want_signed,
        "xml": xml,
    }


# --------------------------------------------------------------------------------------------
# selftest
# --------------------------------------------------------------------------------------------


def xmlsec_verify(xml: str, cert_pem_path: str, signature_index: int | None = None) -> bool:
    """`xmlsec1 --verify` of one Signature (1-based index in document order) with only the given
    certificate; KeyInfo key data is disabled so an embedded certificate can never be used."""
    with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
        f.write(xml)
        path = f.name
    try:
        cmd = ["xmlsec1", "--verify", "--enabled-key-data", "key-name", "--pubkey-cert-pem", cert_pem_path,
               "--id-attr:ID", f"{SAMLP}:Response", "--id-attr:ID", f"{SAML}:Assertion",
               "--id-attr:ID", f"{MD}:EntityDescriptor"]
        if signature_index is not None:
            cmd += ["--node-xpath", f"(//*[local-name()='Signature' and namespace-uri()='{DS}'])[{signature_index}]"]
        r = subprocess.run(cmd + [path], capture_output=True, text=True)
        return r.returncode == 0
    finally:
        os.unlink(path)


def cmd_selftest(p: dict) -> dict:
    kdir = Path(p.get("keys_dir") or tempfile.mkdtemp(prefix="lk-idp-selftest-"))
    keys = ensure_keys(kdir)
    idp_cert = keys["certs"]["idp"]
    failures, checked = [], 0
    base = {"keys_dir": str(kdir), "acs_url": "https://sp.latchkey-test.example/saml/acme/acs",
            "sp_entity_id": "https://sp.latchkey-test.example/saml/acme/metadata", "in_response_to": "_req1",
            "issue_instant": 1767225600, "email": "alice@corp.example", "seed": 7}

    def fail(what):
        failures.append(what)

    for vendor in VENDORS:
        for sign in ("assertion", "response", "both", "none"):
            r = cmd_response({**base, "vendor": vendor, "sign": sign})
            n = len(signatures(r["xml"]))
            expected = {"assertion": 1, "response": 1, "both": 2, "none": 0}[sign]
            if n != expected:
                fail(f"{vendor}/{sign}: {n} signatures, expected {expected}")
            for i in range(1, n + 1):
                checked += 1
                if not xmlsec_verify(r["xml"], idp_cert, i):
                    fail(f"{vendor}/{sign}: signature {i} does not verify")
            etree.fromstring(r["xml"].encode())
        for mutation in MUTATIONS:
            r = cmd_response({**base, "vendor": vendor, "mutation": mutation,
                              **({"bomb_mib": 128} if mutation == "deflate_bomb" else {})})
            label = f"{vendor}/{mutation}"
            if mutation == "deflate_bomb":
                d = zlib.decompressobj(-15)
                total, data = 0, base64.b64decode(r["saml_response"])
                for i in range(0, len(data), 65536):
                    total += len(d.decompress(data[i : i + 65536]))
                if total < 100 * 1024 * 1024 or len(r["saml_response"]) > 300 * 1024:
                    fail(f"{label}: inflates to {total} bytes from {len(r['saml_response'])} base64 bytes")
                continue
            xml = r["xml"]
            if mutation in ("dtd", "entity_expansion", "xxe"):
                if "<!DOCTYPE" not in xml:
                    fail(f"{label}: no DOCTYPE")
                continue
            if mutation == "xslt_transform":
                if "REC-xslt-19991116" not in xml:
                    fail(f"{label}: no XSLT transform")
                continue
            if mutation == "strip_signature":
                if "Signature" in xml:
                    fail(f"{label}: signature left")
                continue
            checked += 1
            if mutation in XSW and not _xsw_carries_genuine_signature(base, vendor, mutation, r):
                fail(f"{label}: the IdP's signature or the signed content did not survive the wrapping")
            if mutation in MUTATION_SIG_VALID:
                # The signature the IdP made must still verify in isolation: that is what makes
                # these documents dangerous, and what the SP must see through.
                target = {"xsw3": r.get("assertion_id"), "xsw4": r.get("assertion_id"), "xsw5": r.get("assertion_id")}.get(mutation)
                orig = next(i + 1 for i, s in enumerate(signatures(xml)) if s.find(f"{{{DS}}}SignedInfo") is not None
                            and (target is None or s.find(f"{{{DS}}}SignedInfo/{{{DS}}}Reference").get("URI") == "#" + target))
                if not xmlsec_verify(xml, idp_cert, orig):
                    fail(f"{label}: signature should verify with the IdP certificate")
            elif mutation == "attacker_key_with_keyinfo":
                if xmlsec_verify(xml, idp_cert, 1) or not xmlsec_verify(xml, keys["certs"]["attacker"], 1):
                    fail(f"{label}: must verify only with the attacker certificate")
            elif mutation == "modify_after_sign":
                if xmlsec_verify(xml, idp_cert, 1):
                    fail(f"{label}: signature verifies after modification")
            if mutation == "oversized" and len(xml.encode()) <= 1024 * 1024:
                fail(f"{label}: only {len(xml)} bytes")
            if mutation == "comment_in_nameid" and "<!---->" not in xml:
                fail(f"{label}: no comment")
        md = cmd_metadata({"vendor": vendor, "keys_dir": str(kdir), "certs": ["idp", "idp2"]})
        text = md["xml"]
        etree.fromstring(text.lstrip("\ufeff").encode())
        if vendor == "azure-ad":
            checked += 1
            if not text.startswith("\ufeff") or not xmlsec_verify(text.lstrip("\ufeff"), idp_cert, 1):
                fail("azure-ad metadata: BOM missing or signature does not verify")
    # Interop: pysaml2 as SP sends a signed HTTP-Redirect AuthnRequest, idp-login answers it.
    try:
        checked += 1
        _selftest_idp_login(kdir, base)
    except Exception as exc:  # noqa: BLE001
        fail(f"idp-login round trip: {exc!r}")
    return {"ok": not failures, "checked_signatures": checked, "failures": failures, "keys_dir": str(kdir)}


def signatures(xml: str) -> list:
    return list(etree.fromstring(xml.lstrip("\ufeff").encode()).iter(f"{{{DS}}}Signature"))


def _c14n_without_signatures(node, prefixes) -> bytes:
    # tostring() keeps every in-scope namespace (deepcopy would drop xmlns:xs, which Okta's
    # PrefixList="xs" needs), so re-parse rather than copy.
    node = etree.fromstring(etree.tostring(node))
    for sig in list(node.iter(f"{{{DS}}}Signature")):
        sig.getparent().remove(sig)
    return etree.tostring(node, method="c14n", exclusive=True, inclusive_ns_prefixes=prefixes)


def _xsw_carries_genuine_signature(base: dict, vendor: str, mutation: str, wrapped: dict) -> bool:
    """The wrapped document must hold the IdP's untouched Signature, and an element with the
    signed ID whose canonical form (the digest input) equals the honestly signed element's."""
    honest = cmd_response({**base, "vendor": vendor, "sign": response_params({**base, "vendor": vendor, "mutation": mutation})["sign"]})
    target = honest["response_id"] if mutation in ("xsw1", "xsw2") else honest["assertion_id"]
    h_root = etree.fromstring(honest["xml"].encode())
    w_root = etree.fromstring(wrapped["xml"].encode())
    h_sig = next(s for s in h_root.iter(f"{{{DS}}}Signature")
                 if s.find(f"{{{DS}}}SignedInfo/{{{DS}}}Reference").get("URI") == "#" + target)
    w_sigs = [s for s in w_root.iter(f"{{{DS}}}Signature") if s.find(f"{{{DS}}}SignedInfo") is not None
              and s.find(f"{{{DS}}}SignedInfo/{{{DS}}}Reference").get("URI") == "#" + target]
    same_sig = any(etree.tostring(s.find(f"{{{DS}}}SignedInfo")) == etree.tostring(h_sig.find(f"{{{DS}}}SignedInfo"))
                   and s.findtext(f"{{{DS}}}SignatureValue") == h_sig.findtext(f"{{{DS}}}SignatureValue") for s in w_sigs)
    prefixes = SHAPES[vendor].inclusive_prefixes
    want = _c14n_without_signatures(find_by_id(h_root, target), prefixes)
    have = [_c14n_without_signatures(e, prefixes) for e in w_root.xpath("//*[@ID=$v]", v=target)]
    return same_sig and want in have


def _selftest_idp_login(kdir: Path, base: dict) -> None:
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
    from saml2.client import Saml2Client
    from saml2.config import SPConfig
    from saml2.sigver import get_xmlsec_binary

    idp_md = cmd_metadata({"vendor": "okta", "keys_dir": str(kdir), "want_authn_requests_signed": True})["xml"]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "idp.xml").write_text(idp_md)
        sp = Saml2Client(config=SPConfig().load({
            "entityid": base["sp_entity_id"],
            "xmlsec_binary": get_xmlsec_binary(["/usr/bin"]),
            "key_file": str(kdir / "idp2.key.pem"),  # any test key will do as the SP's key
            "cert_file": str(kdir / "idp2.crt.pem"),
            "metadata": {"local": [str(Path(tmp) / "idp.xml")]},
            "service": {"sp": {"endpoints": {"assertion_consumer_service": [(base["acs_url"], BINDING_HTTP_POST)]},
                               "authn_requests_signed": True, "want_response_signed": False}},
        }))
        req_id, info = sp.prepare_for_authenticate(binding=BINDING_HTTP_REDIRECT, relay_state="rs-123",
                                                   sigalg="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
        location = dict(info["headers"])["Location"]
    out = cmd_idp_login({"vendor": "okta", "keys_dir": str(kdir), "url": location, "want_authn_requests_signed": True,
                         "sp_entity_id": base["sp_entity_id"], "acs_url": base["acs_url"],
                         "sp_cert_pem": (kdir / "idp2.crt.pem").read_text(), "email": "bob@corp.example"})
    if out["in_response_to"] != req_id or out["relay_state"] != "rs-123" or out["acs_url"] != base["acs_url"]:
        raise AssertionError(f"unexpected idp-login output {out['in_response_to']} {out['relay_state']} {out['acs_url']}")
    if "rsa-sha256" not in out["xml"] or not xmlsec_verify(out["xml"], str(kdir / "idp.crt.pem"), 1):
        raise AssertionError("pysaml2 response is not rsa-sha256 signed by the idp key")
    # A tampered signature must be refused by pysaml2 when it wants signed requests.
    bad = location.replace("Signature=", "Signature=AAAA", 1)
    try:
        cmd_idp_login({"vendor": "okta", "keys_dir": str(kdir), "url": bad, "want_authn_requests_signed": True,
                       "sp_entity_id": base["sp_entity_id"], "acs_url": base["acs_url"],
                       "sp_cert_pem": (kdir / "idp2.crt.pem").read_text()})
    except Exception:  # noqa: BLE001
        return
    raise AssertionError("pysaml2 accepted a request with a broken redirect signature")


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

COMMANDS = {
    "keys": lambda p: ensure_keys(_keys_dir({"keys_dir": p.get("dir") or p.get("keys_dir")})),
    "metadata": cmd_metadata,
    "response": cmd_response,
    "idp-login": cmd_idp_login,
    "selftest": cmd_selftest,
}


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in COMMANDS or argv[1] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 2
    command = argv[1]
    raw = "{}"
    if "--json" in argv:
        i = argv.index("--json")
        raw = argv[i + 1] if i + 1 < len(argv) else "{}"
        if raw == "-":
            raw = sys.stdin.read()
    try:
        params = json.loads(raw)
        if isinstance(params, list):
            result: Any = [COMMANDS[item.get("command", command)](item) for item in params]
        else:
            result = COMMANDS[command](params)
    except (UsageError, json.JSONDecodeError, KeyError, ValueError) as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        print(f"saml_idp.py {command}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - e.g. pysaml2 refusing a request: still JSON for the test
        import traceback

        traceback.print_exc()
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
