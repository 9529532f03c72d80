#!/usr/bin/env python3
"""Drive a latchkey SCIM service with scim2-tester, an independent RFC 7643/7644 compliance checker.

TEST TOOLING ONLY.

    python3 tests/support/scim_tester.py --base URL --token TOKEN --domain DOMAIN

The checker discovers the service (ServiceProviderConfig, ResourceTypes, Schemas) and then creates,
reads, lists, searches, replaces, patches and deletes Users and Groups with random values. latchkey
provisions only addresses of the organisation's verified email domains, so the one adaptation made
here is that every random userName and email address is drawn in DOMAIN (what any real IdP sends).
Everything else is scim2-tester's own; the test that runs this lists the checks latchkey fails by
design, each with its reason. Prints one JSON array of the checks: title, status, reason.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import check_server, filling


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--domain", required=True)
    a = ap.parse_args()

    random_value = filling.generate_random_value

    def address() -> str:
        return f"{uuid.uuid4().hex[:16]}@{a.domain}"

    def in_domain(context, path, mutability=None, required=None):
        value = random_value(context, path, mutability=mutability, required=required)
        if str(path).endswith("userName") and value is not None:
            return [address()] if isinstance(value, list) else address()
        # Any random email address (emails.value, an Email's value) is drawn in the domain too.
        if isinstance(value, str) and "@" in value:
            return address()
        if isinstance(value, list):
            return [address() if isinstance(v, str) and "@" in v else v for v in value]
        return value

    # The checkers import the function by name: replace it wherever it was imported.
    for name, module in list(sys.modules.items()):
        if name.startswith("scim2_tester") and getattr(module, "generate_random_value", None) is random_value:
            module.generate_random_value = in_domain

    http = httpx2.Client(base_url=a.base, headers={"Authorization": f"Bearer {a.token}"}, timeout=30)
    results = check_server(SyncSCIMClient(http), raise_exceptions=False)
    out = [
        {"title": r.title, "status": r.status.name, "reason": r.reason, "tags": sorted(r.tags or [])}
        for r in results
    ]
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
