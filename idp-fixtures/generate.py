#!/usr/bin/env python3
"""Regenerates the per-vendor SAML fixtures in this folder with tests/support/saml_idp.py.

    python3 idp-fixtures/generate.py            # reuse the committed test keys: output is byte-identical
    python3 idp-fixtures/generate.py --new-keys # throw the test keys away and make new ones

TEST-ONLY material: every private key here is public and must never be trusted anywhere.
Dates are fixed (see FIXED below and README.md); tests must inject a clock inside the window.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOOL = HERE.parent / "tests" / "support" / "saml_idp.py"
VENDORS = ["azure-ad", "okta", "onelogin", "pingfederate", "generic"]

# One fixed SP and one fixed instant for every fixture (2026-01-15T10:00:00Z).
FIXED = {
    "issue_instant": 1768471200,
    "sp_entity_id": "https://sso.latchkey.test/saml/acme/metadata",
    "acs_url": "https://sso.latchkey.test/saml/acme/acs",
    "in_response_to": "_lk0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "relay_state": "rs-fixture-1",
    "email": "alice@acme.example",
    "seed": 20260115,
}


def run(command: str, params):
    out = subprocess.run([sys.executable, str(TOOL), command, "--json", json.dumps(params)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main() -> None:
    new_keys = "--new-keys" in sys.argv
    for vendor in VENDORS:
        d = HERE / vendor
        if new_keys and d.exists():
            for f in d.glob("*.pem"):
                f.unlink()
        d.mkdir(exist_ok=True)
        run("keys", {"dir": str(d)})
        md = run("metadata", {"vendor": vendor, "keys_dir": str(d), "certs": ["idp"], "out": str(d / "metadata.xml")})
        r = run("response", {**FIXED, "vendor": vendor, "keys_dir": str(d)})
        # Written as bytes exactly as a browser would POST them after base64-decoding.
        (d / "response.xml").write_text(r["xml"])
        (d / "response.b64").write_text(r["saml_response"] + "\n")
        import xml.etree.ElementTree as ET  # only to read back the time window for fixture.json

        root = ET.fromstring(r["xml"].encode())
        ns = {"saml": "urn:oasis:names:tc:SAML:2.0:assertion"}
        cond = root.find(".//saml:Conditions", ns)
        scd = root.find(".//saml:SubjectConfirmationData", ns)
        (d / "fixture.json").write_text(json.dumps({
            "vendor": vendor,
            "test_only": "TEST KEYS - never trust outside tests",
            "idp_entity_id": md["entity_id"],
            "sso": md["sso"],
            "want_authn_requests_signed": md["want_authn_requests_signed"],
            "metadata_signed": md["signed"],
            "sp_entity_id": FIXED["sp_entity_id"],
            "acs_url": FIXED["acs_url"],
            "in_response_to": FIXED["in_response_to"],
            "relay_state": FIXED["relay_state"],
            "issue_instant": "2026-01-15T10:00:00Z",
            "issue_instant_unix": FIXED["issue_instant"],
            "conditions_not_before": cond.get("NotBefore"),
            "conditions_not_on_or_after": cond.get("NotOnOrAfter"),
            "subject_confirmation_not_on_or_after": scd.get("NotOnOrAfter"),
            "response_id": r["response_id"],
            "assertion_id": r["assertion_id"],
            "signed": r["signed"],
            "sig_alg": r["sig_alg"],
            "name_id": r["name_id"],
            "name_id_format": r["name_id_format"],
            "email": r["email"],
            "email_attribute": r["email_attribute"],
        }, indent=2) + "\n")
        print(f"{vendor}: metadata.xml response.xml response.b64 fixture.json ({r['signed']} signed)")
    shutil.rmtree(HERE / "__pycache__", ignore_errors=True)
    run("keys", {"dir": str(HERE / "keys")})


if __name__ == "__main__":
    main()
