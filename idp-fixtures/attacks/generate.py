#!/usr/bin/env python3
"""Regenerates the recorded attack corpus and protocol-negative documents in this folder with
tests/support/saml_idp.py, so the Rust unit tests (src/saml/acs/tests.rs) need no Python.

    python3 idp-fixtures/attacks/generate.py      # same keys + fixed seeds -> byte-identical files

TEST-ONLY material, signed with the public test keys in ../keys. Dates are fixed (2026-01-15T10:00:00Z);
tests inject a clock. What the SP must answer to each document (the error code) is decided by the
Rust tests, not here: this script only records documents and what they are.
"""

import gzip
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
TOOL = ROOT / "tests" / "support" / "saml_idp.py"
KEYS = HERE.parent / "keys"
VENDORS = ["azure-ad", "okta", "onelogin", "pingfederate", "generic"]
# One vendor per signing shape: both (okta), assertion only (azure-ad), response only without KeyInfo (pingfederate).
SHAPES = ["okta", "azure-ad", "pingfederate"]

BASE = {
    "issue_instant": 1768471200,
    "sp_entity_id": "https://sso.latchkey.test/saml/acme/metadata",
    "acs_url": "https://sso.latchkey.test/saml/acme/acs",
    "in_response_to": "_lk0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "email": "alice@acme.example",
    "keys_dir": str(KEYS),
}

MUTATIONS = [
    "xsw1", "xsw2", "xsw3", "xsw4", "xsw5", "xsw6", "xsw7", "xsw8",
    "strip_signature", "attacker_key_with_keyinfo", "modify_after_sign", "comment_in_nameid",
    "dtd", "entity_expansion", "xxe", "sha1", "xslt_transform",
]

EVIL = "https://evil.latchkey-test.example"
# name -> extra response parameters (protocol negatives and variants that must still be accepted)
NEGATIVES = {
    "unsigned": {"sign": "none"},
    "attacker_key": {"key": "attacker"},
    "status_responder": {"status": "Responder", "sub_status": "AuthnFailed", "status_message": "User cancelled"},
    "no_audience": {"audience": None},
    "other_audience": {"audience": EVIL + "/sp"},
    "audience_list_with_ours": {"audience": [EVIL + "/sp", BASE["sp_entity_id"]]},
    "other_destination": {"destination": EVIL + "/acs"},
    "no_destination": {"destination": None},
    "other_recipient": {"recipient": EVIL + "/acs"},
    "holder_of_key": {"subject_confirmation_method": "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key"},
    "other_issuer": {"idp_entity_id": EVIL + "/idp"},
    "other_response_issuer": {"response_issuer": EVIL + "/idp"},
    "no_conditions": {"omit_conditions": True},
    "no_subject_not_on_or_after": {"subject_not_on_or_after": None},
    "idp_initiated": {"in_response_to": None},
    "rsa_sha512": {"sig_alg": "rsa-sha512"},
    "rsa_sha1": {"sig_alg": "rsa-sha1"},
    "rollover_idp2": {"key": "idp2"},
}


def run(command, params):
    out = subprocess.run([sys.executable, str(TOOL), command, "--json", "-"], input=json.dumps(params),
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main():
    jobs = []  # (vendor, name, kind, params)
    for vendor in VENDORS:
        for m in MUTATIONS:
            jobs.append((vendor, m, "mutation", {"mutation": m}))
    for vendor in SHAPES:
        for name, extra in NEGATIVES.items():
            jobs.append((vendor, name, "negative", extra))
    jobs.append(("okta", "oversized", "mutation", {"mutation": "oversized", "oversize_bytes": 400 * 1024}))
    jobs.append(("okta", "deflate_bomb", "mutation", {"mutation": "deflate_bomb", "bomb_mib": 16}))

    batch = [{**BASE, "vendor": v, "seed": 20260115 + i, **extra} for i, (v, _, _, extra) in enumerate(jobs)]
    results = run("response", batch)
    manifest = []
    for (vendor, name, kind, extra), r in zip(jobs, results):
        d = HERE / vendor
        d.mkdir(exist_ok=True)
        if r["xml"] is None:  # deflate bomb: only the form value exists
            rel = f"{vendor}/{name}.b64"
            (HERE / rel).write_text(r["saml_response"] + "\n")
        elif name == "oversized":
            rel = f"{vendor}/{name}.xml.gz"
            (HERE / rel).write_bytes(gzip.compress(r["xml"].encode(), mtime=0))
        else:
            rel = f"{vendor}/{name}.xml"
            (HERE / rel).write_text(r["xml"])
        manifest.append({
            "vendor": vendor, "name": name, "kind": kind, "file": rel,
            "params": {k: v for k, v in extra.items()},
            "signed": r.get("signed"), "issuer": r.get("issuer"),
            "tool_expect": r.get("expect"), "forbidden_identity": r.get("forbidden_identity"),
            "note": r.get("note"),
        })
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{len(manifest)} documents")


if __name__ == "__main__":
    main()
