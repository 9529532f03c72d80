#!/usr/bin/env python3
"""Validates one SAMLResponse N times with python3-saml (PyPI `python3-saml`, module onelogin.saml2)
and prints its own rate as JSON. Driven by benches/saml.rs; the reference point for latchkey's
validate_response on the same document.

    python3 benches/python3_saml_validate.py PARAMS_JSON

PARAMS_JSON: {"saml_response", "idp_entity_id", "idp_cert_b64", "sp_entity_id", "acs_url",
              "request_id", "now" (unix seconds), "n"}
"""

import json
import sys
import time
from urllib.parse import urlsplit

from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils


def main():
    p = json.loads(sys.argv[1])
    # The recorded response has fixed dates: pin python3-saml's clock (its only time source).
    OneLogin_Saml2_Utils.now = staticmethod(lambda: int(p["now"]))
    settings = OneLogin_Saml2_Settings({
        "strict": True,
        "debug": False,
        "sp": {
            "entityId": p["sp_entity_id"],
            "assertionConsumerService": {"url": p["acs_url"],
                                         "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"},
        },
        "idp": {
            "entityId": p["idp_entity_id"],
            "singleSignOnService": {"url": "https://idp.invalid/sso",
                                    "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"},
            "x509cert": p["idp_cert_b64"],
        },
        # As strict as latchkey: SHA-1 refused, the assertion must be signed (it is: both are).
        "security": {"rejectDeprecatedAlgorithm": True, "wantAssertionsSigned": True},
    }, sp_validation_only=True)
    acs = urlsplit(p["acs_url"])
    request_data = {"https": "on" if acs.scheme == "https" else "off", "http_host": acs.hostname,
                    "server_port": acs.port or (443 if acs.scheme == "https" else 80), "script_name": acs.path}

    def validate():
        r = OneLogin_Saml2_Response(settings, p["saml_response"])
        r.is_valid(request_data, request_id=p["request_id"], raise_exceptions=True)
        return r

    first = validate()  # fails loudly if python3-saml does not accept the document
    assert first.get_nameid() is not None
    n = int(p["n"])
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(n):
        validate()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(json.dumps({"n": n, "seconds": seconds, "cpu_seconds": cpu, "rate": n / seconds, "name_id": first.get_nameid()}))


if __name__ == "__main__":
    main()
